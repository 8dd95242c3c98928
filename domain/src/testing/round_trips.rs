//! How many database requests each answer of a cell costs, counted where they arrive: at the local
//! stand-ins, which count the requests they serve by table (or container) and operation
//! (`services/`). The store tests assert the counts per store; `bench/harness.py` reports them.

use super::store_contract::{Executor, create};
use crate::http::ApiRequest;
use crate::ports::{SystemClock, TransactionStore, UuidV7};
use crate::{Cell, CellConfig, CellPorts, TenantScope};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

/// Requests by operation name (`TransactGetItems`, `batch`, ...).
pub type Counts = BTreeMap<String, u64>;

/// The requests of one answer of each kind, in the order they are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerOperation {
    /// A credit booked on a tenant and account that already exist.
    pub create: Counts,
    /// The same request again: the first outcome replayed.
    pub replay: Counts,
    /// `GET /v1/transactions/{id}`.
    pub get: Counts,
    /// A debit refused for insufficient funds (committed like a booking).
    pub refused_debit: Counts,
}

/// Reads a stand-in's counter: `GET {url}` answering a JSON object of counts.
///
/// # Errors
/// When the stand-in cannot be reached or answers something else.
pub fn read_counts(url: &str) -> Result<Counts, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// stand-ins"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = TcpStream::connect(authority).map_err(|e| format!("{url}: {e}"))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("{url}: {e}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|e| format!("{url}: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{url}: not an HTTP answer"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(format!(
            "{url}: {}",
            head.lines().next().unwrap_or_default()
        ));
    }
    serde_json::from_str(body).map_err(|e| format!("{url}: {e}: {body}"))
}

fn delta(before: &Counts, after: &Counts) -> Counts {
    after
        .iter()
        .filter_map(|(op, n)| {
            let d = n - before.get(op).copied().unwrap_or(0).min(*n);
            (d > 0).then(|| (op.clone(), d))
        })
        .collect()
}

/// Runs each kind of answer once through a cell on `store` (a fresh, empty store whose requests
/// `counts` reads, e.g. [`read_counts`] of the stand-in's counter for its table), after a first
/// credit that creates the tenant, and returns what each cost. Panics when an answer is not the
/// one expected.
pub fn per_operation(
    rt: &impl Executor,
    store: Arc<dyn TransactionStore>,
    counts: &dyn Fn() -> Counts,
) -> PerOperation {
    let config = CellConfig::new("cell-test", TenantScope::All)
        .unwrap_or_else(|e| panic!("test config: {e}"));
    let cell = Cell::new(
        config,
        CellPorts {
            store,
            clock: Arc::new(SystemClock),
            ids: Arc::new(UuidV7),
        },
    );
    let measure = |request: ApiRequest, status: u16| {
        let before = counts();
        let response = rt.block_on(cell.handle(request));
        assert_eq!(
            response.status,
            status,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
        (delta(&before, &counts()), response)
    };
    measure(create("credit", "10.00", "first"), 201);
    let (create_cost, created) = measure(create("credit", "5.00", "second"), 201);
    let (replay, _) = measure(create("credit", "5.00", "second"), 201);
    let location = created
        .header("location")
        .unwrap_or_else(|| panic!("a 201 names its transaction"))
        .to_owned();
    let (get, _) = measure(
        ApiRequest::new("GET", location).with_header("x-tenant-id", "coop-1"),
        200,
    );
    let (refused_debit, _) = measure(create("debit", "100.00", "too-much"), 409);
    PerOperation {
        create: create_cost,
        replay,
        get,
        refused_debit,
    }
}

/// `[("TransactGetItems", 1), ...]` as [`Counts`], for assertions.
pub fn counts<const N: usize>(pairs: [(&str, u64); N]) -> Counts {
    pairs
        .into_iter()
        .map(|(op, n)| (op.to_owned(), n))
        .collect()
}
