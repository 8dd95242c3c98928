//! The Event Grid topic as the relay's destination, against a scripted topic in process: what is
//! sent (URL, headers, the events byte for byte), and what each of Event Grid's all-or-nothing
//! answers does (413 splits, 429 retries, 401/403 keep the events pending and alarm, an oversized event is
//! never sent), and that a crash between publishing and marking re-publishes the same event.
#![allow(clippy::unwrap_used, missing_docs)]

use paracell_azure::outbound::eventgrid::{BATCH_CONTENT_TYPE, EventGridTopic, TopicAuth};
use paracell_domain::events::TransactionAccepted;
use paracell_domain::http::ApiRequest;
use paracell_domain::memory::{self, MemoryDeadLetters, MemoryStore, NoSleep};
use paracell_domain::ports::{
    HttpClient, OutboundRequest, OutboundResponse, StoreError, TransactionStore, TransportError,
};
use paracell_domain::replication::SealedEntry;
use paracell_domain::replication::relay::{DeadLetters, Relay, RelayPolicy, relay_pending};
use paracell_domain::testing::block_on;
use paracell_domain::testing::faults::{FaultyStore, Operation};
use paracell_domain::{Cell, CellConfig, TenantId, TenantScope};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A topic whose answer to each request a closure decides; it records every request.
struct Topic<F> {
    answer: F,
    requests: Mutex<Vec<OutboundRequest>>,
}

impl<F: Fn(usize, &[serde_json::Value]) -> u16 + Send + Sync> Topic<F> {
    fn new(answer: F) -> Arc<Self> {
        Arc::new(Self {
            answer,
            requests: Mutex::new(Vec::new()),
        })
    }

    /// The events of every request, as sent.
    fn batches(&self) -> Vec<Vec<serde_json::Value>> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect()
    }
}

#[async_trait::async_trait]
impl<F: Fn(usize, &[serde_json::Value]) -> u16 + Send + Sync> HttpClient for Topic<F> {
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, TransportError> {
        let events: Vec<serde_json::Value> = serde_json::from_slice(&request.body).unwrap();
        let n = {
            let mut requests = self.requests.lock().unwrap();
            requests.push(request);
            requests.len()
        };
        let status = (self.answer)(n, &events);
        let body = if status == 200 {
            Vec::new()
        } else {
            format!(r#"{{"error":{{"code":"E{status}","message":"scripted {status}"}}}}"#)
                .into_bytes()
        };
        Ok(OutboundResponse {
            status,
            headers: Vec::new(),
            body,
        })
    }
}

/// A cell with `n` accepted transactions (of 1, 10, 100… EUR: events of growing lengths) and one
/// refused debit of tenant coop-1.
fn cell_with_entries(n: usize) -> (Cell, Arc<MemoryStore>, Vec<SealedEntry>) {
    let (cell, store) = memory::deterministic(CellConfig::new("cell-a", TenantScope::All).unwrap());
    let post = |key: String, body: String| {
        let request = ApiRequest::new("POST", "/v1/transactions")
            .with_header("Content-Type", "application/json")
            .with_header("X-Tenant-ID", "coop-1")
            .with_header("Idempotency-Key", &key)
            .with_body(body.into_bytes());
        block_on(cell.handle(request)).status
    };
    for i in 0..n {
        let body = format!(
            r#"{{"account_id":"ACC-1","type":"credit","amount":"{}.00","currency":"EUR"}}"#,
            10_u64.pow(u32::try_from(i).unwrap())
        );
        assert_eq!(post(format!("k-{i}"), body), 201);
    }
    let refused = r#"{"account_id":"ACC-1","type":"debit","amount":"1000000","currency":"EUR"}"#;
    assert_eq!(post("k-refused".into(), refused.into()), 409);
    let tenant = TenantId::parse("coop-1").unwrap();
    let entries = block_on(store.entries_after(&tenant, 0, 1000)).unwrap();
    (cell, store, entries)
}

fn relay(topic: Arc<EventGridTopic>, dead: Arc<MemoryDeadLetters>) -> Relay {
    Relay::new(
        vec![topic],
        dead,
        Arc::new(NoSleep),
        Arc::new(paracell_domain::ports::SystemClock),
    )
    .with_policy(RelayPolicy {
        max_attempts: 3,
        ..RelayPolicy::default()
    })
}

fn events_of(entries: &[SealedEntry]) -> Vec<String> {
    entries
        .iter()
        .filter_map(|e| e.event().map(|e| e.into_owned()))
        .collect()
}

#[test]
fn publishes_each_accepted_event_byte_for_byte_as_a_cloudevents_batch() {
    let (_cell, _store, entries) = cell_with_entries(3);
    let topic = Topic::new(|_, _| 200);
    let destination = Arc::new(EventGridTopic::new(
        "http://127.0.0.1:9",
        TopicAuth::SasKey("the-key".into()),
        topic.clone(),
    ));
    let dead = Arc::new(MemoryDeadLetters::new());
    let report = block_on(relay(destination, dead.clone()).relay(&entries));
    assert_eq!(
        (report.delivered, report.relayed.len(), report.dead_lettered),
        (3, 4, 0),
        "three events published; the refused debit has none, yet its entry is done"
    );
    let requests = topic.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.url,
        "http://127.0.0.1:9/api/events?api-version=2018-01-01"
    );
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("content-type").as_deref(), Some(BATCH_CONTENT_TYPE));
    assert_eq!(header("aeg-sas-key").as_deref(), Some("the-key"));
    // The body is the domain's documents, embedded unchanged.
    let expected = format!("[{}]", events_of(&entries).join(","));
    assert_eq!(String::from_utf8(request.body.clone()).unwrap(), expected);
    for event in topic.batches().concat() {
        let parsed = TransactionAccepted::parse(&event.to_string()).unwrap();
        assert_eq!(parsed.transaction.tenant_id.as_str(), "coop-1");
    }

    // Entra ID: a token from the source; a refused token is dropped and the publish made once more
    // with a fresh one.
    let tokens = Arc::new(Tokens::default());
    let topic = Topic::new(|n, _| if n == 1 { 401 } else { 200 });
    let destination = Arc::new(EventGridTopic::new(
        "http://127.0.0.1:9",
        TopicAuth::Entra(tokens.clone()),
        topic.clone(),
    ));
    let report = block_on(relay(destination, dead).relay(&entries));
    assert_eq!(
        (report.delivered, report.unauthorized),
        (events_of(&entries).len(), 0)
    );
    let requests = topic.requests.lock().unwrap();
    assert!(
        requests[0]
            .headers
            .contains(&("authorization".into(), "Bearer token-1".into()))
    );
    assert!(
        requests[1]
            .headers
            .contains(&("authorization".into(), "Bearer token-2".into())),
        "a fresh token after the refusal"
    );
    assert!(!requests[0].headers.iter().any(|(n, _)| n == "aeg-sas-key"));
}

