//! The relay behind the custom handler: a Cosmos DB trigger invocation (`POST /Relay`, an envelope
//! in both modes) relays the pending entries among the changed documents to a standby in process.
#![allow(clippy::unwrap_used, missing_docs)]

use paracell_azure::{AzureConfig, AzureHandler, HostRequest, Mode};
use paracell_domain::http::ApiRequest;
use paracell_domain::memory::{self, MemoryDeadLetters, MemoryStore};
use paracell_domain::ports::TransactionStore;
use paracell_domain::replication::SealedEntry;
use paracell_domain::replication::signature::PeerSecret;
use paracell_domain::testing::InProcessHttp;
use paracell_domain::{Cell, CellConfig, CellId, TenantId, TenantScope};
use serde_json::{Value, json};
use std::sync::Arc;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn cell(id: &str, peer: &str) -> (Cell, Arc<MemoryStore>) {
    let mut config = CellConfig::new(id, TenantScope::All).unwrap();
    config.replication.secrets =
        vec![PeerSecret::parse(CellId::parse(peer).unwrap(), SECRET).unwrap()];
    memory::deterministic(config)
}

fn handler(primary: &Cell, standby: Option<&Cell>, mode: Mode) -> AzureHandler {
    let mut http = InProcessHttp::default();
    if let Some(standby) = standby {
        http = http.with_cell("http://cell-b", standby.clone());
    }
    let secret = PeerSecret::parse(CellId::parse("cell-b").unwrap(), SECRET).unwrap();
    let dead = Arc::new(MemoryDeadLetters::new());
    let relay =
        paracell_domain::testing::test_relay(primary, http, "http://cell-b", secret, dead, 2);
    AzureHandler::with_relay(
        primary.clone(),
        AzureConfig {
            mode,
            ..AzureConfig::default()
        },
        relay,
    )
}

/// The changed documents as the container holds them (what the change feed delivers).
fn document(entry: &SealedEntry, pending: bool) -> Value {
    json!({"id": format!("seq:{:020}", entry.seq()), "tenant": entry.tenant().as_str(), "kind": "entry",
        "seq": entry.seq(), "doc": entry.document(), "digest": entry.digest().to_string(), "pending": pending,
        "outbox_order": "x", "_etag": "\"1\"", "_ts": 1_767_225_600})
}

/// The host's invocation of the `Relay` function: the documents JSON-encoded into a string, as it
/// encodes every string-typed binding.
fn invocation(documents: &[Value]) -> HostRequest {
    let data = serde_json::to_string_pretty(&documents).unwrap();
    let envelope =
        json!({"Data": {"documents": data}, "Metadata": {"sys": {"MethodName": "Relay"}}});
    HostRequest::new("POST", "/Relay")
        .with_header("content-type", "application/json")
        .with_header("x-azure-functions-invocationid", "inv-1")
        .with_body(envelope.to_string())
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn create(cell: &Cell, key: &str) {
    let request = ApiRequest::new("POST", "/v1/transactions")
        .with_header("content-type", "application/json")
        .with_header("x-tenant-id", "coop-1")
        .with_header("idempotency-key", key)
        .with_body(r#"{"account_id":"ACC-1","type":"credit","amount":"5","currency":"EUR"}"#);
    assert_eq!(block(cell.handle(request)).status, 201);
}

#[test]
fn a_change_feed_invocation_relays_pending_entries_in_both_modes() {
    for mode in [Mode::Payload, Mode::Forwarding] {
        let (primary, primary_store) = cell("cell-a", "cell-b");
        let (standby, standby_store) = cell("cell-b", "cell-a");
        create(&primary, "k1");
        create(&primary, "k2");
        let entries = block(primary_store.pending_entries(None, 10))
            .unwrap()
            .entries;
        let mut documents: Vec<Value> = entries.iter().map(|e| document(e, true)).collect();
        documents.push(document(&entries[0], false));
        documents.push(json!({"id": "tx:1", "kind": "transaction", "tenant": "coop-1"}));
        let reply = block(handler(&primary, Some(&standby), mode).invoke(invocation(&documents)));
        assert_eq!(
            reply.status,
            200,
            "{mode:?}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["Outputs"], json!({}));
        assert!(
            body["Logs"][0].as_str().unwrap().contains("2 relayed"),
            "{body}"
        );
        let t = TenantId::parse("coop-1").unwrap();
        assert_eq!(
            block(standby_store.head(&t)).unwrap().unwrap().position.seq,
            2
        );
        assert!(
            block(primary_store.pending_entries(None, 10))
                .unwrap()
                .entries
                .is_empty()
        );
    }
}

#[test]
fn a_failed_relay_fails_the_invocation_so_the_retry_policy_runs_it_again() {
    let (primary, primary_store) = cell("cell-a", "cell-b");
    create(&primary, "k1");
    let entries = block(primary_store.pending_entries(None, 10))
        .unwrap()
        .entries;
    let mut broken = document(&entries[0], true);
    broken["digest"] = json!("00");
    let reply = block(handler(&primary, None, Mode::Payload).invoke(invocation(&[broken])));
    assert_eq!(
        reply.status, 500,
        "an unreadable entry document fails the invocation"
    );
    let not_json = HostRequest::new("POST", "/Relay").with_body("nope");
    assert_eq!(
        block(handler(&primary, None, Mode::Payload).invoke(not_json)).status,
        500
    );
    let no_relay = AzureHandler::new(primary.clone(), AzureConfig::default());
    assert_eq!(
        block(no_relay.invoke(invocation(&[]))).status,
        500,
        "a handler without a relay says so"
    );
}
