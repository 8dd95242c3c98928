//! W3C Trace Context through a cell and a router: the caller's trace is continued (or one started),
//! the committed entry and the published event carry it, and it never changes an entry's identity.
#![allow(clippy::unwrap_used, missing_docs)]

use paracell_domain::edge::forward;
use paracell_domain::edge::routes::{BaseUrl, Cloud, Route};
use paracell_domain::events::TransactionAccepted;
use paracell_domain::http::ApiRequest;
use paracell_domain::observability::trace::TraceContext;
use paracell_domain::replication::{Entry, SealedEntry};
use paracell_domain::testing::block_on;
use paracell_domain::{Cell, CellConfig, CellId, TenantScope};
use std::time::Duration;

const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

fn create(key: &str, traceparent: Option<&str>) -> ApiRequest {
    let mut request = ApiRequest::new("POST", "/v1/transactions");
    request.headers.append("content-type", "application/json");
    request.headers.append("x-tenant-id", "coop-1");
    request.headers.append("idempotency-key", key);
    if let Some(parent) = traceparent {
        request.headers.append("traceparent", parent);
        request.headers.append("tracestate", "congo=t61rcWkgMzE");
    }
    request.body =
        br#"{"account_id":"ACC-1","type":"credit","amount":"10.00","currency":"EUR"}"#.to_vec();
    request
}

fn pending(cell: &Cell) -> Vec<SealedEntry> {
    block_on(cell.ports().store.pending_entries(None, 100))
        .unwrap()
        .entries
}

#[test]
fn a_create_continues_the_callers_trace_into_its_entry_and_event() {
    let cell = Cell::in_memory(CellConfig::new("cell-a", TenantScope::All).unwrap());
    let response = block_on(cell.handle(create("k-1", Some(PARENT))));
    assert_eq!(response.status, 201);
    assert_eq!(response.telemetry.trace_id(), TRACE_ID);
    let entries = pending(&cell);
    let trace = entries[0].entry().trace.clone().unwrap();
    assert_eq!(trace.trace_id(), TRACE_ID);
    assert_ne!(trace.span_id(), "b7ad6b7169203331", "the cell's own span");
    assert_eq!(trace.tracestate(), Some("congo=t61rcWkgMzE"));
    // The event published for consumers carries it; the document survives a store round trip.
    let event = TransactionAccepted::parse(&entries[0].event().unwrap()).unwrap();
    assert_eq!(event.trace, Some(trace.clone()));
    let reopened =
        SealedEntry::open_checked(entries[0].document(), &entries[0].digest().to_string()).unwrap();
    assert_eq!(reopened.entry().trace, Some(trace));
}

#[test]
fn without_a_traceparent_each_request_starts_its_own_trace() {
    let cell = Cell::in_memory(CellConfig::new("cell-a", TenantScope::All).unwrap());
    let a = block_on(cell.handle(create("k-1", None)));
    let b = block_on(cell.handle(create("k-2", None)));
    let (a, b) = (a.telemetry.trace_id(), b.telemetry.trace_id());
    assert_eq!(a.len(), 32);
    assert_ne!(a, b);
    assert_eq!(
        pending(&cell)[0].entry().trace.as_ref().unwrap().trace_id(),
        a
    );
}

#[test]
fn the_trace_is_not_part_of_an_entrys_identity() {
    let cell = Cell::in_memory(CellConfig::new("cell-a", TenantScope::All).unwrap());
    block_on(cell.handle(create("k-1", Some(PARENT))));
    let traced = pending(&cell).remove(0);
    let untraced = SealedEntry::seal(Entry {
        trace: None,
        ..traced.entry().clone()
    });
    assert_ne!(traced.document(), untraced.document());
    assert_eq!(traced.digest(), untraced.digest());
    // A tracestate without a traceparent, or an invalid traceparent, is not a valid entry.
    let broken = traced
        .document()
        .replace(r#","traceparent":"00-"#, r#","traceparent":"zz-"#);
    assert!(SealedEntry::open(&broken).is_err());
    let orphan_state =
        untraced.document().trim_end_matches('}').to_owned() + r#","tracestate":"a=b"}"#;
    assert!(SealedEntry::open(&orphan_state).is_err());
}

#[test]
fn the_router_passes_its_own_span_as_the_cells_parent() {
    let mut request = create("k-1", Some(PARENT));
    request.headers.append("TraceParent", PARENT); // a repeated one is dropped with the first
    let route = Route {
        cell: CellId::parse("cell-a").unwrap(),
        cloud: Cloud::Aws,
        url: BaseUrl::parse("http://127.0.0.1:9").unwrap(),
        epoch: 3,
    };
    let trace = TraceContext::parse(PARENT, Some("congo=t61rcWkgMzE"))
        .unwrap()
        .child();
    let outbound = forward::to_cell(&request, &route, "edge-1", Duration::from_secs(1), &trace);
    let parents: Vec<&str> = outbound
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("traceparent"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(parents, [trace.traceparent().as_str()]);
    assert!(parents[0].starts_with(&format!("00-{TRACE_ID}-")));
    assert_ne!(parents[0], PARENT);
    let states = outbound
        .headers
        .iter()
        .filter(|(n, _)| n == "tracestate")
        .count();
    assert_eq!(states, 1);
}