/// A token source that mints `token-1`, `token-2`, … and remembers one until it is invalidated.
#[derive(Default)]
struct Tokens {
    minted: std::sync::atomic::AtomicUsize,
    current: std::sync::Mutex<Option<String>>,
}

#[async_trait::async_trait]
impl paracell_azure::outbound::eventgrid::AccessTokens for Tokens {
    async fn token(&self) -> Result<String, paracell_domain::ports::TokenError> {
        let mut current = self.current.lock().unwrap();
        if current.is_none() {
            let n = self.minted.fetch_add(1, Ordering::SeqCst) + 1;
            *current = Some(format!("token-{n}"));
        }
        Ok(current.clone().unwrap())
    }

    fn invalidate(&self) {
        *self.current.lock().unwrap() = None;
    }
}

#[test]
fn a_413_splits_the_batch_until_it_fits_and_a_single_event_too_large_is_dead_lettered() {
    let (_cell, _store, entries) = cell_with_entries(5);
    // The "service" takes at most two events per request.
    let topic =
        Topic::new(|_, events: &[serde_json::Value]| if events.len() > 2 { 413 } else { 200 });
    let destination = Arc::new(EventGridTopic::new(
        "http://127.0.0.1:9",
        TopicAuth::SasKey("k".into()),
        topic.clone(),
    ));
    let dead = Arc::new(MemoryDeadLetters::new());
    let report = block_on(relay(destination, dead.clone()).relay(&entries));
    assert_eq!((report.delivered, report.dead_lettered), (5, 0));
    let sizes: Vec<usize> = topic.batches().iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![5, 2, 3, 1, 2], "5 → 2 + 3 → 2 + 1 + 2");
    let delivered: Vec<String> = topic.batches()[1..]
        .iter()
        .filter(|b| b.len() <= 2)
        .flatten()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(delivered.len(), 5, "each event delivered once, in order");

    // An event larger than the limit is never sent: dead-lettered with the sizes, the rest go.
    let longest = events_of(&entries).iter().map(String::len).max().unwrap();
    let topic = Topic::new(|_, _| 200);
    let destination = Arc::new(
        EventGridTopic::new(
            "http://127.0.0.1:9",
            TopicAuth::SasKey("k".into()),
            topic.clone(),
        )
        .with_max_bytes(longest + 1),
    );
    let report = block_on(relay(destination, dead.clone()).relay(&entries));
    assert_eq!(
        report.dead_lettered, 1,
        "the longest event is over the limit"
    );
    assert_eq!(report.delivered, 4);
    assert!(topic.batches().iter().all(|b| b.len() == 1));
    let letters = block_on(dead.list(10)).unwrap();
    assert!(
        letters[0].1.reason.contains("over Event Grid's limit"),
        "{}",
        letters[0].1.reason
    );
}

