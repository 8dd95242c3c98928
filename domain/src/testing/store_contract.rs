//! The contract every [`TransactionStore`] must meet, written once and run against each store
//! (in memory here; DynamoDB and Cosmos DB instantiate it with their own stores).
//!
//! ```
//! use paracell_domain::{memory::MemoryStore, testing::store_contract};
//! store_contract::run_all(&store_contract::ThreadExecutor, &|| std::sync::Arc::new(MemoryStore::new()));
//! ```
//!
//! Each check takes an [`Executor`] (stores whose I/O lives on an async runtime pass one that runs
//! futures on it) and a factory that returns a fresh, empty store, and panics with a message naming
//! the broken rule.

use crate::events::OutboxEvent;
use crate::http::ApiRequest;
use crate::idempotency::{IdempotencyKey, KeyState, StoredResponse};
use crate::money::Currency;
use crate::ports::{BalanceUpdate, ClaimOutcome, Commit, CommitError, KeyClaim, TransactionStore};
use crate::ports::{StoreError, SystemClock, UuidV7};
use crate::time::Timestamp;
use crate::transaction::{
    AccountId, Transaction, TransactionId, TransactionKind, TransactionStatus,
};
use crate::{Amount, CellId, TenantId};
use crate::{Cell, CellConfig, CellPorts, TenantScope};
use rust_decimal::Decimal;
use std::future::Future;
use std::sync::Arc;

/// Builds a fresh, empty store.
pub type Factory<'a> = &'a dyn Fn() -> Arc<dyn TransactionStore>;

/// Runs a store's futures to completion; called from several threads at once by the concurrency checks.
pub trait Executor: Sync {
    /// Drives `future` to its output on the calling thread.
    fn block_on<F: Future>(&self, future: F) -> F::Output;
}

/// Runs futures with the dependency-free [`crate::testing::block_on`]: enough for stores that need no
/// async runtime, such as [`crate::memory::MemoryStore`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadExecutor;

impl Executor for ThreadExecutor {
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        crate::testing::block_on(future)
    }
}

fn tenant(t: &str) -> TenantId {
    TenantId::parse(t).unwrap_or_else(|e| panic!("test tenant {t}: {e}"))
}

fn key(k: &str) -> IdempotencyKey {
    IdempotencyKey::parse(k).unwrap_or_else(|e| panic!("test key {k}: {e}"))
}

fn eur() -> Currency {
    Currency::parse("EUR").unwrap_or_else(|e| panic!("EUR: {e}"))
}

fn account() -> AccountId {
    AccountId::parse("ACC-1").unwrap_or_else(|e| panic!("account: {e}"))
}

fn id(n: u64) -> TransactionId {
    let mut bytes = [0u8; 16];
    bytes[8..].copy_from_slice(&n.to_be_bytes());
    TransactionId::from_uuid(uuid::Builder::from_random_bytes(bytes).into_uuid())
}

fn claim(
    rt: &impl Executor,
    store: &dyn TransactionStore,
    t: &str,
    k: &str,
    token: TransactionId,
    now: i64,
) -> ClaimOutcome {
    rt.block_on(store.claim_key(KeyClaim {
        tenant_id: tenant(t),
        key: key(k),
        fingerprint: format!("fp-{k}"),
        token,
        now: Timestamp::from_unix_millis(now),
        stale_before: Timestamp::from_unix_millis(now - 30_000),
    }))
    .unwrap_or_else(|e| panic!("claim_key failed: {e}"))
}

