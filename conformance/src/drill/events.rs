//! The events drill, in process: the same seeded workload goes to an AWS cell (behind the Lambda
//! adapter, relaying from DynamoDB Streams events to EventBridge) and to an Azure cell (behind the
//! custom handler, relaying from Cosmos DB trigger invocations to an Event Grid topic). The buses are
//! models that answer the way the services do, with faults injected: `PutEvents` partial failures
//! (throttled entries, whole calls refused) and one entry refused for good; Event Grid 429s, 503s,
//! 413s, one 400 (refused for good: dead-lettered) and one 401 (our key refused: a configuration
//! fault, kept pending and published by a later run, never dead-lettered). The relays run at random moments on random splits of the pending entries,
//! sometimes twice, and the store sometimes fails to mark what was published (a crash between
//! publishing and marking: the next run publishes it again, with the same id).
//!
//! At the end every booked transaction must have reached both buses, the two buses must carry the
//! same CloudEvent documents byte for byte (the `source` cell aside), what was dead-lettered must
//! have been replayed back, and the consumers' decoders must read every delivery back to the exact
//! document, deduplicating on `source` + `id`.

use super::{DrillReport, Options, RelayHost, Rng, create_request, percentiles, random_groups};
use crate::envelopes::Envelope;
use crate::request::ClientRequest;
use crate::runner;
use paracell_aws::LambdaCell;
use paracell_aws::outbound::eventbridge::{
    BusEntry, EntryResult, EventBridgeBus, MAX_BYTES as EVENTBRIDGE_MAX_BYTES, MAX_ENTRIES,
    PutEvents,
};
use paracell_azure::outbound::eventgrid::{EventGridTopic, TopicAuth};
use paracell_azure::{AzureConfig, AzureHandler, Mode};
use paracell_domain::events::TransactionAccepted;
use paracell_domain::memory::{
    MemoryDeadLetters, MemoryStore, NoSleep, SequentialIds, SteppingClock,
};
use paracell_domain::ports::{
    HttpClient, OutboundRequest, OutboundResponse, StoreError, SystemClock, TransactionStore,
    TransportError,
};
use paracell_domain::replication::relay::{DeadLetters, DeliveryError, Relay, RelayPolicy};
use paracell_domain::testing::faults::{FaultyStore, Operation};
use paracell_domain::{Cell, CellConfig, CellPorts, TenantScope};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const AWS_CELL: &str = "cell-aws";
const AZURE_CELL: &str = "cell-azure";
const TOPIC_KEY: &str = "drill-topic-key";
const TOPIC: &str = "http://drill-topic.westeurope-1.eventgrid.azure.net";
const AWS_DOORS: [Envelope; 6] = [
    Envelope::AwsApigwV1,
    Envelope::AwsApigwV2,
    Envelope::AwsApigwV2Stage,
    Envelope::AwsFunctionUrl,
    Envelope::AwsAlb,
    Envelope::AwsAlbMultivalue,
];
const AZURE_DOORS: [Envelope; 2] = [Envelope::AzurePayload, Envelope::AzureForwarding];

/// What a bus model saw.
#[derive(Default)]
struct BusLog {
    /// Each delivery a subscriber got, in order, duplicates kept, with when the bus took it.
    deliveries: Vec<(Value, Instant)>,
    calls: usize,
    /// Calls over the service's limits (must stay 0).
    oversized_calls: usize,
    /// Entries or calls refused and retried.
    retried: usize,
    /// Calls split after a 413.
    splits: usize,
    /// Calls answered 401 (the relay's credentials refused).
    unauthorized: usize,
}

/// EventBridge's `PutEvents`, as the service answers: up to 10 entries, each accepted or failed in
/// request order; a rule sends each accepted entry to its target as the EventBridge envelope.
struct EventBridgeModel {
    rng: Mutex<Rng>,
    log: Mutex<BusLog>,
    /// Refuse one entry for good (`AccessDeniedException`) on the call with this number.
    refuse_on_call: usize,
    refused: AtomicBool,
}

