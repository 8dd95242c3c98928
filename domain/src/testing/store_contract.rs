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

use crate::http::ApiRequest;
use crate::idempotency::{IdempotencyKey, StoredResponse};
use crate::money::Currency;
use crate::placement::{Fence, TenantHead, TenantRole};
use crate::ports::{
    BalanceUpdate, Commit, CommitError, CreateView, EntryRef, EntrySource, LedgerWrite, ReadStamps,
    Received, TransactionStore,
};
use crate::ports::{StoreError, SystemClock, UuidV7};
use crate::replication::{Effect, Entry, SealedEntry};
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

fn cell_id() -> CellId {
    CellId::parse("cell-test").unwrap_or_else(|e| panic!("cell: {e}"))
}

fn id(n: u64) -> TransactionId {
    let mut bytes = [0u8; 16];
    bytes[8..].copy_from_slice(&n.to_be_bytes());
    TransactionId::from_uuid(uuid::Builder::from_random_bytes(bytes).into_uuid())
}

fn view_of(rt: &impl Executor, store: &dyn TransactionStore, t: &str, k: &str) -> CreateView {
    rt.block_on(store.create_view(&tenant(t), &key(k), &account(), eur()))
        .unwrap_or_else(|e| panic!("create_view failed: {e}"))
}

fn head_of(rt: &impl Executor, store: &dyn TransactionStore, t: &str) -> Option<TenantHead> {
    rt.block_on(store.head(&tenant(t)))
        .unwrap_or_else(|e| panic!("head failed: {e}"))
}

/// What a test commit does.
#[derive(Clone, Copy)]
enum Book {
    /// Accepted: the balance becomes this many cents, guarded by this version.
    Accepted { cents: i64, expected_version: u64 },
    /// Refused: nothing but the key, the entry and the head.
    Refused,
}

/// A commit for (t, key k) after `before` (its head, or none), made by the holder of `token`.
fn commit_of(
    t: &str,
    k: &str,
    token: TransactionId,
    before: Option<&TenantHead>,
    book: Book,
) -> Commit {
    let base = before
        .cloned()
        .unwrap_or_else(|| TenantHead::first_primary(tenant(t), cell_id()));
    let fence = before.map_or(Fence::Absent, TenantHead::fence);
    let (response, effect, ledger) = match book {
        Book::Accepted {
            cents,
            expected_version,
        } => {
            let available = Decimal::new(cents, 2);
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
                cell_id: cell_id(),
            };
            let response = StoredResponse {
                status: 201,
                headers: vec![("content-type".into(), "application/json".into())],
                body: transaction.to_json().into_bytes(),
            };
            let effect = Effect::Accepted {
                balance_version: expected_version + 1,
                event: format!("{{\"n\":\"{k}\"}}"),
            };
            let ledger = LedgerWrite {
                balance: BalanceUpdate {
                    tenant_id: tenant(t),
                    account_id: account(),
                    currency: eur(),
                    available,
                    expected_version,
                },
                transaction,
            };
            (response, effect, Some(ledger))
        }
        Book::Refused => (
            StoredResponse {
                status: 409,
                headers: vec![],
                body: b"{}".to_vec(),
            },
            Effect::Refused,
            None,
        ),
    };
    let entry = SealedEntry::seal(Entry {
        tenant: tenant(t),
        seq: base.position.seq + 1,
        epoch: base.epoch,
        origin: cell_id(),
        prev: base.position.digest,
        time: Timestamp::from_unix_millis(1_000),
        key: key(k),
        fingerprint: format!("fp-{k}"),
        response,
        effect,
        // Stores keep the trace as part of the entry document: the contract reads it back.
        trace: Some(crate::observability::trace::TraceContext::start()),
    });
    Commit {
        fence,
        head: TenantHead {
            position: entry.position(),
            ..base
        },
        entry,
        source: EntrySource::Committed,
        ledger,
        stamps: ReadStamps::default(),
    }
}