/// A commit of a credit or debit of `cents` on (t, ACC-1, EUR) with the balance read as `expected_version`.
fn commit_of(
    t: &str,
    k: &str,
    token: TransactionId,
    available_cents: i64,
    expected_version: u64,
    event_n: u64,
) -> Commit {
    let available = Decimal::new(available_cents, 2);
    let transaction = Transaction {
        transaction_id: token,
        tenant_id: tenant(t),
        account_id: account(),
        kind: TransactionKind::Credit,
        amount: Amount::parse("1", eur()).unwrap_or_else(|e| panic!("amount: {e}")),
        currency: eur(),
        reference: None,
        metadata: None,
        status: TransactionStatus::Accepted,
        balance_after: available,
        created_at: Timestamp::from_unix_millis(1_000),
        cell_id: CellId::parse("cell-test").unwrap_or_else(|e| panic!("cell: {e}")),
    };
    Commit {
        balance: BalanceUpdate {
            tenant_id: tenant(t),
            account_id: account(),
            currency: eur(),
            available,
            expected_version,
        },
        key: key(k),
        token,
        response: StoredResponse {
            status: 201,
            headers: vec![("content-type".into(), "application/json".into())],
            body: transaction.to_json().into_bytes(),
        },
        event: OutboxEvent {
            event_id: id(1_000_000 + event_n).as_uuid(),
            tenant_id: tenant(t),
            time: Timestamp::from_unix_millis(1_000),
            document: format!("{{\"n\":{event_n}}}"),
        },
        transaction,
    }
}

/// Runs every check.
pub fn run_all(rt: &impl Executor, factory: Factory<'_>) {
    atomic_commit_writes_everything(rt, factory);
    failed_conditions_write_nothing(rt, factory);
    idempotency_records(rt, factory);
    balance_versions(rt, factory);
    tenant_isolation(rt, factory);
    outbox_pages(rt, factory);
    concurrent_claims_have_one_winner(rt, factory);
    concurrent_debits_never_overdraw(rt, factory);
}

/// A commit makes the transaction, balance, completed key and event visible together.
pub fn atomic_commit_writes_everything(rt: &impl Executor, factory: Factory<'_>) {
    let store = factory();
    let token = id(1);
    assert_eq!(
        claim(rt, &*store, "coop-1", "k", token, 1_000),
        ClaimOutcome::Claimed,
        "a fresh key is claimed"
    );
    rt.block_on(store.commit(commit_of("coop-1", "k", token, 100, 0, 1)))
        .unwrap_or_else(|e| panic!("commit failed: {e}"));
    let tx = rt
        .block_on(store.transaction(&tenant("coop-1"), token))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        tx.map(|t| t.transaction_id),
        Some(token),
        "read-your-writes: the transaction"
    );
    let balance = rt
        .block_on(store.balance(&tenant("coop-1"), &account(), eur()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        balance.map(|b| (b.available, b.version)),
        Some((Decimal::new(100, 2), 1)),
        "the balance and its version"
    );
    let record = rt
        .block_on(store.idempotency_record(&tenant("coop-1"), &key("k")))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(record.map(|r| r.state), Some(KeyState::Completed(r)) if r.status == 201),
        "the key is completed with the response"
    );
    let page = rt
        .block_on(store.pending_events(None, 10))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(page.events.len(), 1, "one outbox event");
}

