//! Shared helpers for the domain's integration tests.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use paracell_domain::http::{ApiRequest, ApiResponse};
use paracell_domain::memory::{MemoryStore, SequentialIds, SteppingClock};
use paracell_domain::ports::TransactionStore;
use paracell_domain::testing::block_on;
use paracell_domain::{Cell, CellConfig, CellPorts, TenantId, TenantScope};
use std::collections::BTreeSet;
use std::sync::Arc;

pub fn deterministic_ports(store: Arc<dyn TransactionStore>) -> CellPorts {
    CellPorts {
        store,
        clock: Arc::new(SteppingClock::new(SteppingClock::CONFORMANCE_EPOCH, 1)),
        ids: Arc::new(SequentialIds::new(0x0190_0000_0000)),
    }
}

pub fn config(tenants: &[&str]) -> CellConfig {
    let scope = TenantScope::Set(
        tenants
            .iter()
            .map(|t| TenantId::parse(t).unwrap())
            .collect::<BTreeSet<_>>(),
    );
    CellConfig::new("cell-a", scope).unwrap()
}

pub fn cell_with(store: Arc<dyn TransactionStore>) -> Cell {
    Cell::new(config(&["coop-1", "coop-2"]), deterministic_ports(store))
}

pub fn cell() -> (Cell, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    (cell_with(store.clone()), store)
}

pub fn create(tenant: &str, key: &str, body: &str) -> ApiRequest {
    ApiRequest::new("POST", "/v1/transactions")
        .with_header("Content-Type", "application/json")
        .with_header("X-Tenant-ID", tenant)
        .with_header("Idempotency-Key", key)
        .with_body(body.as_bytes().to_vec())
}

pub fn tx(account: &str, kind: &str, amount: &str, currency: &str) -> String {
    format!(
        r#"{{"account_id":"{account}","type":"{kind}","amount":"{amount}","currency":"{currency}"}}"#
    )
}

pub fn get(path: &str, tenant: &str) -> ApiRequest {
    ApiRequest::new("GET", path).with_header("X-Tenant-ID", tenant)
}

/// Sends a request and checks the invariants every response must hold.
pub fn send(cell: &Cell, request: ApiRequest) -> ApiResponse {
    let response = block_on(cell.handle(request));
    assert_wire_invariants(&response);
    response
}

pub fn assert_wire_invariants(response: &ApiResponse) {
    let ct = response
        .header("content-type")
        .expect("every response sets Content-Type");
    assert!(
        ct == "application/json; charset=utf-8" || ct == "application/problem+json; charset=utf-8",
        "unexpected content type {ct}"
    );
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let mut names: Vec<_> = response
        .headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    names.sort();
    let before = names.len();
    names.dedup();
    assert_eq!(
        before,
        names.len(),
        "a response header is repeated: {:?}",
        response.headers
    );
    // HEAD answers carry the GET answer's headers and no body.
    if response.status >= 400 && !response.body.is_empty() {
        assert!(ct.starts_with("application/problem+json"));
        let body: serde_json::Value =
            serde_json::from_slice(&response.body).expect("problem body is JSON");
        assert_eq!(body["status"], response.status);
        assert!(
            body["type"]
                .as_str()
                .unwrap()
                .starts_with("urn:paracell:problem:")
        );
        assert!(body["title"].is_string() && body["detail"].is_string());
    }
}

pub fn json(response: &ApiResponse) -> serde_json::Value {
    serde_json::from_slice(&response.body).unwrap_or_else(|e| {
        panic!(
            "body is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&response.body)
        )
    })
}

pub fn problem_slug(response: &ApiResponse) -> String {
    json(response)["type"]
        .as_str()
        .unwrap()
        .trim_start_matches("urn:paracell:problem:")
        .to_owned()
}
