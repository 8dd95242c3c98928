//! What a cell tells its operator besides its answers. W3C Trace Context through a cell and a
//! router: the caller's trace is continued (or one started), the committed entry and the published
//! event carry it, and it never changes an entry's identity. Each answer counts its store
//! operations; each relay run reports its replication lag.
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

#[test]
fn each_answer_counts_its_store_operations() {
    use paracell_domain::observability::metrics::{STORE_REQUESTS, request_samples};
    let cell = Cell::in_memory(CellConfig::new("cell-a", TenantScope::All).unwrap());
    let created = block_on(cell.handle(create("k-1", None)));
    // One read (head, key, balance), one commit.
    assert_eq!(created.telemetry.store_requests, Some(2));
    let replayed = block_on(cell.handle(create("k-1", None)));
    assert_eq!(replayed.telemetry.store_requests, Some(1));
    let location = created.header("location").unwrap().to_owned();
    let mut get = ApiRequest::new("GET", location);
    get.headers.append("x-tenant-id", "coop-1");
    let read = block_on(cell.handle(get));
    assert_eq!(read.status, 200);
    assert_eq!(read.telemetry.store_requests, Some(1));
    let samples = request_samples("cell-a", &read, Duration::from_micros(10));
    let sample = samples
        .iter()
        .find(|s| s.metric == &STORE_REQUESTS)
        .unwrap();
    assert_eq!(sample.value, 1);
    assert_eq!(sample.dimension("route"), Some(read.telemetry.route));
    // /health reaches no store.
    let health = block_on(cell.handle(ApiRequest::new("GET", "/health")));
    assert_eq!(health.telemetry.store_requests, None);
}

#[test]
fn a_relay_run_reports_its_replication_lag() {
    use paracell_domain::memory::{self, MemoryDeadLetters, NoSleep};
    use paracell_domain::observability::metrics::{REPLICATION_LAG, relay_samples};
    use paracell_domain::ports::Clock;
    use paracell_domain::replication::relay::{Delivery, DeliveryError, Destination, Relay};
    use paracell_domain::time::Timestamp;
    use std::sync::Arc;

    struct Accepts;
    #[async_trait::async_trait]
    impl Destination for Accepts {
        fn name(&self) -> &str {
            "accepts"
        }
        fn wants(&self, _entry: &SealedEntry) -> bool {
            true
        }
        async fn deliver(&self, entries: &[SealedEntry]) -> Result<Vec<Delivery>, DeliveryError> {
            Ok(vec![Delivery::Delivered; entries.len()])
        }
    }
    struct At(Timestamp);
    impl Clock for At {
        fn now(&self) -> Timestamp {
            self.0
        }
    }
    let (cell, _store) =
        memory::deterministic(CellConfig::new("cell-a", TenantScope::All).unwrap());
    assert_eq!(block_on(cell.handle(create("k-1", None))).status, 201);
    let entries = pending(&cell);
    let committed = entries[0].entry().time;
    let relay = Relay::new(
        vec![Arc::new(Accepts)],
        Arc::new(MemoryDeadLetters::new()),
        Arc::new(NoSleep),
        Arc::new(At(committed.plus_millis(1_500))),
    );
    let report = block_on(relay.relay(&entries));
    assert_eq!(report.lag_millis, Some(1_500));
    let samples = relay_samples("cell-a", &report);
    let lag = samples
        .iter()
        .find(|s| s.metric == &REPLICATION_LAG)
        .unwrap();
    assert_eq!(lag.value, 1_500);
    // Nothing relayed: no lag sample.
    let idle = block_on(relay.relay(&[]));
    assert!(
        !relay_samples("cell-a", &idle)
            .iter()
            .any(|s| s.metric == &REPLICATION_LAG)
    );
}
