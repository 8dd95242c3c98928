//! The Event Grid publisher over real HTTP against the loopback topic stand-in
//! (`services/eventgrid/sink.py`, started by `scripts/dev-services.sh`, which exports
//! `PARACELL_TEST_EVENTGRID_ENDPOINT` and `PARACELL_TEST_EVENTGRID_KEY`): what the sink accepted is
//! exactly the cell's events; a wrong key is refused (401) and the events stay pending (never dead-lettered); an
//! injected 429 is retried; an injected 413 splits the batch.
#![allow(clippy::unwrap_used, missing_docs)]

use paracell_azure::outbound::eventgrid::{EventGridTopic, TopicAuth};
use paracell_domain::events::TransactionAccepted;
use paracell_domain::http::ApiRequest;
use paracell_domain::memory::{self, MemoryDeadLetters, NoSleep};
use paracell_domain::ports::{HttpClient, OutboundRequest, TransactionStore};
use paracell_domain::replication::SealedEntry;
use paracell_domain::replication::relay::{DeadLetters, Relay};
use paracell_domain::{CellConfig, TenantId, TenantScope};
use paracell_examples::http_client::HyperClient;
use std::sync::Arc;
use std::time::Duration;

fn endpoint() -> String {
    std::env::var("PARACELL_TEST_EVENTGRID_ENDPOINT").expect(
        "PARACELL_TEST_EVENTGRID_ENDPOINT is not set: run the stand-in tests under scripts/dev-services.sh",
    )
}

async fn sink(method: &str, path: &str, body: &str) -> Vec<u8> {
    let response = HyperClient::new()
        .send(OutboundRequest {
            method: method.into(),
            url: format!("{}{path}", endpoint()),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
            timeout: Duration::from_secs(5),
        })
        .await
        .unwrap();
    assert!(response.status < 300, "sink {path}: {}", response.status);
    response.body
}

async fn entries(n: usize) -> Vec<SealedEntry> {
    let (cell, store) = memory::deterministic(CellConfig::new("cell-z", TenantScope::All).unwrap());
    for i in 0..n {
        let request = ApiRequest::new("POST", "/v1/transactions")
            .with_header("Content-Type", "application/json")
            .with_header("X-Tenant-ID", "coop-eg")
            .with_header("Idempotency-Key", format!("k-{i}"))
            .with_body(
                br#"{"account_id":"ACC-1","type":"credit","amount":"2.50","currency":"EUR"}"#
                    .to_vec(),
            );
        assert_eq!(cell.handle(request).await.status, 201);
    }
    let tenant = TenantId::parse("coop-eg").unwrap();
    store.entries_after(&tenant, 0, 100).await.unwrap()
}

fn relay(key: &str, dead: Arc<MemoryDeadLetters>) -> Relay {
    let topic = EventGridTopic::new(
        &endpoint(),
        TopicAuth::SasKey(key.into()),
        Arc::new(HyperClient::new()),
    );
    Relay::new(
        vec![Arc::new(topic)],
        dead,
        Arc::new(NoSleep),
        Arc::new(paracell_domain::ports::SystemClock),
    )
}

// One test, in steps: the sink's record is shared state.
#[tokio::test(flavor = "current_thread")]
async fn the_topic_stand_in_receives_exactly_the_cells_events() {
    let key = std::env::var("PARACELL_TEST_EVENTGRID_KEY").unwrap();
    sink("DELETE", "/_sink/events", "").await;
    let entries = entries(6).await;
    let dead = Arc::new(MemoryDeadLetters::new());

    // Accepted: the sink holds the events byte for byte (once re-serialised, as Event Grid would).
    let report = relay(&key, dead.clone()).relay(&entries).await;
    assert_eq!((report.delivered, report.dead_lettered), (6, 0));
    let accepted: Vec<serde_json::Value> =
        serde_json::from_slice(&sink("GET", "/_sink/events", "").await).unwrap();
    let documents: Vec<String> = accepted
        .iter()
        .map(|e| {
            TransactionAccepted::parse(&e.to_string())
                .unwrap()
                .document()
        })
        .collect();
    let expected: Vec<String> = entries
        .iter()
        .filter_map(|e| e.event().map(|e| e.into_owned()))
        .collect();
    assert_eq!(documents, expected);

    // A wrong key: 401, a configuration fault: not retried, not dead-lettered, kept pending
    // (reported failed) and counted as unauthorized.
    sink("DELETE", "/_sink/events", "").await;
    let report = relay("wrong-key", dead.clone()).relay(&entries[..1]).await;
    assert_eq!(
        (
            report.delivered,
            report.dead_lettered,
            report.failed.len(),
            report.unauthorized
        ),
        (0, 0, 1, 1)
    );
    assert!(dead.list(10).await.unwrap().is_empty());

    // An injected 429 then success: retried, delivered once.
    sink("POST", "/_sink/faults", r#"{"statuses":[429]}"#).await;
    let report = relay(&key, dead.clone()).relay(&entries[..2]).await;
    assert_eq!((report.delivered, report.retries), (2, 1));

    // An injected 413: the batch is split and each half delivered.
    sink("POST", "/_sink/faults", r#"{"statuses":[413]}"#).await;
    let report = relay(&key, dead.clone()).relay(&entries[2..]).await;
    assert_eq!((report.delivered, report.dead_lettered), (4, 0));
    let accepted: Vec<serde_json::Value> =
        serde_json::from_slice(&sink("GET", "/_sink/events", "").await).unwrap();
    assert_eq!(accepted.len(), 6, "2 after the 429, 4 after the split");
}
