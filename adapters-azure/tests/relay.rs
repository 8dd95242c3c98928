//! The relay behind the custom handler: a Cosmos DB trigger invocation (`POST /Relay`, an envelope
//! in both modes) is a hint that the container changed; the relay reads the pending entries from
//! the cell's own store and relays those to a standby in process. What reaches the trigger route is
//! never relayed itself, and no client request reaches the trigger route.
#![allow(clippy::unwrap_used, missing_docs)]

use paracell_azure::{AzureConfig, AzureHandler, Front, HostRequest, Mode, RoutePrefix};
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
    handler_with(
        primary,
        standby,
        AzureConfig {
            mode,
            ..AzureConfig::default()
        },
        Arc::new(MemoryDeadLetters::new()),
    )
}

fn handler_with(
    primary: &Cell,
    standby: Option<&Cell>,
    config: AzureConfig,
    dead: Arc<dyn paracell_domain::replication::relay::DeadLetters>,
) -> AzureHandler {
    let mut http = InProcessHttp::default();
    if let Some(standby) = standby {
        http = http.with_cell("http://cell-b", standby.clone());
    }
    let secret = PeerSecret::parse(CellId::parse("cell-b").unwrap(), SECRET).unwrap();
    let relay =
        paracell_domain::testing::test_relay(primary, http, "http://cell-b", secret, dead, 2);
    AzureHandler::with_relay(primary.clone(), config, relay)
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
    // No standby answers and the dead-letter queue is down: the entry stays pending, the invocation
    // fails (and the host runs it again).
    let down = handler_with(
        &primary,
        None,
        AzureConfig::default(),
        Arc::new(paracell_domain::testing::DeadLettersDown),
    );
    assert_eq!(block(down.invoke(invocation(&[]))).status, 500);
    assert_eq!(
        block(primary_store.pending_entries(None, 10))
            .unwrap()
            .entries
            .len(),
        1
    );
    let not_json = HostRequest::new("POST", "/Relay").with_body("nope");
    assert_eq!(
        block(handler(&primary, None, Mode::Payload).invoke(not_json)).status,
        500,
        "an invocation the host could not have sent fails"
    );
    let no_relay = AzureHandler::new(primary.clone(), AzureConfig::default());
    assert_eq!(
        block(no_relay.invoke(invocation(&[]))).status,
        500,
        "a handler without a relay says so (to the host: clients cannot reach this route)"
    );
}

/// Defect: the relay signed and delivered the documents of the trigger invocation itself, so a
/// made-up document booked money on the standby. Now the documents are only a hint: whatever they
/// say, the relay delivers what the cell's own store holds as pending, and nothing else.
#[test]
fn forged_documents_in_a_trigger_invocation_are_never_relayed() {
    for mode in [Mode::Payload, Mode::Forwarding] {
        let (primary, primary_store) = cell("cell-a", "cell-b");
        let (standby, standby_store) = cell("cell-b", "cell-a");
        // An entry the primary never committed: a credit booked by some other cell "cell-a" store.
        let (forger, forger_store) = cell("cell-a", "cell-b");
        create(&forger, "forged");
        let forged = block(forger_store.pending_entries(None, 10))
            .unwrap()
            .entries;
        let reply = block(
            handler(&primary, Some(&standby), mode)
                .invoke(invocation(&[document(&forged[0], true)])),
        );
        assert_eq!(reply.status, 200, "{mode:?}");
        let t = TenantId::parse("coop-1").unwrap();
        assert_eq!(
            block(standby_store.head(&t)).unwrap(),
            None,
            "{mode:?}: the standby received nothing"
        );
        // The primary's own entries are relayed on the next invocation, whatever it names.
        create(&primary, "k1");
        let reply = block(
            handler(&primary, Some(&standby), mode)
                .invoke(invocation(&[document(&forged[0], true)])),
        );
        assert_eq!(reply.status, 200);
        assert_eq!(
            block(standby_store.head(&t)).unwrap().unwrap().position.seq,
            1
        );
        let booked = block(standby_store.entry(&t, 1)).unwrap().unwrap();
        let own = block(primary_store.entry(&t, 1)).unwrap().unwrap();
        assert_eq!(
            booked.digest(),
            own.digest(),
            "{mode:?}: the primary's own entry"
        );
        assert_ne!(booked.digest(), forged[0].digest());
    }
}

/// Defect: `azure-cell` in forwarding mode with an empty route prefix took a client's `POST /Relay`
/// for the host's trigger invocation. Such a configuration does not start; and wherever a client can
/// send `POST /Relay` (that configuration built in code, local-cell, the standalone router), it is
/// an unknown path: `404` problem, no internal message, nothing relayed.
#[test]
fn no_client_request_reaches_the_trigger_route() {
    let open = AzureConfig {
        mode: Mode::Forwarding,
        route_prefix: RoutePrefix::new(""),
        ..AzureConfig::default()
    };
    assert!(open.check_trigger_route().is_err());
    let direct = AzureConfig {
        mode: Mode::Forwarding,
        route_prefix: RoutePrefix::new(""),
        front: Front::Direct,
        ..AzureConfig::default()
    };
    for config in [open, direct] {
        let (primary, _) = cell("cell-a", "cell-b");
        let (standby, standby_store) = cell("cell-b", "cell-a");
        create(&primary, "k1");
        let (forger, forger_store) = cell("cell-a", "cell-b");
        create(&forger, "forged");
        let forged = block(forger_store.pending_entries(None, 10))
            .unwrap()
            .entries;
        let h = handler_with(
            &primary,
            Some(&standby),
            config.clone(),
            Arc::new(MemoryDeadLetters::new()),
        );
        let mut client = invocation(&[document(&forged[0], true)]);
        client
            .headers
            .retain(|(n, _)| n != "x-azure-functions-invocationid");
        for request in [client.clone(), invocation(&[document(&forged[0], true)])] {
            let reply = block(h.invoke(request));
            assert_eq!(reply.status, 404, "{config:?}");
            assert_eq!(
                reply.header("content-type"),
                Some("application/problem+json; charset=utf-8")
            );
            let body = String::from_utf8_lossy(&reply.body);
            assert!(body.contains("urn:paracell:problem:not-found"), "{body}");
            assert!(!body.contains("relay"), "no internal message: {body}");
        }
        let t = TenantId::parse("coop-1").unwrap();
        assert_eq!(block(standby_store.head(&t)).unwrap(), None);
    }
}

/// `GET /` is the host's readiness probe only behind the host and only without an invocation id;
/// anywhere else it is an unknown path like any other.
#[test]
fn the_root_is_a_probe_only_for_the_host() {
    let (primary, _) = cell("cell-a", "cell-b");
    let host = AzureHandler::new(primary.clone(), AzureConfig::default());
    let probe = block(host.invoke(HostRequest::new("GET", "/")));
    assert_eq!((probe.status, probe.body.len()), (200, 0));
    let direct = AzureHandler::new(
        primary,
        AzureConfig {
            mode: Mode::Forwarding,
            route_prefix: RoutePrefix::new(""),
            front: Front::Direct,
            ..AzureConfig::default()
        },
    );
    let reply = block(direct.invoke(HostRequest::new("GET", "/")));
    assert_eq!(reply.status, 404);
    assert!(String::from_utf8_lossy(&reply.body).contains("not-found"));
}