#[async_trait::async_trait]
impl PutEvents for EventBridgeModel {
    async fn put_events(&self, entries: &[BusEntry]) -> Result<Vec<EntryResult>, DeliveryError> {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        log.calls += 1;
        let bytes: usize = entries.iter().map(BusEntry::size).sum();
        if entries.len() > MAX_ENTRIES || bytes > EVENTBRIDGE_MAX_BYTES {
            log.oversized_calls += 1;
            return Err(DeliveryError::Rejected(
                "ValidationException: too large".into(),
            ));
        }
        if rng.chance(5) {
            log.retried += entries.len();
            return Err(DeliveryError::Retryable {
                reason: "ThrottlingException: Rate exceeded".into(),
                retry_after: None,
            });
        }
        let refuse_one =
            log.calls >= self.refuse_on_call && !self.refused.swap(true, Ordering::Relaxed);
        let mut results = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            if refuse_one && i == 0 {
                results.push(EntryResult::Failed {
                    code: "AccessDeniedException".into(),
                    message: "not authorized to put events on this bus (injected)".into(),
                });
            } else if rng.chance(12) {
                log.retried += 1;
                results.push(EntryResult::Failed {
                    code: "ThrottlingException".into(),
                    message: "Rate exceeded".into(),
                });
            } else {
                let id = format!("eb-{}", log.deliveries.len());
                // What the rule's target receives: EventBridge parses `Detail` and re-serialises it.
                let detail: Value = serde_json::from_str(&entry.detail).unwrap_or(Value::Null);
                let envelope = serde_json::json!({
                    "version": "0", "id": id, "detail-type": entry.detail_type,
                    "source": entry.source, "account": "000000000000",
                    "time": "2026-01-01T00:00:00Z", "region": "eu-west-1", "resources": [],
                    "detail": detail,
                });
                log.deliveries.push((envelope, Instant::now()));
                results.push(EntryResult::Accepted(id));
            }
        }
        Ok(results)
    }
}

/// An Event Grid topic, as the service answers: one publish is all or nothing; the checks of
/// `services/eventgrid/sink.py` (key, content type, a JSON array, 1 MB), faults injected.
struct EventGridModel {
    rng: Mutex<Rng>,
    log: Mutex<BusLog>,
    /// Answer 400 to the publish with this number (refused for good: dead-lettered, replayed).
    refused_on_call: usize,
    /// Answer 401 to the publish with this number (the key was rotated, say): a configuration fault.
    unauthorized_on_call: usize,
}

#[async_trait::async_trait]
impl HttpClient for EventGridModel {
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, TransportError> {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        log.calls += 1;
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let answer = |status: u16| OutboundResponse {
            status,
            headers: Vec::new(),
            body: if status == 200 {
                Vec::new()
            } else {
                format!(r#"{{"error":{{"code":"{status}"}}}}"#).into_bytes()
            },
        };
        if header("aeg-sas-key") != Some(TOPIC_KEY) || log.calls == self.unauthorized_on_call {
            log.unauthorized += 1;
            return Ok(answer(401));
        }
        if log.calls == self.refused_on_call {
            return Ok(answer(400));
        }
        if header("content-type") != Some("application/cloudevents-batch+json; charset=utf-8") {
            return Ok(answer(400));
        }
        if request.body.len() > 1_048_576 {
            log.oversized_calls += 1;
            return Ok(answer(413));
        }
        let Ok(Value::Array(events)) = serde_json::from_slice::<Value>(&request.body) else {
            return Ok(answer(400));
        };
        if events.len() > 1 && rng.chance(8) {
            log.splits += 1;
            return Ok(answer(413));
        }
        if rng.chance(10) {
            log.retried += events.len();
            return Ok(answer(if rng.chance(50) { 429 } else { 503 }));
        }
        let now = Instant::now();
        log.deliveries
            .extend(events.into_iter().map(|event| (event, now)));
        Ok(answer(200))
    }
}

/// One cloud's side: its cell, the store under it, the relay's dead letters.
struct Side {
    cell: Cell,
    store: Arc<MemoryStore>,
    dead: Arc<MemoryDeadLetters>,
    mark_failures: Arc<AtomicUsize>,
}

/// A deterministic cell (the same ids and times on both sides for the same workload) whose store
/// sometimes fails to mark entries relayed, after the bus took them.
fn side(cell_id: &str, seed: u64) -> Result<Side, String> {
    let config = CellConfig::new(cell_id, TenantScope::All).map_err(|e| e.to_string())?;
    let store = Arc::new(MemoryStore::new());
    let rng = Mutex::new(Rng::new(seed));
    let mark_failures = Arc::new(AtomicUsize::new(0));
    let failures = mark_failures.clone();
    let faulty = FaultyStore::new(store.clone(), move |operation| {
        let crash = operation == Operation::MarkRelayed
            && rng.lock().unwrap_or_else(|p| p.into_inner()).chance(15);
        if crash {
            failures.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::Failed(
                "the function was stopped before it could mark the entries (injected)".into(),
            ));
        }
        Ok(())
    });
    let cell = Cell::new(
        config,
        CellPorts {
            store: Arc::new(faulty),
            clock: Arc::new(SteppingClock::new(SteppingClock::CONFORMANCE_EPOCH, 1)),
            ids: Arc::new(SequentialIds::new(0x0190_0000_0000)),
        },
    );
    Ok(Side {
        cell,
        store,
        dead: Arc::new(MemoryDeadLetters::new()),
        mark_failures,
    })
}

