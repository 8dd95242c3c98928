//! The replication drill through the built binaries on local stand-ins (run it under
//! `scripts/dev-services.sh`): `lambda-cell` on DynamoDB (moto) under cargo-lambda's runtime
//! emulator, and `azure-cell` on Cosmos DB (`@vercel/cosmosdb-server`) over loopback.
//!
//! * AWS → Azure: the drill plays Lambda's event source mapping: it reads the table's real stream
//!   (`GetRecords` on moto's DynamoDB Streams), invokes `lambda-cell` with the records as stream
//!   batches (split, reordered and sometimes invoked twice), and `lambda-cell`'s relay delivers to
//!   `azure-cell`'s replication route over HTTP.
//! * Azure → AWS: the Cosmos DB stand-in has no change feed, so `azure-cell` relays from its store's
//!   pending entries (`PARACELL_RELAY_POLL_MS`), the same relay code its change-feed function runs,
//!   to `lambda-cell`'s replication route behind a loopback "Function URL" the drill serves: it
//!   renders each request as a Function URL event for the emulator, and injects disorder on the way
//!   (it holds some deliveries and sends them after the next one, and re-sends some, signed afresh).
//!
//! Both cells are the primary of one tenant and the standby of the other's; at the end their stores
//! must hold the same positions and their front doors answer every read alike.

use super::stream::StreamReader;
use super::{
    DrillReport, Rng, answer, count_percentiles, create_request, dev_env, percentiles, read_request,
};
use crate::binaries::{AzureProcess, Binaries, LambdaProcess};
use crate::drill::replication::Options;
use crate::envelopes::{Envelope, Exchange};
use crate::request::{ClientRequest, ClientResponse};
use paracell_aws::outbound::dynamodb::{DynamoConfig, DynamoStore};
use paracell_aws::outbound::sqs::{SqsConfig, SqsDeadLetters};
use paracell_azure::outbound::cosmos::{CosmosConfig, CosmosDeadLetters, CosmosStore};
use paracell_domain::ports::TransactionStore;
use paracell_domain::replication::batch;
use paracell_domain::replication::relay::DeadLetters;
use paracell_domain::replication::signature::{PeerSecret, SignatureHeaders};
use paracell_domain::{CellConfig, CellId, TenantId, TenantScope};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(crate) const SECRET: &str = "whsec_ZHJpbGwtYmluYXJpZXMtc2hhcmVkLXNlY3JldA==";
use super::BINARY_AWS_DOORS as AWS_DOORS;

/// Runs the drill.
pub fn run(options: Options, workspace: &Path) -> DrillReport {
    super::run_on_runtime(4, async |report| drill(options, workspace, report).await)
}

#[derive(Default)]
pub(crate) struct Disorder {
    held: AtomicUsize,
    resent: AtomicUsize,
    forwarded: AtomicUsize,
}

/// The loopback "Function URL" in front of `lambda-cell`, for `azure-cell`'s deliveries.
pub(crate) struct FrontDoor {
    pub(crate) lambda: Arc<LambdaProcess>,
    pub(crate) rng: Mutex<Rng>,
    pub(crate) held: Mutex<Vec<ClientRequest>>,
    pub(crate) disorder: Disorder,
    pub(crate) signer: PeerSecret,
    /// The chance, in percent, that a delivery is held back, and that one is sent twice.
    pub(crate) disorder_percent: u64,
}

impl FrontDoor {
    fn forward(&self, request: &ClientRequest) -> Result<ClientResponse, String> {
        self.disorder.forwarded.fetch_add(1, Ordering::Relaxed);
        match self.lambda.exchange(Envelope::AwsFunctionUrl, request) {
            Exchange::Response(r) => Ok(r),
            Exchange::NotApplicable(r) => Err(r.to_owned()),
            Exchange::Failed(e) => Err(e),
        }
    }

    /// Sends whatever is held (a held delivery goes out after the next one: reordered).
    fn release(&self) {
        let held: Vec<ClientRequest> =
            std::mem::take(&mut *self.held.lock().unwrap_or_else(|p| p.into_inner()));
        for request in held {
            let _ = self.forward(&request);
        }
    }

