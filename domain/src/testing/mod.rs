//! Small helpers for tests of code built on the domain: a dependency-free `block_on` (the domain has
//! no async runtime) and sample values.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs a future to completion on the current thread.
///
/// ```
/// assert_eq!(paracell_domain::testing::block_on(async { 40 + 2 }), 42);
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}

/// A valid transaction for examples and tests.
pub fn sample_transaction() -> crate::Transaction {
    use crate::*;
    let eur =
        Currency::parse("EUR").unwrap_or_else(|_| unreachable!("EUR is an ISO 4217 currency"));
    let amount = Amount::parse("125.5", eur).unwrap_or_else(|_| unreachable!("valid amount"));
    Transaction {
        transaction_id: TransactionId::from_uuid(uuid::Uuid::nil()),
        tenant_id: TenantId::parse("coop-1").unwrap_or_else(|_| unreachable!("valid tenant")),
        account_id: AccountId::parse("ACC-1").unwrap_or_else(|_| unreachable!("valid account")),
        kind: TransactionKind::Credit,
        amount,
        currency: eur,
        reference: None,
        metadata: None,
        status: TransactionStatus::Accepted,
        balance_after: amount.value(),
        created_at: Timestamp::from_unix_millis(0),
        cell_id: CellId::parse("cell-a").unwrap_or_else(|_| unreachable!("valid cell")),
    }
}

/// A sealed replication entry (the first of coop-1, booking [`sample_transaction`]) for examples
/// and tests.
pub fn sample_entry() -> crate::replication::SealedEntry {
    use crate::replication::{Digest, Effect, Entry, SealedEntry};
    let tx = sample_transaction();
    let body = tx.to_json();
    let event = crate::events::TransactionAccepted {
        event_id: uuid::Uuid::nil(),
        source_cell: tx.cell_id.clone(),
        tenant_seq: 1,
        balance_version: 1,
        transaction: tx.clone(),
        trace: None,
    }
    .render(&body);
    SealedEntry::seal(Entry {
        tenant: tx.tenant_id.clone(),
        seq: 1,
        epoch: 1,
        origin: tx.cell_id.clone(),
        prev: Digest::ZERO,
        time: tx.created_at,
        key: crate::IdempotencyKey::parse("k-1").unwrap_or_else(|_| unreachable!("valid key")),
        fingerprint: r#"{"account_id":"ACC-1"}"#.into(),
        response: crate::idempotency::StoredResponse {
            status: 201,
            headers: vec![("content-type".into(), crate::http::JSON.into())],
            body: body.into_bytes(),
        },
        effect: Effect::Accepted {
            balance_version: 1,
            event,
        },
        trace: None,
    })
}

pub mod acceptor_contract;
pub mod faults;
pub mod registry_contract;
pub mod round_trips;
pub mod store_contract;

/// The project's shared third-party fixtures (`shared/fixtures/<sub>` beside the repository, or
/// under `$PARACELL_SHARED_FIXTURES`), for tests that replay them.
///
/// `None` only when the folder is absent, the variable unset and `CI` is not `true`: the caller then
/// reports that its replay did not run. `.ci/run` sets the variable whenever `../shared/fixtures` exists, so in CI a
/// missing folder is a failure, never a silent skip.
pub fn shared_fixtures(sub: &str) -> Option<std::path::PathBuf> {
    let configured = std::env::var_os("PARACELL_SHARED_FIXTURES");
    let dir = configured
        .clone()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
        })
        .join(sub);
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        configured.is_none(),
        "PARACELL_SHARED_FIXTURES is set but {} is missing",
        dir.display()
    );
    // In CI a replay that cannot run is a failure, never a silent skip.
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but shared/fixtures/{sub} is missing ({}): a replay would be skipped",
        dir.display()
    );
    eprintln!("NOTE: shared/fixtures/{sub} not found; its replay did not run");
    None
}

/// An [`HttpClient`](crate::ports::HttpClient) that hands requests to cells in this process: a URL
/// starting with a registered base goes to that cell's [`Cell::handle`](crate::Cell::handle) with
/// the rest as its path. Anything else is a connection failure. For tests of the relay and the router.
///
/// ```
/// use paracell_domain::{Cell, CellConfig, TenantScope, ports::*, testing::{block_on, InProcessHttp}};
/// let cell = Cell::in_memory(CellConfig::new("cell-b", TenantScope::All).unwrap());
/// let http = InProcessHttp::default().with_cell("http://cell-b", cell);
/// let request = OutboundRequest { method: "GET".into(), url: "http://cell-b/health".into(),
///     headers: vec![], body: vec![], timeout: std::time::Duration::from_secs(1) };
/// assert_eq!(block_on(http.send(request)).unwrap().status, 200);
/// ```
#[derive(Clone, Default)]
pub struct InProcessHttp {
    cells: Vec<(String, crate::Cell)>,
}

impl InProcessHttp {
    /// Routes `base_url…` to `cell`.
    #[must_use]
    pub fn with_cell(mut self, base_url: &str, cell: crate::Cell) -> Self {
        self.cells
            .push((base_url.trim_end_matches('/').to_owned(), cell));
        self
    }
}