/// Commits a credit under `k` that sets the balance to `cents` at the next version.
fn book(rt: &impl Executor, store: &dyn TransactionStore, t: &str, k: &str, n: u64, cents: i64) {
    let before = head_of(rt, store, t);
    let version = rt
        .block_on(store.balance(&tenant(t), &account(), eur()))
        .unwrap_or_else(|e| panic!("{e}"))
        .map_or(0, |b| b.version);
    let commit = commit_of(
        t,
        k,
        id(n),
        before.as_ref(),
        Book::Accepted {
            cents,
            expected_version: version,
        },
    );
    rt.block_on(store.commit(commit))
        .unwrap_or_else(|e| panic!("commit {k}: {e}"));
}

/// Runs every check.
pub fn run_all(rt: &impl Executor, factory: Factory<'_>) {
    atomic_commit_writes_everything(rt, factory);
    failed_conditions_write_nothing(rt, factory);
    refusals_are_committed_outcomes(rt, factory);
    idempotency_records(rt, factory);
    balance_versions(rt, factory);
    tenant_isolation(rt, factory);
    outbox_pages(rt, factory);
    received_entries_wait_and_apply(rt, factory);
    unapplied_entries_can_be_discarded(rt, factory);
    heads_change_only_by_compare_and_set(rt, factory);
    stale_reads_are_refused(rt, factory);
    concurrent_duplicates_book_once(rt, factory);
    concurrent_commits_have_one_winner(rt, factory);
    concurrent_debits_never_overdraw(rt, factory);
}

/// A commit makes the head, the entry, the transaction, the balance and the completed key visible
/// together.
pub fn atomic_commit_writes_everything(rt: &impl Executor, factory: Factory<'_>) {
    let store = factory();
    let token = id(1);
    let before = view_of(rt, &*store, "coop-1", "k");
    assert_eq!(
        (before.head, before.record, before.balance),
        (None, None, None),
        "nothing before the first write"
    );
    let commit = commit_of(
        "coop-1",
        "k",
        token,
        None,
        Book::Accepted {
            cents: 100,
            expected_version: 0,
        },
    );
    let expected_head = commit.head.clone();
    let digest = commit.entry.digest();
    rt.block_on(store.commit(commit))
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
        matches!(record.map(|r| (r.fingerprint, r.response)), Some((fp, r)) if r.status == 201 && fp == "fp-k"),
        "the key is completed with the response"
    );
    assert_eq!(
        head_of(rt, &*store, "coop-1"),
        Some(expected_head),
        "the head, at the entry's position"
    );
    let entry = rt
        .block_on(store.entry(&tenant("coop-1"), 1))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        entry.map(|e| e.digest()),
        Some(digest),
        "the entry reads back"
    );
    let page = rt
        .block_on(store.pending_entries(None, 10))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(page.entries.len(), 1, "one entry pending relay");
}