    /// Answers one delivery, sometimes holding it (answering "held" for its entries, as a queue
    /// in between would) or re-sending it signed afresh (a relay retry after a lost answer).
    fn handle(&self, request: ClientRequest) -> Result<ClientResponse, String> {
        let is_delivery =
            request.path == paracell_domain::replication::relay::ROUTE && request.method == "POST";
        let (hold, resend) = {
            let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
            (
                is_delivery && rng.chance(self.disorder_percent),
                is_delivery && rng.chance(self.disorder_percent),
            )
        };
        if hold {
            let ids: Vec<String> = batch::parse(&request.body)
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter_map(Result::ok)
                .map(|e| e.digest().to_string())
                .collect();
            let results: Vec<batch::EntryResult> = ids
                .into_iter()
                .map(|id| batch::EntryResult {
                    id,
                    tenant: None,
                    seq: None,
                    outcome: batch::Outcome::Held,
                    detail: Some("held by the drill's front door".into()),
                })
                .collect();
            self.held
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(request);
            self.disorder.held.fetch_add(1, Ordering::Relaxed);
            return Ok(ClientResponse::new(
                200,
                [("content-type".to_owned(), "application/json".to_owned())],
                batch::render_results(&results).into_bytes(),
            ));
        }
        let response = self.forward(&request)?;
        self.release();
        if resend {
            let now = i64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
            )
            .unwrap_or(0);
            let mut again = request.clone();
            again
                .headers
                .retain(|(n, _)| !n.to_ascii_lowercase().starts_with("webhook-"));
            let id = format!(
                "resend-{}",
                self.disorder.resent.fetch_add(1, Ordering::Relaxed)
            );
            for (name, value) in SignatureHeaders::sign(&self.signer, &id, now, &again.body).lines()
            {
                again.headers.push((name.to_owned(), value));
            }
            let _ = self.forward(&again);
        }
        Ok(response)
    }
}

/// A minimal HTTP/1.1 server: one request per connection (the relay's client reconnects).
pub(crate) async fn serve_front_door(listener: tokio::net::TcpListener, door: Arc<FrontDoor>) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            continue;
        };
        let door = door.clone();
        tokio::spawn(async move {
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 8192];
            let head_end = loop {
                match socket.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                }
                if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i;
                }
            };
            let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
            let mut lines = head.split("\r\n");
            let mut first = lines.next().unwrap_or_default().split(' ');
            let method = first.next().unwrap_or_default().to_owned();
            let target = first.next().unwrap_or("/").to_owned();
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                .collect();
            let length: usize = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = buffer[head_end + 4..].to_vec();
            while body.len() < length {
                match socket.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => body.extend_from_slice(&chunk[..n]),
                }
            }
            let (path, query) = target.split_once('?').unwrap_or((&target, ""));
            let request = ClientRequest {
                method,
                path: path.to_owned(),
                query: query.to_owned(),
                headers: headers
                    .into_iter()
                    .filter(|(n, _)| {
                        !["host", "content-length", "connection"]
                            .contains(&n.to_ascii_lowercase().as_str())
                    })
                    .collect(),
                body,
                chunked: false,
                authenticated_tenant: None,
            };
            let answer = tokio::task::spawn_blocking(move || door.handle(request)).await;
            let response = match answer {
                Ok(Ok(r)) => r,
                _ => ClientResponse::new(502, [], b"front door: the function failed".to_vec()),
            };
            let mut out = format!(
                "HTTP/1.1 {} X\r\nconnection: close\r\ncontent-length: {}\r\n",
                response.status,
                response.body.len()
            );
            for (n, v) in &response.headers {
                out.push_str(&format!("{n}: {v}\r\n"));
            }
            out.push_str("\r\n");
            let _ = socket.write_all(out.as_bytes()).await;
            let _ = socket.write_all(&response.body).await;
            let _ = socket.shutdown().await;
        });
    }
}

/// A tenant's position on lambda-cell's store and on azure-cell's.
async fn positions(
    dynamo: &DynamoStore,
    cosmos: &CosmosStore,
    tenant: &TenantId,
) -> Result<
    (
        Option<paracell_domain::replication::Position>,
        Option<paracell_domain::replication::Position>,
    ),
    String,