/// A commit whose conditions fail (stale balance version, key not held, duplicate id) writes nothing.
pub fn failed_conditions_write_nothing(rt: &impl Executor, factory: Factory<'_>) {
    let store = factory();
    let token = id(2);
    claim(rt, &*store, "coop-1", "k", token, 1_000);
    let stale = rt.block_on(store.commit(commit_of("coop-1", "k", token, 100, 7, 1)));
    assert_eq!(
        stale,
        Err(CommitError::BalanceConflict),
        "a stale balance version is a conflict"
    );
    let unheld = rt.block_on(store.commit(commit_of("coop-1", "other-key", id(3), 100, 0, 2)));
    assert_eq!(
        unheld,
        Err(CommitError::KeyNotHeld),
        "a key that is not held"
    );
    assert_eq!(
        rt.block_on(store.transaction(&tenant("coop-1"), token))
            .ok()
            .flatten(),
        None,
        "no transaction was written"
    );
    assert_eq!(
        rt.block_on(store.balance(&tenant("coop-1"), &account(), eur()))
            .ok()
            .flatten(),
        None,
        "no balance was written"
    );
    assert!(
        rt.block_on(store.pending_events(None, 10))
            .map(|p| p.events.is_empty())
            .unwrap_or(false),
        "no event was written"
    );
    rt.block_on(store.commit(commit_of("coop-1", "k", token, 100, 0, 3)))
        .unwrap_or_else(|e| panic!("{e}"));
    claim(rt, &*store, "coop-1", "k2", token, 1_000);
    let duplicate = rt.block_on(store.commit(commit_of("coop-1", "k2", token, 200, 1, 4)));
    assert_eq!(
        duplicate,
        Err(CommitError::DuplicateTransaction),
        "the same transaction id twice"
    );
    let k2 = rt
        .block_on(store.idempotency_record(&tenant("coop-1"), &key("k2")))
        .ok()
        .flatten()
        .map(|r| r.state);
    assert!(
        matches!(k2, Some(KeyState::InProgress { .. })),
        "the refused commit did not complete its key: {k2:?}"
    );
    let balance = rt
        .block_on(store.balance(&tenant("coop-1"), &account(), eur()))
        .ok()
        .flatten();
    assert_eq!(
        balance.map(|b| b.available),
        Some(Decimal::new(100, 2)),
        "the refused commit left the balance alone"
    );
}