/// A commit whose conditions fail (a moved head, a stale balance version, a duplicate id) writes
/// nothing. (A key that already has a record: [`idempotency_records`].)
pub fn failed_conditions_write_nothing(rt: &impl Executor, factory: Factory<'_>) {
    let store = factory();
    let token = id(2);
    let accepted = Book::Accepted {
        cents: 100,
        expected_version: 0,
    };
    let stale_head = TenantHead {
        position: crate::replication::Position {
            seq: 7,
            digest: crate::replication::Digest::ZERO,
        },
        ..TenantHead::first_primary(tenant("coop-1"), cell_id())
    };
    let moved =
        rt.block_on(store.commit(commit_of("coop-1", "k", token, Some(&stale_head), accepted)));
    assert_eq!(
        moved,
        Err(CommitError::HeadMoved),
        "a head that is not there"
    );
    let stale = rt.block_on(store.commit(commit_of(
        "coop-1",
        "k",
        token,
        None,
        Book::Accepted {
            cents: 100,
            expected_version: 7,
        },
    )));
    assert_eq!(
        stale,
        Err(CommitError::BalanceConflict),
        "a stale balance version is a conflict"
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
    assert_eq!(head_of(rt, &*store, "coop-1"), None, "no head was written");
    assert_eq!(
        rt.block_on(store.entry(&tenant("coop-1"), 1))
            .ok()
            .flatten(),
        None,
        "no entry was written"
    );
    assert!(
        rt.block_on(store.pending_entries(None, 10))
            .map(|p| p.entries.is_empty())
            .unwrap_or(false),
        "nothing is pending"
    );
    rt.block_on(store.commit(commit_of("coop-1", "k", token, None, accepted)))
        .unwrap_or_else(|e| panic!("{e}"));
    let head = head_of(rt, &*store, "coop-1");
    let duplicate = rt.block_on(store.commit(commit_of(
        "coop-1",
        "k2",
        token,
        head.as_ref(),
        Book::Accepted {
            cents: 200,
            expected_version: 1,
        },
    )));
    assert_eq!(
        duplicate,
        Err(CommitError::DuplicateTransaction),
        "the same transaction id twice"
    );
    let k2 = rt
        .block_on(store.idempotency_record(&tenant("coop-1"), &key("k2")))
        .ok()
        .flatten()
        .map(|r| r.response);
    assert_eq!(k2, None, "the refused commit did not write its key");
    assert_eq!(
        head_of(rt, &*store, "coop-1").map(|h| h.position.seq),
        Some(1),
        "the refused commit did not move the head"
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

/// A refused debit is committed like a booking: its entry, its completed key and the head, and no
/// ledger change.
pub fn refusals_are_committed_outcomes(rt: &impl Executor, factory: Factory<'_>) {
    let store = factory();
    rt.block_on(store.commit(commit_of("coop-1", "no", id(1), None, Book::Refused)))
        .unwrap_or_else(|e| panic!("{e}"));
    let record = rt
        .block_on(store.idempotency_record(&tenant("coop-1"), &key("no")))
        .ok()
        .flatten();
    assert!(
        matches!(record.map(|r| r.response), Some(r) if r.status == 409),
        "the refusal replays"
    );
    assert_eq!(
        rt.block_on(store.balance(&tenant("coop-1"), &account(), eur()))
            .ok()
            .flatten(),
        None,
        "no balance"
    );
    let entry = rt
        .block_on(store.entry(&tenant("coop-1"), 1))
        .ok()
        .flatten()
        .map(|e| e.entry().effect.clone());
    assert_eq!(entry, Some(Effect::Refused), "the refusal's entry");
    assert_eq!(
        head_of(rt, &*store, "coop-1").map(|h| h.position.seq),
        Some(1)
    );
}

/// A key has one first outcome: a second commit for it is refused, and the create view reads the
/// record back with the head and the balance.
pub fn idempotency_records(rt: &impl Executor, factory: Factory<'_>) {
    let store = factory();
    rt.block_on(store.commit(commit_of("coop-1", "k", id(1), None, Book::Refused)))
        .unwrap_or_else(|e| panic!("{e}"));
    let head = head_of(rt, &*store, "coop-1");
    let again = rt.block_on(store.commit(commit_of(
        "coop-1",
        "k",
        id(2),
        head.as_ref(),
        Book::Refused,
    )));
    assert_eq!(
        again,
        Err(CommitError::KeyConflict),
        "a key's first outcome is final"
    );
    let view = view_of(rt, &*store, "coop-1", "k");
    assert!(
        matches!(&view.record, Some(r) if r.fingerprint == "fp-k" && r.response.status == 409),
        "the view reads the completed record: {view:?}"
    );
    assert_eq!(view.head, head, "the view reads the head");
    assert_eq!(view.balance, None, "a refusal wrote no balance");
    book(rt, &*store, "coop-1", "credit", 3, 250);
    let view = view_of(rt, &*store, "coop-1", "credit");
    assert_eq!(
        view.balance.map(|b| (b.available, b.version)),
        Some((Decimal::new(250, 2), 1)),
        "the view reads the balance"
    );
    assert_eq!(view.head.map(|h| h.position.seq), Some(2));
    assert!(
        matches!(view.record.map(|r| r.response), Some(c) if c.status == 201),
        "and the credit's record"
    );
}

/// Versions advance by one per commit; balances of one account are listed; the head and the
/// entries follow.
pub fn balance_versions(rt: &impl Executor, factory: Factory<'_>) {
    let store = factory();
    for (n, cents) in [(1u64, 100i64), (2, 250), (3, 40)] {
        book(rt, &*store, "coop-1", &format!("k{n}"), n, cents);
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
    let entries = rt
        .block_on(store.entries_after(&tenant("coop-1"), 1, 10))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        entries.iter().map(SealedEntry::seq).collect::<Vec<_>>(),
        vec![2, 3],
        "entries after 1, in order"
    );
    assert_eq!(
        entries[1].entry().prev,
        entries[0].digest(),
        "each entry names its predecessor's digest"
    );
}

/// A tenant never reads another tenant's items, even with their ids.
pub fn tenant_isolation(rt: &impl Executor, factory: Factory<'_>) {
    let store = factory();
    book(rt, &*store, "coop-1", "k", 1, 100);
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
    assert_eq!(head_of(rt, &*store, "coop-2"), None, "head");
    assert_eq!(
        rt.block_on(store.entry(&tenant("coop-2"), 1))
            .ok()
            .flatten(),
        None,
        "entry"
    );
    assert_eq!(
        view_of(rt, &*store, "coop-2", "k").record,
        None,
        "keys are per tenant"
    );
}

/// Pending entries page in commit order and leave the outbox once marked relayed.
pub fn outbox_pages(rt: &impl Executor, factory: Factory<'_>) {
    let store = factory();
    for n in 1..=5u64 {
        book(
            rt,
            &*store,
            "coop-1",
            &format!("k{n}"),
            n,
            100 * i64::try_from(n).unwrap_or(0),
        );
    }
    let seqs = |entries: &[SealedEntry]| entries.iter().map(SealedEntry::seq).collect::<Vec<_>>();
    let first = rt
        .block_on(store.pending_entries(None, 2))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(seqs(&first.entries), vec![1, 2], "oldest first");
    let second = rt
        .block_on(store.pending_entries(first.next.as_deref(), 2))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(seqs(&second.entries), vec![3, 4], "the cursor continues");
    let done: Vec<EntryRef> = first
        .entries
        .iter()
        .map(|e| EntryRef {
            tenant: e.tenant().clone(),
            seq: e.seq(),
        })
        .collect();
    rt.block_on(store.mark_relayed(&done))
        .unwrap_or_else(|e| panic!("{e}"));
    let rest = rt
        .block_on(store.pending_entries(None, 10))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        seqs(&rest.entries),
        vec![3, 4, 5],
        "relayed entries are no longer pending"
    );
    assert_eq!(rest.next, None, "the last page has no cursor");
    assert!(
        rt.block_on(store.entry(&tenant("coop-1"), 1))
            .ok()
            .flatten()
            .is_some(),
        "a relayed entry is still readable"
    );
}

/// An entry received and never applied can be discarded — only that very entry, by digest — and its
/// position is then free for the cell's own commit (a promoted standby's leftovers:
/// [`crate::replication::leftovers`]).
pub fn unapplied_entries_can_be_discarded(rt: &impl Executor, factory: Factory<'_>) {
    let primary = factory();
    book(rt, &*primary, "coop-1", "k1", 1, 100);
    book(rt, &*primary, "coop-1", "k2", 2, 300);
    let entries = rt
        .block_on(primary.entries_after(&tenant("coop-1"), 0, 10))
        .unwrap_or_else(|e| panic!("{e}"));
    let (first, second) = (&entries[0], &entries[1]);
    let other = factory();
    rt.block_on(other.receive(second))
        .unwrap_or_else(|e| panic!("{e}"));
    let discard = |digest: crate::replication::Digest| {
        rt.block_on(other.discard_received(&tenant("coop-1"), 2, &digest))
            .unwrap_or_else(|e| panic!("discard: {e}"))
    };
    assert!(
        !discard(first.digest()),
        "another digest: nothing is discarded"
    );
    assert!(
        rt.block_on(other.entry(&tenant("coop-1"), 2))
            .unwrap_or_else(|e| panic!("{e}"))
            .is_some(),
        "the entry is still there"
    );
    assert!(discard(second.digest()), "that very entry is discarded");
    assert!(
        rt.block_on(other.entry(&tenant("coop-1"), 2))
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none(),
        "and gone"
    );
    assert!(
        !discard(second.digest()),
        "discarding it again finds nothing"
    );
    assert!(
        !rt.block_on(other.discard_received(&tenant("coop-1"), 9, &second.digest()))
            .unwrap_or_else(|e| panic!("{e}")),
        "nothing at that position: nothing discarded"
    );
    // Position 2 is free again: the cell's own commits take positions 1 and 2.
    book(rt, &*other, "coop-1", "k3", 3, 50);
    book(rt, &*other, "coop-1", "k4", 4, 70);
    assert_eq!(
        head_of(rt, &*other, "coop-1").map(|h| h.position.seq),
        Some(2),
        "the cell committed its own entry at the freed position"
    );
}

/// A standby stores what it receives (once per position), applies it with the same atomic commit,
/// and never relays it.
pub fn received_entries_wait_and_apply(rt: &impl Executor, factory: Factory<'_>) {
    let primary = factory();
    book(rt, &*primary, "coop-1", "k1", 1, 100);
    book(rt, &*primary, "coop-1", "k2", 2, 300);
    let entries = rt
        .block_on(primary.entries_after(&tenant("coop-1"), 0, 10))
        .unwrap_or_else(|e| panic!("{e}"));
    let standby = factory();
    let second = &entries[1];
    assert_eq!(
        rt.block_on(standby.receive(second))
            .unwrap_or_else(|e| panic!("{e}")),
        Received::Stored,
        "an early entry is stored"
    );
    assert_eq!(
        rt.block_on(standby.receive(second))
            .unwrap_or_else(|e| panic!("{e}")),
        Received::Existing(second.digest()),
        "receiving it again finds it"
    );
    assert!(
        rt.block_on(standby.pending_entries(None, 10))
            .map(|p| p.entries.is_empty())
            .unwrap_or(false),
        "received entries are not relayed"
    );
    assert_eq!(
        head_of(rt, &*standby, "coop-1"),
        None,
        "nothing applied yet"
    );
    let first = &entries[0];
    rt.block_on(standby.receive(first))
        .unwrap_or_else(|e| panic!("{e}"));
    for (before, entry) in [(None, first), (Some(first), second)] {
        let e = entry.entry();
        let tx = e
            .transaction()
            .unwrap_or_else(|err| panic!("{err}"))
            .unwrap_or_else(|| panic!("accepted"));
        let head_before = head_of(rt, &*standby, "coop-1");
        let commit = Commit {
            fence: head_before
                .as_ref()
                .map_or(Fence::Absent, TenantHead::fence),
            head: TenantHead {
                tenant: tenant("coop-1"),
                role: TenantRole::Standby,
                epoch: e.epoch,
                primary: e.origin.clone(),
                position: entry.position(),
                epoch_start: 0,
                lease_until: None,
            },
            entry: entry.clone(),
            source: EntrySource::Received,
            ledger: Some(LedgerWrite {
                balance: BalanceUpdate {
                    tenant_id: tenant("coop-1"),
                    account_id: account(),
                    currency: eur(),
                    available: tx.balance_after,
                    expected_version: u64::from(before.is_some()),
                },
                transaction: tx,
            }),
            stamps: ReadStamps::default(),
        };
        rt.block_on(standby.commit(commit.clone()))
            .unwrap_or_else(|err| panic!("apply {}: {err}", e.seq));
        let again = Commit {
            fence: commit.head.fence(),
            ..commit
        };
        assert_eq!(
            rt.block_on(standby.commit(again)),
            Err(CommitError::KeyConflict),
            "an applied key is not applied twice"
        );
    }
    let (p, s) = (
        head_of(rt, &*primary, "coop-1"),
        head_of(rt, &*standby, "coop-1"),
    );
    assert_eq!(
        p.map(|h| h.position),
        s.as_ref().map(|h| h.position),
        "same position on both"
    );
    assert_eq!(s.map(|h| h.role), Some(TenantRole::Standby));
    let balance = |store: &Arc<dyn TransactionStore>| {
        rt.block_on(store.balance(&tenant("coop-1"), &account(), eur()))
            .ok()
            .flatten()
    };
    assert_eq!(
        balance(&primary),
        balance(&standby),
        "same balance and version"
    );
    let record = rt
        .block_on(standby.idempotency_record(&tenant("coop-1"), &key("k2")))
        .ok()
        .flatten();
    assert!(
        matches!(record.map(|r| r.response), Some(r) if r.status == 201),
        "the key replays on the standby"
    );
}

/// A head is created once, replaced only from the head read, and a commit fenced by the old head
/// fails after it changed (a cell demoted while a request was in flight cannot book).
pub fn heads_change_only_by_compare_and_set(rt: &impl Executor, factory: Factory<'_>) {
    let store = factory();
    let first = TenantHead::first_primary(tenant("coop-1"), cell_id());
    rt.block_on(store.put_head(Fence::Absent, first.clone()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        rt.block_on(store.put_head(Fence::Absent, first.clone())),
        Err(CommitError::HeadMoved),
        "a head is created once"
    );
    let inflight = commit_of("coop-1", "inflight", id(1), Some(&first), Book::Refused);
    // The freeze's lease is kept to the millisecond (the cell thaws the head when it lapses).
    let frozen = TenantHead {
        role: TenantRole::Frozen,
        lease_until: Some(Timestamp::from_unix_millis(1_795_000_000_123)),
        ..first.clone()
    };
    rt.block_on(store.put_head(first.fence(), frozen.clone()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        rt.block_on(store.put_head(first.fence(), first.clone())),
        Err(CommitError::HeadMoved),
        "a stale fence cannot change the head"
    );
    assert_eq!(
        rt.block_on(store.commit(inflight)),
        Err(CommitError::HeadMoved),
        "a commit fenced by the old head fails once the cell is frozen"
    );
    assert_eq!(
        head_of(rt, &*store, "coop-1"),
        Some(frozen),
        "the frozen head"
    );
    assert_eq!(
        rt.block_on(store.entry(&tenant("coop-1"), 1))
            .ok()
            .flatten(),
        None,
        "nothing was booked"
    );
}

/// A commit decided on a view that another commit has since changed is refused, even with the
/// versions that view read: what a create read is never trusted at its commit.
pub fn stale_reads_are_refused(rt: &impl Executor, factory: Factory<'_>) {
    let store = factory();
    book(rt, &*store, "coop-1", "first", 1, 100);
    let read = view_of(rt, &*store, "coop-1", "late");
    book(rt, &*store, "coop-1", "second", 2, 300);
    let version = read.balance.as_ref().map_or(0, |b| b.version);
    let late = Commit {
        stamps: read.stamps.clone(),
        ..commit_of(
            "coop-1",
            "late",
            id(3),
            read.head.as_ref(),
            Book::Accepted {
                cents: 200,
                expected_version: version,
            },
        )
    };
    assert_eq!(
        rt.block_on(store.commit(late)),
        Err(CommitError::HeadMoved),
        "the head moved since the view"
    );
    let now = view_of(rt, &*store, "coop-1", "late");
    assert_eq!(
        now.balance.map(|b| (b.available, b.version)),
        Some((Decimal::new(300, 2), 2)),
        "nothing of the late commit was written"
    );
    assert_eq!(now.record, None, "its key stays free");
}

/// Fifty identical requests (one idempotency key) at once, through the cell: one transaction is
/// booked, and every request answers with it.
pub fn concurrent_duplicates_book_once(rt: &impl Executor, factory: Factory<'_>) {
    let store = factory();
    let cell = cell_on(store.clone());
    let answers: Vec<(u16, Option<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|_| {
                let cell = &cell;
                s.spawn(move || {
                    let response = rt.block_on(cell.handle(create("credit", "1.00", "same")));
                    let id = serde_json::from_slice::<serde_json::Value>(&response.body)
                        .ok()
                        .and_then(|b| b["transaction_id"].as_str().map(str::to_owned));
                    (response.status, id)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    assert_eq!(answers.len(), 50);
    let first = answers[0].1.clone();
    assert!(first.is_some(), "a transaction id: {answers:?}");
    assert!(
        answers
            .iter()
            .all(|(status, id)| *status == 201 && *id == first),
        "every duplicate answers with the one booking: {answers:?}"
    );
    let balance = rt
        .block_on(store.balance(&tenant("coop-1"), &account(), eur()))
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|b| (b.available, b.version));
    assert_eq!(balance, Some((Decimal::new(100, 2), 1)), "booked once");
    assert_eq!(
        head_of(rt, &*store, "coop-1").map(|h| h.position.seq),
        Some(1),
        "one entry"
    );
}

/// Twenty commits on the same head at once (different keys, different accounts' worth of state):
/// exactly one lands; the others see the head moved.
pub fn concurrent_commits_have_one_winner(rt: &impl Executor, factory: Factory<'_>) {
    let store = factory();
    book(rt, &*store, "coop-1", "first", 100, 100);
    let head = head_of(rt, &*store, "coop-1");
    let outcomes: Vec<Result<(), CommitError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20u64)
            .map(|n| {
                let store = store.clone();
                let head = head.clone();
                s.spawn(move || {
                    rt.block_on(store.commit(commit_of(
                        "coop-1",
                        &format!("race-{n}"),
                        id(n),
                        head.as_ref(),
                        Book::Refused,
                    )))
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let won = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(won, 1, "one commit per head position: {outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Ok(()) | Err(CommitError::HeadMoved))),
        "the losers saw the head move: {outcomes:?}"
    );
    assert_eq!(
        head_of(rt, &*store, "coop-1").map(|h| h.position.seq),
        Some(2)
    );
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

/// A create of `amount` EUR on coop-1's ACC-1 under `key`.
pub(crate) fn create(kind: &str, amount: &str, key: &str) -> ApiRequest {
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
    let head = rt
        .block_on(store.head(&tenant("coop-1")))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        head.map(|h| h.position.seq),
        Some(51),
        "one entry per outcome: the credit, 20 debits, 30 refusals"
    );
    let entries = rt
        .block_on(store.entries_after(&tenant("coop-1"), 0, 100))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut prev = crate::replication::Digest::ZERO;
    for entry in &entries {
        assert_eq!(
            entry.entry().prev,
            prev,
            "the chain is unbroken at {}",
            entry.seq()
        );
        prev = entry.digest();
    }
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
    let viewed = rt.block_on(store.create_view(&tenant("coop-1"), &key("k"), &account(), eur()));
    unavailable("create_view", viewed.map(|_| ()));
    let committed = rt.block_on(store.commit(commit_of(
        "coop-1",
        "k",
        id(1),
        None,
        Book::Accepted {
            cents: 100,
            expected_version: 0,
        },
    )));
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
        "pending_entries",
        rt.block_on(store.pending_entries(None, 10)).map(|_| ()),
    );
    unavailable(
        "head",
        rt.block_on(store.head(&tenant("coop-1"))).map(|_| ()),
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

/// The contract of a dead-letter place: letters keep the full entry and the reason, are listed, and
/// leave when removed. Run against every [`DeadLetters`](crate::replication::relay::DeadLetters)
/// (memory, SQS, Cosmos DB).
pub fn dead_letters_keep_full_entries(
    rt: &impl Executor,
    letters: &dyn crate::replication::relay::DeadLetters,
) {
    use crate::replication::relay::DeadLetter;
    let first = crate::testing::sample_entry();
    let mut next = first.entry().clone();
    next.seq = 2;
    next.prev = first.digest();
    let second = SealedEntry::seal(next);
    for (entry, reason) in [
        (&first, "peer:cell-b: diverged: \"quoted\" detail"),
        (&second, "gave up after 5 attempts"),
    ] {
        let letter = DeadLetter {
            destination: "peer:cell-b".into(),
            entry: entry.clone(),
            reason: reason.into(),
            attempts: 5,
            time: Timestamp::from_unix_millis(1_767_225_600_000),
        };
        rt.block_on(letters.put(&letter))
            .unwrap_or_else(|e| panic!("put: {e}"));
    }
    let listed = rt
        .block_on(letters.list(10))
        .unwrap_or_else(|e| panic!("list: {e}"));
    assert_eq!(listed.len(), 2, "both letters are listed");
    let mut digests: Vec<_> = listed.iter().map(|(_, l)| l.entry.digest()).collect();
    digests.sort();
    let mut expected = vec![first.digest(), second.digest()];
    expected.sort();
    assert_eq!(digests, expected, "each letter holds its full entry");
    assert!(
        listed
            .iter()
            .any(|(_, l)| l.reason.contains("\"quoted\"") && l.attempts == 5),
        "the reason and attempts are kept"
    );
    let (id, _) = &listed[0];
    rt.block_on(letters.remove(id))
        .unwrap_or_else(|e| panic!("remove: {e}"));
    let rest = rt
        .block_on(letters.list(10))
        .unwrap_or_else(|e| panic!("list: {e}"));
    assert_eq!(rest.len(), 1, "a removed letter is gone");
}