/// The relay of a side: its own clock (the cell's deterministic clock must see the same calls on
/// both sides), no real sleeping, enough attempts that throttling rarely exhausts them.
fn relay(
    side: &Side,
    destination: Arc<dyn paracell_domain::replication::relay::Destination>,
) -> Relay {
    Relay::new(
        vec![destination],
        side.dead.clone(),
        Arc::new(NoSleep),
        Arc::new(SystemClock),
    )
    .with_policy(RelayPolicy {
        max_attempts: 5,
        ..RelayPolicy::default()
    })
}

#[derive(Default)]
struct Invocations {
    count: usize,
    repeated: usize,
    failed: usize,
}

/// Runs the relay once: the pending entries, in random groups, each invoked once or twice through
/// the platform's trigger envelope.
async fn relay_round(
    side: &Side,
    host: RelayHost<'_>,
    rng: &mut Rng,
    stats: &mut Invocations,
) -> Result<(), String> {
    let pending = side
        .store
        .pending_entries(None, 10_000)
        .await
        .map_err(|e| e.to_string())?
        .entries;
    for group in random_groups(&pending, rng) {
        let times = if rng.chance(15) { 2 } else { 1 };
        stats.repeated += times - 1;
        for _ in 0..times {
            stats.count += 1;
            if !host.invoke(&group, rng).await? {
                stats.failed += 1;
            }
        }
    }
    Ok(())
}

/// Replays every dead letter of a side to its destination, as `paracell-admin dead-letters replay`
/// does; returns (letters found, replayed and removed).
async fn replay_dead_letters(side: &Side, relay: &Relay) -> Result<(usize, usize), String> {
    let letters = side.dead.list(10_000).await.map_err(|e| e.to_string())?;
    let mut replayed = 0;
    for (id, letter) in &letters {
        let report = relay
            .relay_only(&letter.destination, std::slice::from_ref(&letter.entry))
            .await;
        if report.failed.is_empty() && report.dead_lettered == 0 {
            side.dead.remove(id).await.map_err(|e| e.to_string())?;
            replayed += 1;
        }
    }
    Ok((letters.len(), replayed))
}

/// The AWS replay as deployed: every dead letter as a message of an SQS event to the cell's function
/// (`LambdaCell`), which relays each to its destination again and names the ones that failed; the
/// others leave the queue.
async fn replay_through_sqs(side: &Side, lambda: &LambdaCell) -> Result<(usize, usize), String> {
    let letters = side.dead.list(10_000).await.map_err(|e| e.to_string())?;
    if letters.is_empty() {
        return Ok((0, 0));
    }
    let messages: Vec<(String, String)> = letters
        .iter()
        .map(|(id, letter)| (id.clone(), letter.render()))
        .collect();
    let event = crate::envelopes::aws::sqs_event(&messages);
    let answer = lambda
        .invoke(&serde_json::to_vec(&event).map_err(|e| e.to_string())?)
        .await
        .map_err(|e| e.to_string())?;
    let answer: Value = serde_json::from_slice(&answer).map_err(|e| e.to_string())?;
    let failures = answer["batchItemFailures"]
        .as_array()
        .ok_or_else(|| format!("the SQS batch answer has no batchItemFailures: {answer}"))?;
    let failed: BTreeSet<&str> = failures
        .iter()
        .filter_map(|f| f["itemIdentifier"].as_str())
        .collect();
    let mut replayed = 0;
    for (id, _) in &letters {
        if !failed.contains(id.as_str()) {
            side.dead.remove(id).await.map_err(|e| e.to_string())?;
            replayed += 1;
        }
    }
    Ok((letters.len(), replayed))
}