/// Claims, takeovers of stale claims, completion and release.
pub fn idempotency_records(rt: &impl Executor, factory: Factory<'_>) {
    let store = factory();
    assert_eq!(
        claim(rt, &*store, "coop-1", "k", id(1), 10_000),
        ClaimOutcome::Claimed
    );
    assert!(
        matches!(claim(rt, &*store, "coop-1", "k", id(2), 10_001), ClaimOutcome::Existing(r) if matches!(r.state, KeyState::InProgress { .. })),
        "a live claim is reported"
    );
    assert_eq!(
        claim(rt, &*store, "coop-1", "k", id(3), 60_000),
        ClaimOutcome::Claimed,
        "a claim older than the lease is taken over"
    );
    let response = StoredResponse {
        status: 409,
        headers: vec![],
        body: b"{}".to_vec(),
    };
    rt.block_on(store.complete_key(&tenant("coop-1"), &key("k"), id(1), response.clone()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(claim(rt, &*store, "coop-1", "k", id(4), 60_001), ClaimOutcome::Existing(r) if matches!(r.state, KeyState::InProgress { .. })),
        "completing with a lost token is a no-op"
    );
    rt.block_on(store.complete_key(&tenant("coop-1"), &key("k"), id(3), response.clone()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(claim(rt, &*store, "coop-1", "k", id(5), 60_002), ClaimOutcome::Existing(r) if r.state == KeyState::Completed(response.clone())),
        "a completed key replays"
    );
    claim(rt, &*store, "coop-1", "r", id(6), 1_000);
    rt.block_on(store.release_key(&tenant("coop-1"), &key("r"), id(6)))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        claim(rt, &*store, "coop-1", "r", id(7), 1_001),
        ClaimOutcome::Claimed,
        "a released key can be claimed again"
    );
}

/// Versions advance by one per commit; balances of one account are listed.
pub fn balance_versions(rt: &impl Executor, factory: Factory<'_>) {
    let store = factory();
    for (n, cents) in [(1u64, 100i64), (2, 250), (3, 40)] {
        claim(rt, &*store, "coop-1", &format!("k{n}"), id(n), 1_000);
        rt.block_on(store.commit(commit_of(
            "coop-1",
            &format!("k{n}"),
            id(n),
            cents,
            n - 1,
            n,
        )))
        .unwrap_or_else(|e| panic!("commit {n}: {e}"));
    }
    let balances = rt
        .block_on(store.balances(&tenant("coop-1"), &account()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(balances.len(), 1);
    assert_eq!(
        (balances[0].available, balances[0].version),
        (Decimal::new(40, 2), 3),
        "the last write wins with version 3"
    );
}

/// A tenant never reads another tenant's items, even with their ids.
pub fn tenant_isolation(rt: &impl Executor, factory: Factory<'_>) {
    let store = factory();
    claim(rt, &*store, "coop-1", "k", id(1), 1_000);
    rt.block_on(store.commit(commit_of("coop-1", "k", id(1), 100, 0, 1)))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        rt.block_on(store.transaction(&tenant("coop-2"), id(1)))
            .ok()
            .flatten(),
        None,
        "transaction"
    );
    assert_eq!(
        rt.block_on(store.balance(&tenant("coop-2"), &account(), eur()))
            .ok()
            .flatten(),
        None,
        "balance"
    );
    assert_eq!(
        rt.block_on(store.balances(&tenant("coop-2"), &account()))
            .map(|b| b.len())
            .ok(),
        Some(0),
        "balances"
    );
    assert_eq!(
        rt.block_on(store.idempotency_record(&tenant("coop-2"), &key("k")))
            .ok()
            .flatten(),
        None,
        "idempotency record"
    );
    assert_eq!(
        claim(rt, &*store, "coop-2", "k", id(2), 1_000),
        ClaimOutcome::Claimed,
        "keys are per tenant"
    );
}

/// Outbox reads page in order and skip published events.
pub fn outbox_pages(rt: &impl Executor, factory: Factory<'_>) {
    let store = factory();
    for n in 1..=5u64 {
        claim(rt, &*store, "coop-1", &format!("k{n}"), id(n), 1_000);
        rt.block_on(store.commit(commit_of(
            "coop-1",
            &format!("k{n}"),
            id(n),
            100 * i64::try_from(n).unwrap_or(0),
            n - 1,
            n,
        )))
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let first = rt
        .block_on(store.pending_events(None, 2))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        first
            .events
            .iter()
            .map(|e| e.document.clone())
            .collect::<Vec<_>>(),
        vec!["{\"n\":1}", "{\"n\":2}"],
        "oldest first"
    );
    let second = rt
        .block_on(store.pending_events(first.next.as_deref(), 2))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        second
            .events
            .iter()
            .map(|e| e.document.clone())
            .collect::<Vec<_>>(),
        vec!["{\"n\":3}", "{\"n\":4}"],
        "the cursor continues"
    );
    let ids: Vec<uuid::Uuid> = first.events.iter().map(|e| e.event_id).collect();
    rt.block_on(store.mark_published(&ids))
        .unwrap_or_else(|e| panic!("{e}"));
    let rest = rt
        .block_on(store.pending_events(None, 10))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        rest.events.len(),
        3,
        "published events are no longer pending"
    );
    assert_eq!(rest.next, None, "the last page has no cursor");
}

/// Fifty requests claiming one key at once: exactly one wins.
pub fn concurrent_claims_have_one_winner(rt: &impl Executor, factory: Factory<'_>) {
    let store = factory();
    let winners = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50u64)
            .map(|n| {
                let store = store.clone();
                s.spawn(move || {
                    claim(rt, &*store, "coop-1", "same", id(n + 1), 1_000) == ClaimOutcome::Claimed
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok())
            .filter(|won| *won)
            .count()
    });
    assert_eq!(winners, 1, "exactly one concurrent claim wins");
}

/// A cell on `store` with the real clock and ids, serving tenants `coop-1` and `coop-2`.
fn cell_on(store: Arc<dyn TransactionStore>) -> Cell {
    let scope = TenantScope::Set([tenant("coop-1"), tenant("coop-2")].into_iter().collect());
    let config = CellConfig::new("cell-test", scope).unwrap_or_else(|e| panic!("test config: {e}"));
    Cell::new(
        config,
        CellPorts {
            store,
            clock: Arc::new(SystemClock),
            ids: Arc::new(UuidV7),
        },
    )
}