#[test]
fn throttling_is_retried_and_a_refused_key_keeps_the_events_pending_until_it_is_fixed() {
    let (_cell, _store, entries) = cell_with_entries(2);
    // 429 on the first request, then accepted.
    let topic = Topic::new(|n, _| if n == 1 { 429 } else { 200 });
    let destination = Arc::new(EventGridTopic::new(
        "http://127.0.0.1:9",
        TopicAuth::SasKey("k".into()),
        topic.clone(),
    ));
    let dead = Arc::new(MemoryDeadLetters::new());
    let report = block_on(relay(destination, dead.clone()).relay(&entries));
    assert_eq!(
        (report.delivered, report.retries, report.dead_lettered),
        (2, 1, 0)
    );
    assert_eq!(
        topic.batches()[0],
        topic.batches()[1],
        "the same events again"
    );

    // 401 (and 403): our key is refused. A configuration fault: not retried within the run, nothing
    // dead-lettered, both entries reported failed (they stay pending) and counted as unauthorized.
    for status in [401, 403] {
        let bad_key = Arc::new(AtomicBool::new(true));
        let flag = bad_key.clone();
        let topic = Topic::new(move |_, _| {
            if flag.load(Ordering::SeqCst) {
                status
            } else {
                200
            }
        });
        let destination = Arc::new(EventGridTopic::new(
            "http://127.0.0.1:9",
            TopicAuth::SasKey("wrong".into()),
            topic.clone(),
        ));
        let relay = relay(destination, dead.clone());
        let report = block_on(relay.relay(&entries));
        assert_eq!(
            (
                report.delivered,
                report.dead_lettered,
                report.failed.len(),
                report.unauthorized
            ),
            (0, 0, 2, 2),
            "{status}"
        );
        assert_eq!(topic.batches().len(), 1, "no retry within the run");
        assert!(block_on(dead.list(10)).unwrap().is_empty(), "never poison");
        // Key fixed: the next run (the entries are still pending) delivers them.
        bad_key.store(false, Ordering::SeqCst);
        let report = block_on(relay.relay(&entries));
        assert_eq!((report.delivered, report.unauthorized), (2, 0));
    }
}

#[test]
fn a_crash_between_publishing_and_marking_publishes_the_same_event_again() {
    let (_cell, store, _entries) = cell_with_entries(2);
    let crash = Arc::new(AtomicBool::new(true));
    let flag = crash.clone();
    let faulty = FaultyStore::new(store.clone(), move |op| match op {
        Operation::MarkRelayed if flag.load(Ordering::SeqCst) => {
            Err(StoreError::Failed("crashed before marking".into()))
        }
        _ => Ok(()),
    });
    let topic = Topic::new(|_, _| 200);
    let destination = Arc::new(EventGridTopic::new(
        "http://127.0.0.1:9",
        TopicAuth::SasKey("k".into()),
        topic.clone(),
    ));
    let relay = relay(destination, Arc::new(MemoryDeadLetters::new()));
    assert!(block_on(relay_pending(&faulty, &relay, 100)).is_err());
    crash.store(false, Ordering::SeqCst);
    let report = block_on(relay_pending(&faulty, &relay, 100)).unwrap();
    assert_eq!(report.delivered, 2);
    let batches = topic.batches();
    assert_eq!(batches.len(), 2);
    assert_eq!(
        batches[0], batches[1],
        "same ids, same bytes: consumers dedupe"
    );
    // Marked now: nothing left to publish.
    let report = block_on(relay_pending(&faulty, &relay, 100)).unwrap();
    assert_eq!(report.delivered, 0);
    assert_eq!(topic.batches().len(), 2);
}
