//! In-memory implementations of every port: the embedded default for local runs, tests and the
//! conformance suite. Correct under concurrent use: each store operation runs under one lock, so
//! every operation is atomic and linearisable.

use crate::idempotency::{IdempotencyKey, IdempotencyRecord};
use crate::money::Currency;
use crate::placement::{Fence, TenantHead};
use crate::ports::{
    BalanceSnapshot, Clock, Commit, CommitError, CreateView, EntryPage, EntryRef, EntrySource,
    IdGenerator, ReadStamps, Received, Sleep, StoreError, TransactionStore,
};
use crate::replication::relay::{DeadLetter, DeadLetters};
use crate::replication::{Effect, SealedEntry};
use crate::tenancy::TenantId;
use crate::time::Timestamp;
use crate::transaction::{AccountId, Transaction, TransactionId};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// One tenant's items. Looked up by reference (`HashMap::get(&TenantId)`), so no key is cloned on a
/// read and a create costs the same whatever the store holds.
#[derive(Default)]
struct TenantState {
    head: Option<TenantHead>,
    transactions: HashMap<TransactionId, Transaction>,
    balances: HashMap<AccountId, BTreeMap<&'static str, BalanceSnapshot>>,
    keys: HashMap<IdempotencyKey, IdempotencyRecord>,
    /// The replication log: committed here, or received (applied or waiting). `bool`: pending relay.
    entries: BTreeMap<u64, (SealedEntry, bool)>,
}

#[derive(Default)]
struct State {
    tenants: HashMap<TenantId, TenantState>,
    /// Entries committed here, in commit order (the relay's order).
    outbox: Vec<EntryRef>,
}

/// A [`TransactionStore`] in process memory.
///
/// ```
/// use paracell_domain::memory::MemoryStore;
/// let store = MemoryStore::new();
/// assert_eq!(store.snapshot()["transactions"].as_array().unwrap().len(), 0);
/// ```
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No critical section below can panic half-way, so a poisoned lock still guards consistent data.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The whole state as JSON with a stable order: heads, transactions, balances, idempotency
    /// records (state and fingerprint), replication entries and outbox events. The conformance
    /// suite compares cells with it. Trace members are left out: observability metadata, not state.
    pub fn snapshot(&self) -> serde_json::Value {
        let state = self.lock();
        let mut tenants: Vec<(&TenantId, &TenantState)> = state.tenants.iter().collect();
        tenants.sort_by_key(|(t, _)| *t);
        let mut heads = Vec::new();
        let mut transactions = Vec::new();
        let mut balances = Vec::new();
        let mut keys = Vec::new();
        let mut entries = Vec::new();
        for (tenant, t) in &tenants {
            if let Some(h) = &t.head {
                heads.push(serde_json::json!({
                    "tenant_id": tenant.as_str(),
                    "role": h.role.as_str(),
                    "epoch": h.epoch,
                    "primary": h.primary.as_str(),
                    "seq": h.position.seq,
                    "digest": h.position.digest.to_string(),
                    "epoch_start": h.epoch_start,
                }));
            }
            let mut txs: Vec<&Transaction> = t.transactions.values().collect();
            txs.sort_by_key(|tx| tx.transaction_id);
            transactions.extend(txs.into_iter().map(|tx| {
                serde_json::from_str::<serde_json::Value>(&tx.to_json()).unwrap_or_default()
            }));
            let mut accounts: Vec<(&AccountId, &BTreeMap<&'static str, BalanceSnapshot>)> =
                t.balances.iter().collect();
            accounts.sort_by_key(|(a, _)| *a);
            for (account, per_currency) in accounts {
                for b in per_currency.values() {
                    balances.push(serde_json::json!({
                        "tenant_id": tenant.as_str(),
                        "account_id": account.as_str(),
                        "currency": b.currency.code(),
                        "available": crate::money::render(b.available, b.currency),
                        "version": b.version,
                    }));
                }
            }
            let mut records: Vec<&IdempotencyRecord> = t.keys.values().collect();
            records.sort_by(|a, b| a.key.cmp(&b.key));
            keys.extend(records.into_iter().map(|r| {
                let outcome = serde_json::json!({
                    "status": r.response.status,
                    "headers": r.response.headers,
                    "body": String::from_utf8_lossy(&r.response.body),
                });
                serde_json::json!({
                    "tenant_id": r.tenant_id.as_str(),
                    "key": r.key.as_str(),
                    "fingerprint": r.fingerprint,
                    "outcome": outcome,
                })
            }));
            entries.extend(t.entries.values().map(|(e, pending)| {
                serde_json::json!({
                    "tenant_id": tenant.as_str(),
                    "seq": e.seq(),
                    "digest": e.digest().to_string(),
                    "pending": pending,
                    "entry": untraced(serde_json::from_str::<serde_json::Value>(e.document()).unwrap_or_default()),
                })
            }));
        }
        let outbox: Vec<_> = state
            .outbox
            .iter()
            .filter_map(|r| {
                let (entry, pending) = state.tenants.get(&r.tenant)?.entries.get(&r.seq)?;
                match &entry.entry().effect {
                    Effect::Accepted { event, .. } => Some(serde_json::json!({
                        "published": !pending,
                        "event": untraced(serde_json::from_str::<serde_json::Value>(event).unwrap_or_default()),
                    })),
                    Effect::Refused => None,
                }
            })
            .collect();
        serde_json::json!({
            "heads": heads,
            "transactions": transactions,
            "balances": balances,
            "idempotency": keys,
            "entries": entries,
            "outbox": outbox,
        })
    }
}