/// What a consumer made of a bus's deliveries.
struct Consumed {
    /// Distinct events, by `source` + `id`, as the consumer rebuilt their documents.
    documents: BTreeMap<String, String>,
    duplicates: usize,
    /// Duplicates whose bytes differ from the first delivery's (must stay 0).
    altered: usize,
    unreadable: Vec<String>,
}

fn consume(events: impl Iterator<Item = Result<TransactionAccepted, String>>) -> Consumed {
    let mut consumed = Consumed {
        documents: BTreeMap::new(),
        duplicates: 0,
        altered: 0,
        unreadable: Vec::new(),
    };
    for event in events {
        match event {
            Ok(event) => {
                let document = event.document();
                if let Some(first) = consumed.documents.insert(event.dedupe_key(), document) {
                    consumed.duplicates += 1;
                    if consumed.documents.get(&event.dedupe_key()) != Some(&first) {
                        consumed.altered += 1;
                    }
                }
            }
            Err(e) => consumed.unreadable.push(e),
        }
    }
    consumed
}

/// Runs the drill.
pub fn run(options: Options) -> DrillReport {
    super::run_on_runtime(0, async |report| drill(options, report).await)
}

async fn drill(options: Options, report: &mut DrillReport) -> Result<(), String> {
    let started = Instant::now();
    let aws_side = side(AWS_CELL, options.seed ^ 0xa5)?;
    let azure_side = side(AZURE_CELL, options.seed ^ 0x5a)?;
    let eventbridge = Arc::new(EventBridgeModel {
        rng: Mutex::new(Rng::new(options.seed ^ 0xeb)),
        log: Mutex::new(BusLog::default()),
        refuse_on_call: 3,
        refused: AtomicBool::new(false),
    });
    let eventgrid = Arc::new(EventGridModel {
        rng: Mutex::new(Rng::new(options.seed ^ 0xe9)),
        log: Mutex::new(BusLog::default()),
        refused_on_call: 4,
        unauthorized_on_call: 9,
    });
    let aws_relay = relay(
        &aws_side,
        Arc::new(EventBridgeBus::new("drill-bus", eventbridge.clone())),
    );
    let azure_relay = relay(
        &azure_side,
        Arc::new(EventGridTopic::new(
            TOPIC,
            TopicAuth::SasKey(TOPIC_KEY.into()),
            eventgrid.clone(),
        )),
    );
    let lambda = LambdaCell::new(aws_side.cell.clone()).with_relay(aws_relay.clone());
    let handler = AzureHandler::with_relay(
        azure_side.cell.clone(),
        AzureConfig {
            mode: Mode::Payload,
            ..AzureConfig::default()
        },
        azure_relay.clone(),
    );

    // The workload: the same requests, in the same order, to both cells, each through a random
    // front door of its platform.
    let mut rng = Rng::new(options.seed);
    let mut sent: Vec<ClientRequest> = Vec::new();
    let mut booked: BTreeMap<String, Instant> = BTreeMap::new();
    let mut answers_differ = Vec::new();
    let mut unexpected = Vec::new();
    let mut aws_stats = Invocations::default();
    let mut azure_stats = Invocations::default();
    for i in 0..options.writes {
        let request = if !sent.is_empty() && rng.chance(10) {
            sent[usize::try_from(rng.below(sent.len() as u64)).unwrap_or(0)].clone()
        } else {
            let tenant = if rng.chance(50) { "coop-1" } else { "coop-2" };
            let account = if rng.chance(50) { "ACC-1" } else { "ACC-2" };
            let request = create_request(
                tenant,
                &format!("k-{i}"),
                account,
                rng.chance(35),
                rng.below(50_000) + 1,
            );
            sent.push(request.clone());
            request
        };
        let aws_door = AWS_DOORS[usize::try_from(rng.below(6)).unwrap_or(0)];
        let azure_door = AZURE_DOORS[usize::try_from(rng.below(2)).unwrap_or(0)];
        let a = exchange(aws_door, &aws_side.cell, &request).await?;
        let b = exchange(azure_door, &azure_side.cell, &request).await?;
        if a.status != b.status {
            answers_differ.push(format!("{}: {} / {}", i, a.status, b.status));
        }
        match a.status {
            201 if a.header("idempotent-replayed") != Some("true") => {
                if let Some(location) = a.header("location") {
                    let id = location.rsplit('/').next().unwrap_or_default().to_owned();
                    booked.insert(id, Instant::now());
                }
            }
            201 | 409 => {}
            status => unexpected.push(format!("{i}: {status}")),
        }
        if rng.chance(25) {
            relay_round(
                &aws_side,
                RelayHost::Lambda(&lambda),
                &mut rng,
                &mut aws_stats,
            )
            .await?;
            relay_round(
                &azure_side,
                RelayHost::Azure(&handler),
                &mut rng,
                &mut azure_stats,
            )
            .await?;
        }
    }
    // Drain: run the relays until nothing is pending (bounded).
    for _ in 0..50 {
        relay_round(
            &aws_side,
            RelayHost::Lambda(&lambda),
            &mut rng,
            &mut aws_stats,
        )
        .await?;
        relay_round(
            &azure_side,
            RelayHost::Azure(&handler),
            &mut rng,
            &mut azure_stats,
        )
        .await?;
        let a = aws_side
            .store
            .pending_entries(None, 1)
            .await
            .map_err(|e| e.to_string())?;
        let b = azure_side
            .store
            .pending_entries(None, 1)
            .await
            .map_err(|e| e.to_string())?;
        if a.entries.is_empty() && b.entries.is_empty() {
            break;
        }
    }
    let still_pending = aws_side
        .store
        .pending_entries(None, 10_000)
        .await
        .map_err(|e| e.to_string())?
        .entries
        .len()
        + azure_side
            .store
            .pending_entries(None, 10_000)
            .await
            .map_err(|e| e.to_string())?
            .entries
            .len();

    // The operator's replay of what was dead-lettered.
    // On AWS the dead-letter queue's messages come back as an SQS event to the cell's function.
    let (aws_letters, aws_replayed) = replay_through_sqs(&aws_side, &lambda).await?;
    let (azure_letters, azure_replayed) = replay_dead_letters(&azure_side, &azure_relay).await?;

    // The consumers: each delivery read back with the platform's decoder.
    let eb = std::mem::take(&mut *eventbridge.log.lock().unwrap_or_else(|p| p.into_inner()));
    let eg = std::mem::take(&mut *eventgrid.log.lock().unwrap_or_else(|p| p.into_inner()));
    let aws_consumed = consume(
        eb.deliveries
            .iter()
            .map(|(envelope, _)| paracell_aws::inbound::eventbridge::accepted_event(envelope)),
    );
    // Event Grid hands a function one event, or several as a string with `cardinality: many`, through
    // the custom handler's trigger protocol: the consumer runs as deployed, behind
    // `functions::trigger_router`, probed by the host first.
    let consumer = paracell_azure::functions::trigger_router(|invocation| {
        let events = paracell_azure::inbound::eventgrid::accepted_events(&invocation.data)?;
        Ok(paracell_azure::functions::TriggerOutcome {
            logs: vec![format!("{} events", events.len())],
            return_value: Some(Value::Array(
                events.iter().map(|e| Value::String(e.document())).collect(),
            )),
        })
    });
    let probe = paracell_azure::server::invoke_router(
        consumer.clone(),
        paracell_azure::HostRequest::new("GET", "/"),
    )
    .await;
    if probe.status != 200 || !probe.body.is_empty() {
        return Err(format!(
            "the consumer's custom handler did not answer the host's probe: {}",
            probe.status
        ));
    }
    let mut azure_events = Vec::new();
    for (n, chunk) in eg.deliveries.chunks(3).enumerate() {
        let data = if n % 2 == 0 {
            chunk
                .iter()
                .map(|(e, _)| serde_json::json!({ "event": e }))
                .collect::<Vec<_>>()
        } else {
            let array: Vec<&Value> = chunk.iter().map(|(e, _)| e).collect();
            vec![serde_json::json!({ "events": serde_json::to_string(&array).unwrap_or_default() })]
        };
        for data in data {
            let invocation = serde_json::json!({
                "Data": data,
                "Metadata": {"sys": {"MethodName": "Consumer", "UtcNow": "2026-01-01T00:00:00Z"}},
            });
            let reply = paracell_azure::server::invoke_router(
                consumer.clone(),
                paracell_azure::HostRequest::new("POST", "/Consumer")
                    .with_header("Content-Type", "application/json")
                    .with_body(invocation.to_string()),
            )
            .await;
            let envelope: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
            match (reply.status, envelope["ReturnValue"].as_array()) {
                (200, Some(documents)) => azure_events.extend(documents.iter().map(|d| {
                    TransactionAccepted::parse(d.as_str().unwrap_or_default())
                        .map_err(|e| e.to_string())
                })),
                (status, _) => azure_events.push(Err(format!(
                    "the consumer's invocation answered {status}: {}",
                    envelope["Logs"]
                ))),
            }
        }
    }
    let azure_consumed = consume(azure_events.into_iter());

    // What the cells committed: the exact documents, from their outboxes.
    let mut committed: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (name, side) in [(AWS_CELL, &aws_side), (AZURE_CELL, &azure_side)] {
        let mut documents = BTreeMap::new();
        for tenant in ["coop-1", "coop-2"] {
            let tenant = paracell_domain::TenantId::parse(tenant).map_err(|e| e.to_string())?;
            for entry in side
                .store
                .entries_after(&tenant, 0, 1_000_000)
                .await
                .map_err(|e| e.to_string())?
            {
                if let Some(event) = entry.event() {
                    let parsed = TransactionAccepted::parse(&event).map_err(|e| e.to_string())?;
                    documents.insert(parsed.dedupe_key(), event.into_owned());
                }
            }
        }
        committed.insert(name.to_owned(), documents);
    }

    // Publish latency: the client's 201 → the bus took the event (first time).
    let mut latency = Vec::new();
    for deliveries in [&eb.deliveries, &eg.deliveries] {
        let mut first: BTreeMap<String, Instant> = BTreeMap::new();
        for (event, at) in deliveries.iter() {
            let detail = event.get("detail").unwrap_or(event);
            if let Some(id) = detail["data"]["transaction_id"].as_str() {
                first.entry(id.to_owned()).or_insert(*at);
            }
        }
        for (id, at) in &first {
            if let Some(acked) = booked.get(id) {
                latency.push(at.saturating_duration_since(*acked));
            }
        }
    }
    let (p50, p99, max) = percentiles(&mut latency);

    report.figure("writes (the same to both cells)", options.writes);
    report.figure("transactions booked", booked.len());
    report.figure(
        "published, distinct (EventBridge / Event Grid)",
        format!(
            "{} / {}",
            aws_consumed.documents.len(),
            azure_consumed.documents.len()
        ),
    );
    report.figure(
        "duplicates delivered (EventBridge / Event Grid)",
        format!(
            "{} / {}",
            aws_consumed.duplicates, azure_consumed.duplicates
        ),
    );
    report.figure(
        "dead-lettered, then replayed (EventBridge / Event Grid)",
        format!("{aws_letters} → {aws_replayed} / {azure_letters} → {azure_replayed}"),
    );
    report.figure(
        "PutEvents calls, entries throttled / Event Grid publishes, 413 splits, 429-503",
        format!(
            "{}, {} / {}, {}, {}",
            eb.calls, eb.retried, eg.calls, eg.splits, eg.retried
        ),
    );
    report.figure(
        "relay invocations, repeated (stream / change feed)",
        format!(
            "{}, {} / {}, {}",
            aws_stats.count, aws_stats.repeated, azure_stats.count, azure_stats.repeated
        ),
    );
    report.figure(
        "crashes between publish and mark (AWS / Azure)",
        format!(
            "{} / {}",
            aws_side.mark_failures.load(Ordering::Relaxed),
            azure_side.mark_failures.load(Ordering::Relaxed)
        ),
    );
    report.figure(
        "publish latency, 201 → bus (p50/p99/max)",
        format!("{p50:.1?} / {p99:.1?} / {max:.1?}"),
    );
    report.figure("elapsed", format!("{:.1?}", started.elapsed()));

    report.check(
        "both cells answered every write alike (201, 409 or a replay)",
        answers_differ.is_empty() && unexpected.is_empty(),
        answers_differ
            .first()
            .or(unexpected.first())
            .cloned()
            .unwrap_or_default(),
    );
    let aws_committed = &committed[AWS_CELL];
    let azure_committed = &committed[AZURE_CELL];
    report.check(
        "each cell committed one event per booked transaction",
        aws_committed.len() == booked.len() && azure_committed.len() == booked.len(),
        format!(
            "{} / {} for {}",
            aws_committed.len(),
            azure_committed.len(),
            booked.len()
        ),
    );
    report.check(
        "nothing lost: every committed event reached its bus",
        aws_consumed.documents.keys().eq(aws_committed.keys())
            && azure_consumed.documents.keys().eq(azure_committed.keys()),
        format!(
            "EventBridge {} of {}, Event Grid {} of {}",
            aws_consumed.documents.len(),
            aws_committed.len(),
            azure_consumed.documents.len(),
            azure_committed.len()
        ),
    );
    let exact = aws_consumed
        .documents
        .iter()
        .all(|(k, d)| aws_committed.get(k) == Some(d))
        && azure_consumed
            .documents
            .iter()
            .all(|(k, d)| azure_committed.get(k) == Some(d));
    report.check(
        "consumers read every delivery back to the exact committed bytes",
        exact && aws_consumed.unreadable.is_empty() && azure_consumed.unreadable.is_empty(),
        aws_consumed
            .unreadable
            .first()
            .or(azure_consumed.unreadable.first())
            .cloned()
            .unwrap_or_default(),
    );
    // Same outcome, same document: the AWS documents with the cell's name swapped for the Azure
    // cell's are the Azure documents, byte for byte (each request's own trace aside).
    let swap = |d: &String| {
        crate::buses::untraced(d)
            .replace(
                &format!("/cells/{AWS_CELL}\""),
                &format!("/cells/{AZURE_CELL}\""),
            )
            .replace(
                &format!("\"cell_id\":\"{AWS_CELL}\""),
                &format!("\"cell_id\":\"{AZURE_CELL}\""),
            )
    };
    let aws_docs: BTreeSet<String> = aws_consumed.documents.values().map(swap).collect();
    let azure_docs: BTreeSet<String> = azure_consumed
        .documents
        .values()
        .map(|d| crate::buses::untraced(d))
        .collect();
    let first_difference = aws_docs.symmetric_difference(&azure_docs).next().cloned();
    report.check(
        "both buses carry the same CloudEvent documents, byte for byte (source cell and trace aside)",
        first_difference.is_none() && !aws_docs.is_empty(),
        first_difference.unwrap_or_default(),
    );
    let crashes = aws_side.mark_failures.load(Ordering::Relaxed)
        + azure_side.mark_failures.load(Ordering::Relaxed);
    report.check(
        "what was published again (repeated invocations, crashes between publish and mark) kept its id and bytes; consumers absorbed it",
        crashes > 0
            && aws_consumed.duplicates > 0
            && azure_consumed.duplicates > 0
            && aws_consumed.altered == 0
            && azure_consumed.altered == 0,
        format!(
            "{crashes} crashes; {} / {} duplicates, {} altered",
            aws_consumed.duplicates,
            azure_consumed.duplicates,
            aws_consumed.altered + azure_consumed.altered
        ),
    );
    report.check(
        "what a bus refused for good was dead-lettered with the event and replayed back",
        aws_letters > 0
            && azure_letters > 0
            && aws_replayed == aws_letters
            && azure_replayed == azure_letters,
        format!("{aws_letters} → {aws_replayed} / {azure_letters} → {azure_replayed}"),
    );
    let letters_blaming_credentials = azure_side
        .dead
        .list(10_000)
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .filter(|(_, l)| l.reason.contains("401"))
        .count();
    report.check(
        "a publish refused for our credentials (401) dead-lettered nothing: its events stayed pending and a later run published them",
        eg.unauthorized > 0 && letters_blaming_credentials == 0,
        format!(
            "{} refused, {letters_blaming_credentials} dead letters blame it",
            eg.unauthorized
        ),
    );
    report.check(
        "every call stayed within the bus's limits (10 entries and 1 MiB / 1 MB)",
        eb.oversized_calls == 0 && eg.oversized_calls == 0,
        format!("{} / {} over", eb.oversized_calls, eg.oversized_calls),
    );
    report.check(
        "nothing left pending in either outbox",
        still_pending == 0,
        format!("{still_pending} pending"),
    );
    Ok(())
}

async fn exchange(
    envelope: Envelope,
    cell: &Cell,
    request: &ClientRequest,
) -> Result<crate::request::ClientResponse, String> {
    super::answer(
        runner::driver(envelope, cell.clone())
            .exchange(envelope, request, 0)
            .await,
    )
}