fn create(kind: &str, amount: &str, key: &str) -> ApiRequest {
    ApiRequest::new("POST", "/v1/transactions")
        .with_header("content-type", "application/json")
        .with_header("x-tenant-id", "coop-1")
        .with_header("idempotency-key", key)
        .with_body(format!(
            r#"{{"account_id":"ACC-1","type":"{kind}","amount":"{amount}","currency":"EUR"}}"#
        ))
}

/// Fifty debits of 1.00 racing on a balance of 20.00, through the cell: exactly twenty are booked,
/// thirty are refused for insufficient funds, and the balance ends at 0.00 with one version per booking.
pub fn concurrent_debits_never_overdraw(rt: &impl Executor, factory: Factory<'_>) {
    let store = factory();
    let cell = cell_on(store.clone());
    let funded = rt.block_on(cell.handle(create("credit", "20.00", "fund")));
    assert_eq!(funded.status, 201, "the funding credit is booked");
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|n| {
                let cell = &cell;
                s.spawn(move || {
                    rt.block_on(cell.handle(create("debit", "1.00", &format!("debit-{n}"))))
                        .status
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let booked = statuses.iter().filter(|s| **s == 201).count();
    let refused = statuses.iter().filter(|s| **s == 409).count();
    assert_eq!(
        (booked, refused),
        (20, 30),
        "exactly the affordable debits are booked (statuses: {statuses:?})"
    );
    let balance = rt
        .block_on(store.balance(&tenant("coop-1"), &account(), eur()))
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|b| (b.available, b.version));
    assert_eq!(
        balance,
        Some((Decimal::ZERO, 21)),
        "no overdraft, one version per booking"
    );
}

/// A store that cannot reach its database answers every operation with
/// [`StoreError::Unavailable`] (after its own bounded retries), and the cell turns that into the
/// contract's 503 `store-unavailable` with `Retry-After`, never a generic 500.
pub fn unreachable_store_is_unavailable(rt: &impl Executor, store: Arc<dyn TransactionStore>) {
    let unavailable = |what: &str, result: Result<(), StoreError>| {
        assert!(
            matches!(result, Err(StoreError::Unavailable { .. })),
            "{what}: expected StoreError::Unavailable, got {result:?}"
        );
    };
    let claimed = rt.block_on(store.claim_key(KeyClaim {
        tenant_id: tenant("coop-1"),
        key: key("k"),
        fingerprint: "fp".into(),
        token: id(1),
        now: Timestamp::from_unix_millis(1_000),
        stale_before: Timestamp::from_unix_millis(0),
    }));
    unavailable("claim_key", claimed.map(|_| ()));
    let committed = rt.block_on(store.commit(commit_of("coop-1", "k", id(1), 100, 0, 1)));
    assert!(
        matches!(
            committed,
            Err(CommitError::Store(StoreError::Unavailable { .. }))
        ),
        "commit: expected CommitError::Store(Unavailable), got {committed:?}"
    );
    unavailable(
        "transaction",
        rt.block_on(store.transaction(&tenant("coop-1"), id(1)))
            .map(|_| ()),
    );
    unavailable(
        "balances",
        rt.block_on(store.balances(&tenant("coop-1"), &account()))
            .map(|_| ()),
    );
    unavailable(
        "pending_events",
        rt.block_on(store.pending_events(None, 10)).map(|_| ()),
    );
    let cell = cell_on(store);
    for request in [
        create("credit", "1.00", "k"),
        ApiRequest::new("GET", "/v1/accounts/ACC-1/balances").with_header("x-tenant-id", "coop-1"),
    ] {
        let response = rt.block_on(cell.handle(request));
        assert_eq!(response.status, 503, "a store outage is 503");
        assert!(
            response
                .headers
                .iter()
                .any(|(n, v)| n == "retry-after" && v.parse::<u32>().is_ok_and(|s| s >= 1)),
            "with Retry-After: {:?}",
            response.headers
        );
        assert!(
            String::from_utf8_lossy(&response.body).contains("store-unavailable"),
            "the store-unavailable problem"
        );
    }
}