> {
    let a = dynamo.head(tenant).await.map_err(|e| e.to_string())?;
    let b = cosmos.head(tenant).await.map_err(|e| e.to_string())?;
    Ok((a.map(|h| h.position), b.map(|h| h.position)))
}

async fn drill(options: Options, workspace: &Path, report: &mut DrillReport) -> Result<(), String> {
    let started = Instant::now();
    let dynamo_endpoint = dev_env("PARACELL_DYNAMODB_ENDPOINT")?;
    let cosmos = CosmosConfig::from_lookup(|n| {
        if n == "PARACELL_COSMOS_CONTAINER" {
            Some(format!("drill-{}", std::process::id()))
        } else {
            std::env::var(n).ok()
        }
    })?;
    let table = format!("drill-{}", std::process::id());
    let sqs = SqsConfig {
        queue_url: String::new(),
        endpoint: Some(dynamo_endpoint.clone()),
    };
    let queue_url =
        SqsDeadLetters::create_queue(&sqs, &format!("drill-dlq-{}", std::process::id()))
            .await
            .map_err(|e| e.to_string())?;

    let binaries = tokio::task::block_in_place(|| Binaries::start(workspace.to_path_buf()))?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| e.to_string())?;
    let door_port = listener.local_addr().map_err(|e| e.to_string())?.port();

    // azure-cell: primary of coop-azure, standby of coop-aws; relays by polling its store.
    let azure_config =
        CellConfig::new("cell-azure", TenantScope::All).map_err(|e| e.to_string())?;
    let mut azure_env: Vec<(String, String)> = std::env::vars()
        .filter(|(n, _)| n.starts_with("AZURE_COSMOS_") || n.starts_with("PARACELL_COSMOS_"))
        .collect();
    azure_env.extend(
        [
            ("PARACELL_STORE", "cosmos".to_owned()),
            ("PARACELL_STORE_PROVISION", "1".to_owned()),
            ("PARACELL_COSMOS_CONTAINER", cosmos.container.clone()),
            ("PARACELL_DETERMINISTIC", "0".to_owned()),
            (
                "PARACELL_PEERS",
                format!("cell-aws=http://127.0.0.1:{door_port}"),
            ),
            ("PARACELL_PEER_SECRETS", format!("cell-aws={SECRET}")),
            ("PARACELL_DEAD_LETTERS", "cosmos".to_owned()),
            ("PARACELL_RELAY_POLL_MS", "100".to_owned()),
        ]
        .map(|(n, v)| (n.to_owned(), v)),
    );
    let azure: AzureProcess = tokio::task::block_in_place(|| {
        binaries.start_azure_with(&azure_config, "forwarding", &azure_env)
    })?;

    // lambda-cell: primary of coop-aws, standby of coop-azure; relays the stream batches it is given.
    let lambda_config = CellConfig::new("cell-aws", TenantScope::All).map_err(|e| e.to_string())?;
    let mut lambda_env: Vec<(String, String)> = std::env::vars()
        .filter(|(n, _)| n.starts_with("AWS_"))
        .collect();
    lambda_env.extend(
        [
            ("PARACELL_STORE", "dynamodb".to_owned()),
            ("PARACELL_STORE_PROVISION", "1".to_owned()),
            ("PARACELL_DYNAMODB_TABLE", table.clone()),
            ("PARACELL_DYNAMODB_ENDPOINT", dynamo_endpoint.clone()),
            ("PARACELL_DETERMINISTIC", "0".to_owned()),
            (
                "PARACELL_PEERS",
                format!("cell-azure=http://127.0.0.1:{}/api", azure.port()),
            ),
            ("PARACELL_PEER_SECRETS", format!("cell-azure={SECRET}")),
            ("PARACELL_DEAD_LETTERS", "sqs".to_owned()),
            ("PARACELL_DEAD_LETTER_QUEUE_URL", queue_url.clone()),
            ("PARACELL_SQS_ENDPOINT", dynamo_endpoint.clone()),
        ]
        .map(|(n, v)| (n.to_owned(), v)),
    );
    let lambda = Arc::new(tokio::task::block_in_place(|| {
        binaries.start_lambda_with(&lambda_config, &lambda_env)
    })?);
    let signer = PeerSecret::parse(
        CellId::parse("cell-azure").map_err(|e| e.to_string())?,
        SECRET,
    )
    .map_err(|e| e.to_string())?;
    let door = Arc::new(FrontDoor {
        lambda: lambda.clone(),
        rng: Mutex::new(Rng::new(options.seed ^ 0x5eed)),
        held: Mutex::new(Vec::new()),
        disorder: Disorder::default(),
        signer,
        disorder_percent: 15,
    });
    tokio::spawn(serve_front_door(listener, door.clone()));

    // The stores, read directly to watch positions.
    let dynamo =
        DynamoStore::connect(&DynamoConfig::new(&table).with_endpoint(&dynamo_endpoint)).await;
    // The first invocation makes lambda-cell provision its table; a health check is enough.
    let first = tokio::task::block_in_place(|| {
        lambda.exchange(
            Envelope::AwsFunctionUrl,
            &read_request("coop-aws", "/health"),
        )
    });
    answer(first)?;
    let cosmos_store = CosmosStore::connect(&cosmos)
        .await
        .map_err(|e| e.to_string())?;
    let conf = aws_config::from_env()
        .endpoint_url(&dynamo_endpoint)
        .load()
        .await;
    let mut stream = StreamReader::new(aws_sdk_dynamodbstreams::Client::new(&conf), &table);

    let tenants = [
        TenantId::parse("coop-aws").map_err(|e| e.to_string())?,
        TenantId::parse("coop-azure").map_err(|e| e.to_string())?,
    ];
    let mut rng = Rng::new(options.seed);
    let mut acked: BTreeMap<(String, String), Instant> = BTreeMap::new();
    let mut locations: Vec<(String, String)> = Vec::new();
    let mut accounts: BTreeSet<(String, String)> = BTreeSet::new();
    let mut sent: Vec<(String, String, ClientRequest)> = Vec::new();
    let mut unexpected = Vec::new();
    let mut bad_replays = 0;
    let mut stream_invocations = 0;
    let mut stream_duplicates = 0;
    let mut stream_reorders = 0;
    let mut stream_failures = 0;
    let mut lag_entries: Vec<u64> = Vec::new();
    let mut reached: BTreeMap<(String, u64), Instant> = BTreeMap::new();
    let mut pending_records: Vec<serde_json::Value> = Vec::new();

    let mut writes_done = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut quiet_rounds = 0;
    let progress = crate::progress::Progress::new(options.writes as u64, "writes");
    while (writes_done < options.writes || quiet_rounds < 3) && Instant::now() < deadline {
        progress.at(writes_done as u64);
        // A few writes.
        for _ in 0..3 {
            if writes_done >= options.writes {
                break;
            }
            writes_done += 1;
            let i = writes_done;
            let tenant = if rng.chance(50) {
                "coop-aws"
            } else {
                "coop-azure"
            };
            let retry = !sent.is_empty() && rng.chance(10);
            let (key, request) = if retry {
                let pick = usize::try_from(rng.below(sent.len() as u64)).unwrap_or(0);
                let (t, k, r) = sent[pick].clone();
                if t != tenant {
                    continue;
                }
                (k, r)
            } else {
                let account = if rng.chance(50) { "ACC-1" } else { "ACC-2" };
                let key = format!("k-{i}");
                let request =
                    create_request(tenant, &key, account, rng.chance(40), rng.below(50_000) + 1);
                accounts.insert((tenant.to_owned(), account.to_owned()));
                sent.push((tenant.to_owned(), key.clone(), request.clone()));
                (key, request)
            };
            let response = if tenant == "coop-aws" {
                let door_envelope =
                    AWS_DOORS[usize::try_from(rng.below(AWS_DOORS.len() as u64)).unwrap_or(0)];
                tokio::task::block_in_place(|| answer(lambda.exchange(door_envelope, &request)))?
            } else {
                tokio::task::block_in_place(|| {
                    answer(azure.exchange(Envelope::AzureForwarding, &request, i))
                })?
            };
            let replayed = response.header("idempotent-replayed") == Some("true");
            match (response.status, retry) {
                (201 | 409, true) if !replayed => bad_replays += 1,
                (201 | 409, true) => {}
                (201, false) => {
                    if let Some(l) = response.header("location") {
                        locations.push((tenant.to_owned(), l.to_owned()));
                    }
                    acked.insert((tenant.to_owned(), key), Instant::now());
                }
                (409, false) => {
                    acked.insert((tenant.to_owned(), key), Instant::now());
                }
                (status, _) => unexpected.push(format!(
                    "{tenant} {key}: {status} {}",
                    String::from_utf8_lossy(&response.body)
                )),
            }
        }
        // The event source mapping: new stream records → invocations (split, shuffled, repeated).
        pending_records.extend(stream.poll().await?);
        if !pending_records.is_empty() && (rng.chance(60) || writes_done >= options.writes) {
            let records = std::mem::take(&mut pending_records);
            let groups = usize::try_from(rng.below(3) + 1)
                .unwrap_or(1)
                .min(records.len());
            let mut split: Vec<Vec<serde_json::Value>> = vec![Vec::new(); groups];
            for r in records {
                let g = usize::try_from(rng.below(groups as u64)).unwrap_or(0);
                split[g].push(r);
            }
            split.retain(|g| !g.is_empty());
            if split.len() > 1 && rng.chance(50) {
                split.reverse();
                stream_reorders += 1;
            }
            for group in split {
                let times = if rng.chance(20) { 2 } else { 1 };
                stream_duplicates += times - 1;
                for _ in 0..times {
                    stream_invocations += 1;
                    let event = serde_json::json!({ "Records": group });
                    let out = tokio::task::block_in_place(|| lambda.invoke(&event))?;
                    if !out["batchItemFailures"]
                        .as_array()
                        .is_some_and(Vec::is_empty)
                    {
                        stream_failures += 1;
                    }
                }
            }
        }
        // Positions.
        let mut caught_up = true;
        for tenant in &tenants {
            let (a, b) = positions(&dynamo, &cosmos_store, tenant).await?;
            let (primary, standby) = if tenant.as_str() == "coop-aws" {
                (a, b)
            } else {
                (b, a)
            };
            let p = primary.map_or(0, |p| p.seq);
            let s = standby.map_or(0, |p| p.seq);
            lag_entries.push(p.saturating_sub(s));
            for seq in 1..=s {
                reached
                    .entry((tenant.to_string(), seq))
                    .or_insert_with(Instant::now);
            }
            caught_up &= primary == standby;
        }
        if writes_done >= options.writes {
            door.release();
            quiet_rounds = if caught_up { quiet_rounds + 1 } else { 0 };
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }

    // Lag in time: entry n of a tenant was acknowledged to a client, then reached the standby.
    let mut lags = Vec::new();
    for tenant in &tenants {
        let primary: &dyn TransactionStore = if tenant.as_str() == "coop-aws" {
            &dynamo
        } else {
            &cosmos_store
        };
        let entries = primary
            .entries_after(tenant, 0, 100_000)
            .await
            .map_err(|e| e.to_string())?;
        for e in entries {
            if let (Some(at), Some(done)) = (
                acked.get(&(tenant.to_string(), e.entry().key.to_string())),
                reached.get(&(tenant.to_string(), e.seq())),
            ) {
                lags.push(done.saturating_duration_since(*at));
            }
        }
    }
    let (l50, l99, lmax) = percentiles(&mut lags);
    let (e50, e99, emax) = count_percentiles(&mut lag_entries);
    let mut final_positions = Vec::new();
    for tenant in &tenants {
        let (a, b) = positions(&dynamo, &cosmos_store, tenant).await?;
        final_positions.push((tenant.to_string(), a, b));
    }
    progress.finish();
    report.figure("writes", options.writes);
    report.figure("acknowledged (201 or 409)", acked.len());
    for (tenant, a, b) in &final_positions {
        report.figure(
            &format!("{tenant}: entries on lambda-cell / azure-cell"),
            format!("{} / {}", a.map_or(0, |p| p.seq), b.map_or(0, |p| p.seq)),
        );
    }
    report.figure("stream invocations (AWS → Azure)", stream_invocations);
    report.figure(
        "  duplicated / reordered",
        format!("{stream_duplicates} / {stream_reorders}"),
    );
    report.figure(
        "deliveries through the front door (Azure → AWS)",
        door.disorder.forwarded.load(Ordering::Relaxed),
    );
    report.figure(
        "  held and sent late / re-sent",
        format!(
            "{} / {}",
            door.disorder.held.load(Ordering::Relaxed),
            door.disorder.resent.load(Ordering::Relaxed)
        ),
    );
    report.figure(
        "lag, entries behind the primary (p50/p99/max)",
        format!("{e50} / {e99} / {emax}"),
    );
    report.figure(
        "lag, acknowledged → applied on the standby (p50/p99/max)",
        format!("{l50:.0?} / {l99:.0?} / {lmax:.0?}"),
    );
    report.figure("elapsed", format!("{:.1?}", started.elapsed()));

    report.check(
        "every write answered 201, 409 or a replay",
        unexpected.is_empty(),
        unexpected.first().cloned().unwrap_or_default(),
    );
    report.check(
        "every retry replayed the first outcome",
        bad_replays == 0,
        format!("{bad_replays} did not"),
    );
    report.check(
        "every stream batch succeeded",
        stream_failures == 0,
        format!("{stream_failures} reported failures"),
    );
    let same = final_positions
        .iter()
        .all(|(_, a, b)| a.is_some() && a == b);
    let shown: Vec<String> = final_positions
        .iter()
        .map(|(t, a, b)| {
            let show = |p: &Option<paracell_domain::replication::Position>| {
                p.map_or("none".to_owned(), |p| {
                    format!("{}@{}", p.seq, &p.digest.to_string()[..12])
                })
            };
            format!("{t} {} / {}", show(a), show(b))
        })
        .collect();
    report.check(
        "both stores end at the same position (sequence and digest) for both tenants",
        same,
        shown.join(", "),
    );
    let sqs_letters = SqsDeadLetters::connect(&SqsConfig {
        queue_url: queue_url.clone(),
        endpoint: Some(dynamo_endpoint.clone()),
    })
    .await
    .list(100)
    .await
    .map_err(|e| e.to_string())?;
    let cosmos_letters = CosmosDeadLetters::new(cosmos_store.clone())
        .list(100)
        .await
        .map_err(|e| e.to_string())?;
    report.check(
        "no dead letters on either cloud (no divergence, no poison)",
        sqs_letters.is_empty() && cosmos_letters.is_empty(),
        format!(
            "{} on SQS, {} on Cosmos DB",
            sqs_letters.len(),
            cosmos_letters.len()
        ),
    );
    let mut probes: Vec<ClientRequest> =
        locations.iter().map(|(t, l)| read_request(t, l)).collect();
    probes.extend(
        accounts
            .iter()
            .map(|(t, a)| read_request(t, &format!("/v1/accounts/{a}/balances"))),
    );
    let mut differing = Vec::new();
    let mut missing = 0;
    for (i, probe) in probes.iter().enumerate() {
        let a = tokio::task::block_in_place(|| {
            answer(lambda.exchange(Envelope::AwsFunctionUrl, probe))
        })?;
        let b = tokio::task::block_in_place(|| {
            answer(azure.exchange(Envelope::AzureForwarding, probe, 100_000 + i))
        })?;
        if a.status != 200 || b.status != 200 {
            missing += 1;
        }
        if crate::runner::difference(&a, &b).is_some() {
            differing.push(probe.path.clone());
        }
    }
    report.figure("reads compared", probes.len());
    report.check(
        "every acknowledged transaction and balance is on both cells",
        missing == 0,
        format!("{missing} missing"),
    );
    report.check(
        "both front doors answer every read byte for byte",
        differing.is_empty(),
        differing.first().cloned().unwrap_or_default(),
    );
    Ok(())
}