fn fence_holds(head: Option<&TenantHead>, fence: Fence) -> bool {
    match (fence, head) {
        (Fence::Absent, None) => true,
        (Fence::Head { epoch, seq, role }, Some(h)) => {
            h.epoch == epoch && h.position.seq == seq && h.role == role
        }
        _ => false,
    }
}

#[async_trait::async_trait]
impl TransactionStore for MemoryStore {
    async fn head(&self, tenant: &TenantId) -> Result<Option<TenantHead>, StoreError> {
        Ok(self.lock().tenants.get(tenant).and_then(|t| t.head.clone()))
    }

    async fn create_view(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        account: &AccountId,
        currency: Currency,
    ) -> Result<CreateView, StoreError> {
        let state = self.lock();
        let Some(t) = state.tenants.get(tenant) else {
            return Ok(CreateView::default());
        };
        Ok(CreateView {
            head: t.head.clone(),
            record: t.keys.get(key).cloned(),
            balance: t
                .balances
                .get(account)
                .and_then(|m| m.get(currency.code()))
                .cloned(),
            stamps: ReadStamps::default(),
        })
    }

    async fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        let mut state = self.lock();
        let tenant_id = commit.head.tenant.clone();
        let t = state.tenants.entry(tenant_id.clone()).or_default();
        let entry = commit.entry.entry();
        // Check every condition first, then write: all or nothing.
        if !fence_holds(t.head.as_ref(), commit.fence) {
            return Err(CommitError::HeadMoved);
        }
        if commit.source == EntrySource::Committed && t.entries.contains_key(&entry.seq) {
            return Err(CommitError::HeadMoved);
        }
        if t.keys.contains_key(&entry.key) {
            return Err(CommitError::KeyConflict);
        }
        if let Some(write) = &commit.ledger {
            if t.transactions
                .contains_key(&write.transaction.transaction_id)
            {
                return Err(CommitError::DuplicateTransaction);
            }
            let b = &write.balance;
            let current = t
                .balances
                .get(&b.account_id)
                .and_then(|m| m.get(b.currency.code()))
                .map_or(0, |s| s.version);
            if current != b.expected_version
                || (b.available.is_sign_negative() && !b.available.is_zero())
            {
                return Err(CommitError::BalanceConflict);
            }
        }
        if let Some(write) = commit.ledger {
            let b = write.balance;
            t.balances.entry(b.account_id).or_default().insert(
                b.currency.code(),
                BalanceSnapshot {
                    currency: b.currency,
                    available: b.available,
                    version: b.expected_version + 1,
                },
            );
            t.transactions
                .insert(write.transaction.transaction_id, write.transaction);
        }
        t.keys.insert(
            entry.key.clone(),
            IdempotencyRecord {
                tenant_id: tenant_id.clone(),
                key: entry.key.clone(),
                fingerprint: entry.fingerprint.clone(),
                response: entry.response.clone(),
            },
        );
        t.head = Some(commit.head);
        let seq = entry.seq;
        if commit.source == EntrySource::Committed {
            t.entries.insert(seq, (commit.entry, true));
            state.outbox.push(EntryRef {
                tenant: tenant_id,
                seq,
            });
        }
        Ok(())
    }

    async fn put_head(&self, fence: Fence, head: TenantHead) -> Result<(), CommitError> {
        let mut state = self.lock();
        let t = state.tenants.entry(head.tenant.clone()).or_default();
        if !fence_holds(t.head.as_ref(), fence) {
            return Err(CommitError::HeadMoved);
        }
        t.head = Some(head);
        Ok(())
    }

    async fn receive(&self, entry: &SealedEntry) -> Result<Received, StoreError> {
        let mut state = self.lock();
        let t = state.tenants.entry(entry.tenant().clone()).or_default();
        if let Some((existing, _)) = t.entries.get(&entry.seq()) {
            return Ok(Received::Existing(existing.digest()));
        }
        t.entries.insert(entry.seq(), (entry.clone(), false));
        Ok(Received::Stored)
    }

    async fn entry(&self, tenant: &TenantId, seq: u64) -> Result<Option<SealedEntry>, StoreError> {
        Ok(self
            .lock()
            .tenants
            .get(tenant)
            .and_then(|t| t.entries.get(&seq))
            .map(|(e, _)| e.clone()))
    }

    async fn discard_received(
        &self,
        tenant: &TenantId,
        seq: u64,
        digest: &crate::replication::Digest,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let Some(t) = state.tenants.get_mut(tenant) else {
            return Ok(false);
        };
        if t.entries
            .get(&seq)
            .is_some_and(|(e, _)| e.digest() == *digest)
        {
            t.entries.remove(&seq);
            return Ok(true);
        }
        Ok(false)
    }

    async fn entries_after(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<SealedEntry>, StoreError> {
        Ok(self
            .lock()
            .tenants
            .get(tenant)
            .map(|t| {
                t.entries
                    .range(after.saturating_add(1)..)
                    .take(limit)
                    .map(|(_, (e, _))| e.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn transaction(
        &self,
        tenant: &TenantId,
        id: TransactionId,
    ) -> Result<Option<Transaction>, StoreError> {
        Ok(self
            .lock()
            .tenants
            .get(tenant)
            .and_then(|t| t.transactions.get(&id))
            .cloned())
    }

    async fn balance(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        currency: Currency,
    ) -> Result<Option<BalanceSnapshot>, StoreError> {
        Ok(self
            .lock()
            .tenants
            .get(tenant)
            .and_then(|t| t.balances.get(account))
            .and_then(|m| m.get(currency.code()))
            .cloned())
    }

    async fn balances(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Vec<BalanceSnapshot>, StoreError> {
        Ok(self
            .lock()
            .tenants
            .get(tenant)
            .and_then(|t| t.balances.get(account))
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn idempotency_record(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(self
            .lock()
            .tenants
            .get(tenant)
            .and_then(|t| t.keys.get(key))
            .cloned())
    }

    async fn pending_entries(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<EntryPage, StoreError> {
        let start = match after {
            None => 0,
            Some(cursor) => cursor
                .parse::<usize>()
                .map_err(|_| StoreError::Failed(format!("invalid outbox cursor {cursor:?}")))?,
        };
        let state = self.lock();
        let mut entries = Vec::new();
        let mut next = None;
        for (position, r) in state.outbox.iter().enumerate().skip(start) {
            let Some((entry, true)) = state
                .tenants
                .get(&r.tenant)
                .and_then(|t| t.entries.get(&r.seq))
            else {
                continue;
            };
            if entries.len() == limit {
                next = Some(position.to_string());
                break;
            }
            entries.push(entry.clone());
        }
        Ok(EntryPage { entries, next })
    }

    async fn mark_relayed(&self, entries: &[EntryRef]) -> Result<(), StoreError> {
        let mut state = self.lock();
        for r in entries {
            if let Some((_, pending)) = state
                .tenants
                .get_mut(&r.tenant)
                .and_then(|t| t.entries.get_mut(&r.seq))
            {
                *pending = false;
            }
        }
        Ok(())
    }
}

/// Dead letters in process memory, in the order they were put.
#[derive(Default)]
pub struct MemoryDeadLetters {
    letters: Mutex<Vec<(u64, DeadLetter)>>,
    next: AtomicU64,
}

impl MemoryDeadLetters {
    /// No letters.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(u64, DeadLetter)>> {
        self.letters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait::async_trait]
impl DeadLetters for MemoryDeadLetters {
    async fn put(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().push((id, letter.clone()));
        Ok(())
    }

    async fn list(&self, limit: usize) -> Result<Vec<(String, DeadLetter)>, StoreError> {
        Ok(self
            .lock()
            .iter()
            .take(limit)
            .map(|(id, l)| (id.to_string(), l.clone()))
            .collect())
    }

    async fn remove(&self, id: &str) -> Result<(), StoreError> {
        self.lock().retain(|(n, _)| n.to_string() != id);
        Ok(())
    }
}

/// A [`Sleep`] that returns at once (tests and simulations: the retries happen, the waiting does not).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSleep;

#[async_trait::async_trait]
impl Sleep for NoSleep {
    async fn sleep(&self, _duration: std::time::Duration) {}
}

/// A deterministic clock: starts at a fixed instant and advances a fixed step on every reading.
///
/// ```
/// use paracell_domain::{memory::SteppingClock, ports::Clock, Timestamp};
/// let clock = SteppingClock::new(Timestamp::from_unix_millis(1_000), 5);
/// assert_eq!(clock.now().unix_millis(), 1_000);
/// assert_eq!(clock.now().unix_millis(), 1_005);
/// ```
#[derive(Debug)]
pub struct SteppingClock {
    next: AtomicI64,
    step: i64,
}

impl SteppingClock {
    /// The conformance suite's epoch: 2026-01-01T00:00:00.000Z.
    pub const CONFORMANCE_EPOCH: Timestamp = Timestamp::from_unix_millis(1_767_225_600_000);

    /// A clock starting at `start`, advancing `step_millis` per reading.
    pub fn new(start: Timestamp, step_millis: i64) -> Self {
        Self {
            next: AtomicI64::new(start.unix_millis()),
            step: step_millis,
        }
    }
}

impl Clock for SteppingClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_millis(self.next.fetch_add(self.step, Ordering::Relaxed))
    }
}

/// A clock that stands still until it is moved (leases and waits in tests and drills, on virtual time).
///
/// ```
/// use paracell_domain::{memory::ManualClock, ports::Clock, Timestamp};
/// let clock = ManualClock::new(Timestamp::from_unix_millis(1_000));
/// clock.advance(std::time::Duration::from_secs(2));
/// assert_eq!(clock.now().unix_millis(), 3_000);
/// assert_eq!(clock.now().unix_millis(), 3_000);
/// ```
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: Timestamp) -> Self {
        Self(AtomicI64::new(start.unix_millis()))
    }

    /// Moves it forward.
    pub fn advance(&self, by: std::time::Duration) {
        self.0.fetch_add(
            i64::try_from(by.as_millis()).unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
    }
}

impl Default for ManualClock {
    /// Starts at 2027-01-15T08:00:00.000Z.
    fn default() -> Self {
        Self::new(Timestamp::from_unix_millis(1_800_000_000_000))
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_millis(self.0.load(Ordering::Relaxed))
    }
}

/// The same clock as a monotonic one (its milliseconds as a duration), so one manual clock drives
/// leases and timestamps alike.
impl crate::ports::MonotonicClock for ManualClock {
    fn now(&self) -> std::time::Duration {
        let millis = u64::try_from(self.0.load(Ordering::Relaxed)).unwrap_or(0);
        std::time::Duration::from_millis(millis)
    }
}

/// Deterministic UUIDv7-shaped ids: a fixed millisecond prefix and a counter.
///
/// ```
/// use paracell_domain::{memory::SequentialIds, ports::IdGenerator};
/// let ids = SequentialIds::new(0x0190_0000_0000);
/// assert_eq!(ids.next_id().to_string(), "01900000-0000-7000-8000-000000000001");
/// assert_eq!(ids.next_id().get_version_num(), 7);
/// ```
#[derive(Debug)]
pub struct SequentialIds {
    millis: u64,
    counter: AtomicU64,
}

impl SequentialIds {
    /// Ids whose timestamp part is `unix_millis` (48 bits used).
    pub fn new(unix_millis: u64) -> Self {
        Self {
            millis: unix_millis,
            counter: AtomicU64::new(0),
        }
    }
}

/// A document without its trace members (`traceparent`, `tracestate`): the snapshot compares state,
/// and a trace is observability metadata that differs on every run.
fn untraced(mut document: serde_json::Value) -> serde_json::Value {
    if let Some(members) = document.as_object_mut() {
        members.remove("traceparent");
        members.remove("tracestate");
    }
    document
}

impl IdGenerator for SequentialIds {
    fn next_id(&self) -> uuid::Uuid {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let mut random = [0u8; 10];
        random[2..].copy_from_slice(&n.to_be_bytes());
        uuid::Builder::from_unix_timestamp_millis(self.millis, &random).into_uuid()
    }
}

/// A cell on fresh in-memory ports that make every response reproducible: a [`SteppingClock`] from
/// [`SteppingClock::CONFORMANCE_EPOCH`] (1 ms per reading) and [`SequentialIds`]. Returns the store
/// too, so its state can be compared ([`MemoryStore::snapshot`]). For tests and the conformance suite.
///
/// ```
/// use paracell_domain::{memory, CellConfig, TenantScope};
/// let (cell, store) = memory::deterministic(CellConfig::new("cell-a", TenantScope::All).unwrap());
/// # let _ = (cell, store);
/// ```
pub fn deterministic(config: crate::CellConfig) -> (crate::Cell, std::sync::Arc<MemoryStore>) {
    deterministic_with_ids(config, 0x0190_0000_0000)
}

/// [`deterministic`] with ids whose timestamp part is `id_millis`: two cells that must never mint
/// the same id (a primary and its standby) get different ones.
pub fn deterministic_with_ids(
    config: crate::CellConfig,
    id_millis: u64,
) -> (crate::Cell, std::sync::Arc<MemoryStore>) {
    let store = std::sync::Arc::new(MemoryStore::new());
    let ports = crate::CellPorts {
        store: store.clone(),
        clock: std::sync::Arc::new(SteppingClock::new(SteppingClock::CONFORMANCE_EPOCH, 1)),
        ids: std::sync::Arc::new(SequentialIds::new(id_millis)),
    };
    (crate::Cell::new(config, ports), store)
}

#[cfg(test)]
mod contract {
    #[test]
    fn the_memory_store_meets_the_store_contract() {
        crate::testing::store_contract::run_all(
            &crate::testing::store_contract::ThreadExecutor,
            &|| std::sync::Arc::new(super::MemoryStore::new()),
        );
    }

    #[test]
    fn memory_dead_letters_meet_their_contract() {
        crate::testing::store_contract::dead_letters_keep_full_entries(
            &crate::testing::store_contract::ThreadExecutor,
            &super::MemoryDeadLetters::new(),
        );
    }
}