#[async_trait::async_trait]
impl crate::ports::HttpClient for InProcessHttp {
    async fn send(
        &self,
        request: crate::ports::OutboundRequest,
    ) -> Result<crate::ports::OutboundResponse, crate::ports::TransportError> {
        let Some((base, cell)) = self
            .cells
            .iter()
            .find(|(base, _)| request.url.starts_with(base.as_str()))
        else {
            return Err(crate::ports::TransportError::Connect(format!(
                "nothing listens at {}",
                request.url
            )));
        };
        let rest = &request.url[base.len()..];
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut api = crate::http::ApiRequest::new(request.method, path)
            .with_query(query)
            .with_body(request.body);
        for (name, value) in request.headers {
            api = api.with_header(name, value);
        }
        let response = cell.handle(api).await;
        Ok(crate::ports::OutboundResponse {
            status: response.status,
            headers: response.headers,
            body: response.body,
        })
    }
}

/// A relay for tests: one peer at `base_url`, reached through `http`, signing with `secret`,
/// dead-lettering into `dead`, retrying at most `max_attempts` times without waiting, on the clock and
/// ids of `from`.
pub fn test_relay(
    from: &crate::Cell,
    http: InProcessHttp,
    base_url: &str,
    secret: crate::replication::signature::PeerSecret,
    dead: std::sync::Arc<dyn crate::replication::relay::DeadLetters>,
    max_attempts: u32,
) -> crate::replication::relay::Relay {
    use crate::replication::relay::{PeerDestination, Relay, RelayPolicy};
    let peer = PeerDestination::new(
        base_url,
        secret,
        Arc::new(http),
        from.ports().clock.clone(),
        from.ports().ids.clone(),
    );
    Relay::new(
        vec![Arc::new(peer)],
        dead,
        Arc::new(crate::memory::NoSleep),
        from.ports().clock.clone(),
    )
    .with_policy(RelayPolicy {
        max_attempts,
        ..RelayPolicy::default()
    })
}

/// What a relay would deliver, without the transport: `from`'s pending entries applied on `to`
/// (the standby's use case), then marked relayed on `from`. For tests of placement and replication.
///
/// ```
/// use paracell_domain::{Cell, CellConfig, TenantScope, http::ApiRequest, testing::{block_on, replicate}};
/// let (a, b) = (Cell::in_memory(CellConfig::new("a", TenantScope::All).unwrap()),
///     Cell::in_memory(CellConfig::new("b", TenantScope::All).unwrap()));
/// block_on(a.handle(ApiRequest::new("POST", "/v1/transactions").with_header("content-type", "application/json")
///     .with_header("x-tenant-id", "coop-1").with_header("idempotency-key", "k")
///     .with_body(br#"{"account_id":"A-1","type":"credit","amount":"1.00","currency":"EUR"}"#.to_vec())));
/// assert_eq!(block_on(replicate(&a, &b)).unwrap(), 1);
/// let tenant = paracell_domain::TenantId::parse("coop-1").unwrap();
/// assert_eq!(block_on(b.ports().store.head(&tenant)).unwrap().unwrap().position.seq, 1);
/// ```
pub async fn replicate(
    from: &crate::Cell,
    to: &crate::Cell,
) -> Result<usize, crate::ports::StoreError> {
    let store = &from.ports().store;
    let pending = store.pending_entries(None, 100_000).await?.entries;
    let refs: Vec<crate::ports::EntryRef> = pending
        .iter()
        .map(|e| crate::ports::EntryRef {
            tenant: e.tenant().clone(),
            seq: e.seq(),
        })
        .collect();
    crate::replication::apply::receive(
        to.config(),
        to.ports().store.as_ref(),
        &from.config().cell_id,
        to.placement_source(),
        pending.into_iter().map(Ok).collect(),
    )
    .await?;
    store.mark_relayed(&refs).await?;
    Ok(refs.len())
}

/// A relay destination that takes every entry but those at `refused` sequence numbers, which it
/// refuses for good (`Delivery::Poison`): for tests of partial relay failures.
pub struct RefusesSeqs(pub Vec<u64>);

#[async_trait::async_trait]
impl crate::replication::relay::Destination for RefusesSeqs {
    fn name(&self) -> &str {
        "refuses-seqs"
    }

    fn wants(&self, _: &crate::replication::SealedEntry) -> bool {
        true
    }

    async fn deliver(
        &self,
        entries: &[crate::replication::SealedEntry],
    ) -> Result<Vec<crate::replication::relay::Delivery>, crate::replication::relay::DeliveryError>
    {
        use crate::replication::relay::Delivery;
        Ok(entries
            .iter()
            .map(|e| {
                if self.0.contains(&e.seq()) {
                    Delivery::Poison("refused".into())
                } else {
                    Delivery::Delivered
                }
            })
            .collect())
    }
}

/// A dead-letter queue that is down: every `put` fails (`StoreError::Unavailable`).
pub struct DeadLettersDown;

#[async_trait::async_trait]
impl crate::replication::relay::DeadLetters for DeadLettersDown {
    async fn put(
        &self,
        _: &crate::replication::relay::DeadLetter,
    ) -> Result<(), crate::ports::StoreError> {
        Err(crate::ports::StoreError::Unavailable {
            retry_after_secs: 1,
            detail: "dead-letter queue down".into(),
        })
    }

    async fn list(
        &self,
        _: usize,
    ) -> Result<Vec<(String, crate::replication::relay::DeadLetter)>, crate::ports::StoreError>
    {
        Ok(Vec::new())
    }

    async fn remove(&self, _: &str) -> Result<(), crate::ports::StoreError> {
        Ok(())
    }
}
