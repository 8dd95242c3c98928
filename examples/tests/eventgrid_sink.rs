//! The Event Grid publisher over real HTTP against the loopback topic stand-in
//! (`services/eventgrid/sink.py`, started by `scripts/dev-services.sh`, which exports
//! `PARACELL_TEST_EVENTGRID_ENDPOINT` and `PARACELL_TEST_EVENTGRID_KEY`): what the sink accepted is
//! exactly the cell's events; a wrong key is refused (401) and the events stay pending (never dead-lettered); an
//! injected 429 is retried; an injected 413 splits the batch.
#![allow(clippy::unwrap_used, clippy::await_holding_lock, missing_docs)]

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

/// The sink's record is shared state: one test at a time. (Each test runs on its own runtime and
/// thread, so holding this lock across their awaits blocks nothing but the other tests.)
static SINK: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[tokio::test(flavor = "current_thread")]
async fn the_topic_stand_in_receives_exactly_the_cells_events() {
    let _one_at_a_time = SINK.lock().unwrap_or_else(|p| p.into_inner());
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

fn identity() -> (String, String) {
    (
        std::env::var("PARACELL_TEST_IDENTITY_ENDPOINT")
            .expect("run under scripts/dev-services.sh"),
        std::env::var("PARACELL_TEST_IDENTITY_HEADER").unwrap(),
    )
}

async fn tokens_issued(resource: &str) -> u64 {
    let counts: serde_json::Value =
        serde_json::from_slice(&sink("GET", "/_identity/requests", "").await).unwrap();
    counts[resource].as_u64().unwrap_or(0)
}

async fn events_of(cell: &str) -> usize {
    let accepted: Vec<serde_json::Value> =
        serde_json::from_slice(&sink("GET", "/_sink/events", "").await).unwrap();
    accepted
        .iter()
        .filter(|e| e["source"].as_str().is_some_and(|s| s.ends_with(cell)))
        .count()
}

async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `local-cell` with the managed identity stand-in and `env`, its stderr in `log` (or nowhere);
/// returns once it answers.
async fn local_cell_with_identity(
    env: &[(&str, String)],
    log: Option<std::fs::File>,
) -> (paracell_conformance::binaries::Running, u16) {
    let (identity_endpoint, identity_header) = identity();
    let port = paracell_conformance::wire::free_port().unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_local-cell"));
    command
        .env("PORT", port.to_string())
        .env("IDENTITY_ENDPOINT", &identity_endpoint)
        .env("IDENTITY_HEADER", &identity_header)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log.map_or_else(std::process::Stdio::null, std::process::Stdio::from));
    for (k, v) in env {
        command.env(k, v);
    }
    let running = paracell_conformance::binaries::Running(command.spawn().unwrap());
    eventually("local-cell answers", async || {
        paracell_conformance::wire::send(port, "GET", "/health", &[], b"", false).is_ok()
    })
    .await;
    (running, port)
}

fn create_on(port: u16, key: &str) {
    let reply = paracell_conformance::wire::send(
        port,
        "POST",
        "/v1/transactions",
        &[
            ("Content-Type", "application/json"),
            ("X-Tenant-ID", "coop-mi"),
            ("Idempotency-Key", key),
        ],
        br#"{"account_id":"ACC-1","type":"credit","amount":"1","currency":"EUR"}"#,
        false,
    )
    .unwrap();
    assert_eq!(reply.status, 201);
}

/// Defect: Event Grid publishing took a static token; once it expired every publish got 401 and the
/// events were dead-lettered as poison. Now `local-cell` (as `azure-cell`) gets Entra ID tokens from
/// the managed identity through `azure_identity`, and a refused token is a configuration fault: the
/// token is dropped, the events stay pending (never dead-lettered), the refusal is alarmed, and the
/// next relay run publishes them with a fresh token.
#[tokio::test(flavor = "current_thread")]
async fn a_cell_publishes_with_managed_identity_tokens_and_a_refusal_keeps_events_pending() {
    let _one_at_a_time = SINK.lock().unwrap_or_else(|p| p.into_inner());
    let before = tokens_issued("https://eventgrid.azure.net").await;
    let cell = "cell-entra";
    let log = std::env::temp_dir().join(format!("paracell-entra-{}.log", std::process::id()));
    let (_running, port) = local_cell_with_identity(
        &[
            ("PARACELL_CELL_ID", cell.into()),
            ("PARACELL_EVENTGRID_ENDPOINT", endpoint()),
            ("PARACELL_EVENTGRID_AUTH", "entra".into()),
            ("PARACELL_RELAY_POLL_MS", "50".into()),
        ],
        Some(std::fs::File::create(&log).unwrap()),
    )
    .await;
    create_on(port, "mi-1");
    eventually("the first event is published", async || {
        events_of(cell).await == 1
    })
    .await;
    assert!(
        tokens_issued("https://eventgrid.azure.net").await > before,
        "a managed-identity token was used"
    );
    // The topic refuses the token twice (the publish and its one retry with a fresh token).
    sink("POST", "/_sink/faults", r#"{"statuses":[401,401]}"#).await;
    create_on(port, "mi-2");
    eventually("the refusal is alarmed", async || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("replication unauthorized")
    })
    .await;
    // Kept pending, published by a later run: never dead-lettered, never lost.
    eventually(
        "the second event is published after the refusal",
        async || events_of(cell).await == 2,
    )
    .await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("replication dead-lettered"), "{text}");
    assert!(!text.contains("mi-"), "no token in the logs");
}

/// Cosmos DB with Entra ID instead of the account key: the cell takes its token from the managed
/// identity for `https://cosmos.azure.com` and books. (The Cosmos DB stand-in does not verify Entra
/// tokens; what is proven is that the cell authenticates with one, never with a key.)
#[tokio::test(flavor = "current_thread")]
async fn a_cell_reaches_cosmos_db_with_a_managed_identity_token() {
    use paracell_azure::outbound::cosmos::{CosmosConfig, CosmosStore};
    let _one_at_a_time = SINK.lock().unwrap_or_else(|p| p.into_inner());
    let cosmos = std::env::var("PARACELL_TEST_COSMOS_ENDPOINT").unwrap();
    let key = std::env::var("PARACELL_COSMOS_KEY").unwrap();
    let database = std::env::var("PARACELL_COSMOS_DATABASE").unwrap();
    let container = format!("entra-{}", std::process::id());
    // Containers come from the deployment's template (a data-plane role cannot create them).
    CosmosStore::provision(&CosmosConfig::new(&cosmos, &key, &database, &container))
        .await
        .unwrap();
    let before = tokens_issued("https://cosmos.azure.com").await;
    let (_running, port) = local_cell_with_identity(
        &[
            ("PARACELL_STORE", "cosmos".into()),
            ("PARACELL_COSMOS_AUTH", "entra".into()),
            ("PARACELL_COSMOS_KEY", String::new()),
            ("PARACELL_COSMOS_CONTAINER", container.clone()),
        ],
        None,
    )
    .await;
    create_on(port, "cosmos-mi-1");
    assert!(tokens_issued("https://cosmos.azure.com").await > before);
}
