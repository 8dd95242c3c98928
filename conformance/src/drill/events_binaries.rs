//! The events drill through the built binaries on the local stand-ins (run it under
//! `scripts/dev-services.sh`):
//!
//! * AWS: `lambda-cell` on DynamoDB (moto) under cargo-lambda's runtime emulator. The drill plays the
//!   stream's event source mapping (it reads the table's real stream and invokes the function with
//!   the records, some batches twice); the function's relay publishes to an EventBridge bus on moto,
//!   whose rule sends every event to an SQS queue the drill reads.
//! * Azure: `azure-cell` on Cosmos DB (`@vercel/cosmosdb-server`), relaying from its store's pending
//!   entries (the stand-in has no change feed) to the Event Grid topic stand-in
//!   (`services/eventgrid/sink.py`), which answers the first publishes with injected 429 and 503.
//! * The consumers: `lambda-consumer` (under an emulator of its own) gets every EventBridge delivery
//!   the queue held, `azure-consumer` every event the topic took, as Event Grid triggers.
//!
//! Both cells get the same requests in the same order with deterministic ids and clocks, so the two
//! buses must carry the same documents byte for byte, the cell's name aside.

use super::stream::StreamReader;
use super::{DrillReport, Options, Rng, answer, create_request, dev_env, percentiles};
use crate::binaries::{self, AzureProcess, Binaries, LambdaProcess};
use crate::envelopes::Envelope;
use crate::request::ClientRequest;
use crate::wire;
use paracell_aws::outbound::eventbridge::SdkEventBridge;
use paracell_aws::outbound::sqs::{SqsConfig, SqsDeadLetters};
use paracell_azure::outbound::cosmos::{CosmosConfig, CosmosDeadLetters, CosmosStore};
use paracell_domain::events::TransactionAccepted;
use paracell_domain::replication::relay::DeadLetters;
use paracell_domain::{CellConfig, TenantScope};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::BINARY_AWS_DOORS as AWS_DOORS;

/// Runs the drill.
pub fn run(options: Options, workspace: &Path) -> DrillReport {
    super::run_on_runtime(4, async |report| drill(options, workspace, report).await)
}

/// The port of a loopback base URL (`http://127.0.0.1:8082`).
fn loopback_port(url: &str) -> Result<u16, String> {
    url.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .ok_or_else(|| format!("{url} is not a loopback URL with a port"))
}

/// A binary's path: `$var`, else `<name>` in [`crate::binaries::bin_dir`].
fn binary(workspace: &Path, var: &str, name: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::binaries::bin_dir(workspace).join(name))
}

/// What one bus delivered to its subscriber: each delivery (duplicates kept) and when it was read.
#[derive(Default)]
struct Received {
    deliveries: Vec<(Value, Instant)>,
}

impl Received {
    /// The distinct events, by `source` + `id`: the document the consumer decoder rebuilt, and
    /// how many deliveries were duplicates or unreadable.
    fn distinct(
        &self,
        decode: impl Fn(&Value) -> Result<TransactionAccepted, String>,
    ) -> (BTreeMap<String, TransactionAccepted>, usize, Vec<String>) {
        let mut distinct = BTreeMap::new();
        let mut duplicates = 0;
        let mut unreadable = Vec::new();
        for (delivery, _) in &self.deliveries {
            match decode(delivery) {
                Ok(event) => {
                    if distinct.insert(event.dedupe_key(), event).is_some() {
                        duplicates += 1;
                    }
                }
                Err(e) => unreadable.push(e),
            }
        }
        (distinct, duplicates, unreadable)
    }
}

async fn read_queue(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    received: &mut Received,
) -> Result<(), String> {
    for body in super::queue::drain(client, queue_url).await? {
        received.deliveries.push((body, Instant::now()));
    }
    Ok(())
}

/// The topic stand-in's events from `source`, past the `seen` first ones.
fn read_topic(
    port: u16,
    source: &str,
    seen: &mut usize,
    received: &mut Received,
) -> Result<(), String> {
    let reply = wire::send(port, "GET", "/_sink/events", &[], b"", false)
        .map_err(|e| format!("the Event Grid stand-in did not answer: {e}"))?;
    let events: Vec<Value> = serde_json::from_slice(&reply.body)
        .map_err(|e| format!("/_sink/events is not a JSON array: {e}"))?;
    let ours: Vec<Value> = events
        .into_iter()
        .filter(|e| e["source"].as_str() == Some(source))
        .collect();
    let now = Instant::now();
    for event in ours.iter().skip(*seen) {
        received.deliveries.push((event.clone(), now));
    }
    *seen = ours.len();
    Ok(())
}

async fn drill(options: Options, workspace: &Path, report: &mut DrillReport) -> Result<(), String> {
    let started = Instant::now();
    let run = std::process::id();
    let aws_cell = format!("ev-aws-{run}");
    let azure_cell = format!("ev-azure-{run}");
    let moto = dev_env("PARACELL_DYNAMODB_ENDPOINT")?;
    let topic = dev_env("PARACELL_TEST_EVENTGRID_ENDPOINT")?;
    let topic_key = dev_env("PARACELL_TEST_EVENTGRID_KEY")?;
    let topic_port = loopback_port(&topic)?;
    let cosmos = CosmosConfig::from_lookup(|n| {
        if n == "PARACELL_COSMOS_CONTAINER" {
            Some(format!("events-{run}"))
        } else {
            std::env::var(n).ok()
        }
    })?;
    let table = format!("events-{run}");

    // EventBridge on moto: a bus, a rule sending every TransactionAccepted to a queue we read.
    let sqs = SqsConfig {
        queue_url: String::new(),
        endpoint: Some(moto.clone()),
    };
    let (target_url, target_arn, sqs_client) =
        super::queue::create(&moto, &format!("events-target-{run}")).await?;
    let bus = format!("events-{run}");
    SdkEventBridge::connect(Some(&moto))
        .await
        .create_bus_with_queue_target(&bus, &format!("accepted-{run}"), &target_arn)
        .await?;
    let dead_url = SqsDeadLetters::create_queue(&sqs, &format!("events-dlq-{run}"))
        .await
        .map_err(|e| e.to_string())?;

    // The topic answers the first publishes with throttling and an outage: the relay retries.
    wire::send(
        topic_port,
        "POST",
        "/_sink/faults",
        &[("Content-Type", "application/json")],
        br#"{"statuses": [429, 503, 429]}"#,
        false,
    )
    .map_err(|e| format!("the Event Grid stand-in did not answer: {e}"))?;

    let binaries = tokio::task::block_in_place(|| Binaries::start(workspace.to_path_buf()))?;
    let mut lambda_env: Vec<(String, String)> = std::env::vars()
        .filter(|(n, _)| n.starts_with("AWS_"))
        .collect();
    lambda_env.extend(
        [
            ("PARACELL_STORE", "dynamodb".to_owned()),
            ("PARACELL_STORE_PROVISION", "1".to_owned()),
            ("PARACELL_DYNAMODB_TABLE", table.clone()),
            ("PARACELL_DYNAMODB_ENDPOINT", moto.clone()),
            ("PARACELL_EVENTBRIDGE_BUS", bus.clone()),
            ("PARACELL_EVENTBRIDGE_ENDPOINT", moto.clone()),
            ("PARACELL_DEAD_LETTERS", "sqs".to_owned()),
            ("PARACELL_DEAD_LETTER_QUEUE_URL", dead_url.clone()),
            ("PARACELL_SQS_ENDPOINT", moto.clone()),
        ]
        .map(|(n, v)| (n.to_owned(), v)),
    );
    let lambda_config = CellConfig::new(&aws_cell, TenantScope::All).map_err(|e| e.to_string())?;
    let lambda: LambdaProcess =
        tokio::task::block_in_place(|| binaries.start_lambda_with(&lambda_config, &lambda_env))?;
    let mut azure_env: Vec<(String, String)> = std::env::vars()
        .filter(|(n, _)| n.starts_with("AZURE_COSMOS_") || n.starts_with("PARACELL_COSMOS_"))
        .collect();
    azure_env.extend(
        [
            ("PARACELL_STORE", "cosmos".to_owned()),
            ("PARACELL_STORE_PROVISION", "1".to_owned()),
            ("PARACELL_COSMOS_CONTAINER", cosmos.container.clone()),
            ("PARACELL_EVENTGRID_ENDPOINT", topic.clone()),
            ("PARACELL_EVENTGRID_KEY", topic_key.clone()),
            ("PARACELL_DEAD_LETTERS", "cosmos".to_owned()),
            ("PARACELL_RELAY_POLL_MS", "100".to_owned()),
        ]
        .map(|(n, v)| (n.to_owned(), v)),
    );
    let azure_config = CellConfig::new(&azure_cell, TenantScope::All).map_err(|e| e.to_string())?;
    let azure: AzureProcess = tokio::task::block_in_place(|| {
        binaries.start_azure_with(&azure_config, "forwarding", &azure_env)
    })?;

    // The first invocation makes lambda-cell provision its table.
    let health = super::read_request("coop-1", "/health");
    tokio::task::block_in_place(|| answer(lambda.exchange(Envelope::AwsFunctionUrl, &health)))?;
    let conf = aws_config::from_env().endpoint_url(&moto).load().await;
    let mut stream = StreamReader::new(aws_sdk_dynamodbstreams::Client::new(&conf), &table);

    // The workload, the same on both cells.
    let mut rng = Rng::new(options.seed);
    let mut sent: Vec<ClientRequest> = Vec::new();
    let mut booked: BTreeMap<String, Instant> = BTreeMap::new();
    let mut differ = Vec::new();
    let mut invocations = 0;
    let mut repeated = 0;
    let mut failed_batches = 0;
    let mut eventbridge = Received::default();
    let mut eventgrid = Received::default();
    let mut topic_seen = 0;
    let source = format!("/cells/{azure_cell}");
    let mut writes = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    let progress = crate::progress::Progress::new(options.writes as u64, "writes");
    loop {
        progress.at(writes as u64);
        for _ in 0..4 {
            if writes >= options.writes {
                break;
            }
            writes += 1;
            let request = if !sent.is_empty() && rng.chance(10) {
                sent[usize::try_from(rng.below(sent.len() as u64)).unwrap_or(0)].clone()
            } else {
                let tenant = if rng.chance(50) { "coop-1" } else { "coop-2" };
                let account = if rng.chance(50) { "ACC-1" } else { "ACC-2" };
                let r = create_request(
                    tenant,
                    &format!("k-{writes}"),
                    account,
                    rng.chance(35),
                    rng.below(50_000) + 1,
                );
                sent.push(r.clone());
                r
            };
            let door = AWS_DOORS[usize::try_from(rng.below(4)).unwrap_or(0)];
            let a = tokio::task::block_in_place(|| answer(lambda.exchange(door, &request)))?;
            let b = tokio::task::block_in_place(|| {
                answer(azure.exchange(Envelope::AzureForwarding, &request, writes))
            })?;
            if a.status != b.status || !matches!(a.status, 201 | 409) {
                differ.push(format!("write {writes}: {} / {}", a.status, b.status));
            }
            if a.status == 201
                && a.header("idempotent-replayed") != Some("true")
                && let Some(location) = a.header("location")
            {
                let id = location.rsplit('/').next().unwrap_or_default().to_owned();
                booked.insert(id, Instant::now());
            }
        }
        // The event source mapping: new stream records → invocations, some twice.
        let records = stream.poll().await?;
        if !records.is_empty() {
            let times = if rng.chance(20) { 2 } else { 1 };
            repeated += times - 1;
            for _ in 0..times {
                invocations += 1;
                let event = json!({ "Records": records });
                let out = tokio::task::block_in_place(|| lambda.invoke(&event))?;
                if !out["batchItemFailures"]
                    .as_array()
                    .is_some_and(Vec::is_empty)
                {
                    failed_batches += 1;
                }
            }
        }
        read_queue(&sqs_client, &target_url, &mut eventbridge).await?;
        tokio::task::block_in_place(|| {
            read_topic(topic_port, &source, &mut topic_seen, &mut eventgrid)
        })?;
        let complete = |received: &Received| {
            let ids: BTreeSet<&str> = received
                .deliveries
                .iter()
                .filter_map(|(d, _)| {
                    d.get("detail").unwrap_or(d)["data"]["transaction_id"].as_str()
                })
                .collect();
            booked.keys().all(|id| ids.contains(id.as_str()))
        };
        if writes >= options.writes && complete(&eventbridge) && complete(&eventgrid) {
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The consumers, as deployed: every delivery, duplicates included.
    let consumer_env: Vec<(String, String)> = vec![("RUST_LOG".into(), "error".into())];
    let lambda_consumer = tokio::task::block_in_place(|| {
        binaries::start_function(
            workspace,
            &binary(workspace, "PARACELL_LAMBDA_CONSUMER", "lambda-consumer"),
            &consumer_env,
        )
    })?;
    let mut aws_projection = Value::Null;
    let mut aws_applied = 0;
    for (delivery, _) in &eventbridge.deliveries {
        let out = tokio::task::block_in_place(|| lambda_consumer.invoke(delivery))?;
        if out["seen"] == "applied" {
            aws_applied += 1;
        }
        aws_projection = out["projection"].clone();
    }
    let azure_consumer = AzureConsumer::start(&binary(
        workspace,
        "PARACELL_AZURE_CONSUMER",
        "azure-consumer",
    ))?;
    let mut azure_projection = Value::Null;
    let mut azure_applied = 0;
    // Event Grid delivers at least once too: some events reach the function twice.
    let mut redelivered = 0;
    for (event, _) in &eventgrid.deliveries {
        let times = if rng.chance(10) { 2 } else { 1 };
        redelivered += times - 1;
        for _ in 0..times {
            let out = tokio::task::block_in_place(|| azure_consumer.invoke(event))?;
            azure_applied += out["lines"].as_array().map_or(0, |l| {
                l.iter()
                    .filter(|l| l.as_str().is_some_and(|l| l.starts_with("applied ")))
                    .count()
            });
            azure_projection = out["projection"].clone();
        }
    }

    // What the buses carried, read back with the consumers' decoders.
    let (aws_events, aws_duplicates, aws_unreadable) =
        eventbridge.distinct(paracell_aws::inbound::eventbridge::accepted_event);
    let (azure_events, azure_duplicates, azure_unreadable) = eventgrid.distinct(|event| {
        paracell_azure::inbound::eventgrid::accepted_events(&json!({ "event": event }))
            .and_then(|mut e| e.pop().ok_or_else(|| "no event".to_owned()))
    });
    let dead_aws = SqsDeadLetters::connect(&SqsConfig {
        queue_url: dead_url.clone(),
        endpoint: Some(moto.clone()),
    })
    .await
    .list(100)
    .await
    .map_err(|e| e.to_string())?
    .len();
    let cosmos_store = CosmosStore::connect(&cosmos)
        .await
        .map_err(|e| e.to_string())?;
    let dead_azure = CosmosDeadLetters::new(cosmos_store)
        .list(100)
        .await
        .map_err(|e| e.to_string())?
        .len();

    let latency = |received: &Received| {
        let mut first: BTreeMap<&str, Instant> = BTreeMap::new();
        for (d, at) in &received.deliveries {
            if let Some(id) = d.get("detail").unwrap_or(d)["data"]["transaction_id"].as_str() {
                first.entry(id).or_insert(*at);
            }
        }
        let mut samples: Vec<Duration> = first
            .iter()
            .filter_map(|(id, at)| booked.get(*id).map(|b| at.saturating_duration_since(*b)))
            .collect();
        percentiles(&mut samples)
    };
    let (a50, a99, _) = latency(&eventbridge);
    let (b50, b99, _) = latency(&eventgrid);

    progress.finish();
    report.figure("writes (the same to both cells)", options.writes);
    report.figure("transactions booked", booked.len());
    report.figure(
        "published, distinct (EventBridge / Event Grid)",
        format!("{} / {}", aws_events.len(), azure_events.len()),
    );
    report.figure(
        "duplicates delivered (EventBridge / Event Grid)",
        format!("{aws_duplicates} / {azure_duplicates}"),
    );
    report.figure("Event Grid redeliveries to azure-consumer", redelivered);
    report.figure(
        "dead-lettered (SQS / Cosmos DB)",
        format!("{dead_aws} / {dead_azure}"),
    );
    report.figure(
        "stream invocations, repeated",
        format!("{invocations}, {repeated}"),
    );
    report.figure(
        "publish latency EventBridge → SQS, read back (p50/p99)",
        format!("{a50:.0?} / {a99:.0?}"),
    );
    report.figure(
        "publish latency Event Grid stand-in, read back (p50/p99)",
        format!("{b50:.0?} / {b99:.0?}"),
    );
    report.figure("elapsed", format!("{:.1?}", started.elapsed()));

    report.check(
        "both cells answered every write alike (201 or 409)",
        differ.is_empty(),
        differ.first().cloned().unwrap_or_default(),
    );
    report.check(
        "every stream batch succeeded",
        failed_batches == 0,
        format!("{failed_batches} reported failures"),
    );
    let ids = |events: &BTreeMap<String, TransactionAccepted>| -> BTreeSet<String> {
        events
            .values()
            .map(|e| e.transaction.transaction_id.to_string())
            .collect()
    };
    let booked_ids: BTreeSet<String> = booked.keys().cloned().collect();
    report.check(
        "nothing lost: every booked transaction reached both buses, once each as a distinct event",
        ids(&aws_events) == booked_ids
            && ids(&azure_events) == booked_ids
            && aws_events.len() == booked.len()
            && azure_events.len() == booked.len(),
        format!(
            "EventBridge {}, Event Grid {}, booked {}",
            aws_events.len(),
            azure_events.len(),
            booked.len()
        ),
    );
    report.check(
        "every delivery decoded with the consumers' decoders",
        aws_unreadable.is_empty() && azure_unreadable.is_empty(),
        aws_unreadable
            .first()
            .or(azure_unreadable.first())
            .cloned()
            .unwrap_or_default(),
    );
    let swap = |d: String| {
        d.replace(
            &format!("/cells/{aws_cell}\""),
            &format!("/cells/{azure_cell}\""),
        )
        .replace(
            &format!("\"cell_id\":\"{aws_cell}\""),
            &format!("\"cell_id\":\"{azure_cell}\""),
        )
    };
    // Each request has its own trace (`traceparent`): compared without it, and required on every event.
    let untraced = |e: &TransactionAccepted| {
        TransactionAccepted {
            trace: None,
            ..e.clone()
        }
        .document()
    };
    let traced = aws_events
        .values()
        .chain(azure_events.values())
        .all(|e| e.trace.is_some());
    let aws_docs: BTreeSet<String> = aws_events.values().map(|e| swap(untraced(e))).collect();
    let azure_docs: BTreeSet<String> = azure_events.values().map(untraced).collect();
    let first_difference = aws_docs.symmetric_difference(&azure_docs).next().cloned();
    report.check(
        "both buses carry the same CloudEvent documents, byte for byte (source cell and trace aside), every one with its trace",
        first_difference.is_none() && !aws_docs.is_empty() && traced,
        first_difference.unwrap_or_else(|| format!("every event traced: {traced}")),
    );
    report.check(
        "each consumer applied every event once and absorbed the duplicates",
        aws_applied == booked.len()
            && azure_applied == booked.len()
            && aws_projection["events"] == json!(booked.len())
            && azure_projection["events"] == json!(booked.len()),
        format!(
            "lambda-consumer {aws_applied} applied of {}, azure-consumer {azure_applied} applied of {}",
            eventbridge.deliveries.len(),
            eventgrid.deliveries.len() + redelivered
        ),
    );
    report.check(
        "both consumers' read models agree (every balance at the same version)",
        aws_projection["balances"] == azure_projection["balances"]
            && aws_projection["balances"]
                .as_object()
                .is_some_and(|b| !b.is_empty()),
        format!(
            "{} / {} balances",
            aws_projection["balances"]
                .as_object()
                .map_or(0, serde_json::Map::len),
            azure_projection["balances"]
                .as_object()
                .map_or(0, serde_json::Map::len)
        ),
    );
    report.check(
        "nothing dead-lettered (the injected 429/503 were retried)",
        dead_aws == 0 && dead_azure == 0,
        format!("{dead_aws} on SQS, {dead_azure} on Cosmos DB"),
    );
    Ok(())
}

/// `azure-consumer`, started and probed as the Functions host does.
struct AzureConsumer {
    _process: binaries::Running,
    port: u16,
}

impl AzureConsumer {
    fn start(path: &Path) -> Result<Self, String> {
        if !path.is_file() {
            return Err(format!("{} is missing: build it first", path.display()));
        }
        let port = wire::free_port().map_err(|e| e.to_string())?;
        let child = std::process::Command::new(path)
            .env_clear()
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", path.display()))?;
        let consumer = Self {
            _process: binaries::Running(child),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while wire::send(port, "GET", "/", &[], b"", false).is_err() {
            if Instant::now() > deadline {
                return Err("azure-consumer did not become ready within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Ok(consumer)
    }

    /// One Event Grid trigger invocation of `TransactionAccepted` with `event`; its `ReturnValue`.
    fn invoke(&self, event: &Value) -> Result<Value, String> {
        let body = json!({"Data": {"event": event}, "Metadata": {}}).to_string();
        let reply = wire::send(
            self.port,
            "POST",
            "/TransactionAccepted",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
            false,
        )
        .map_err(|e| format!("azure-consumer did not answer: {e}"))?;
        let envelope: Value = serde_json::from_slice(&reply.body)
            .map_err(|e| format!("azure-consumer's answer is not JSON: {e}"))?;
        if reply.status != 200 {
            return Err(format!(
                "azure-consumer failed ({}): {}",
                reply.status, envelope["Logs"]
            ));
        }
        Ok(envelope["ReturnValue"].clone())
    }
}
