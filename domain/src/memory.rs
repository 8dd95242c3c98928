//! In-memory implementations of every port: the embedded default for local runs, tests and the
//! conformance suite. Correct under concurrent use: each store operation runs under one lock, so
//! every operation is atomic and linearisable.

use crate::events::OutboxEvent;
use crate::idempotency::{IdempotencyKey, IdempotencyRecord, KeyState, StoredResponse};
use crate::money::Currency;
use crate::ports::{
    BalanceSnapshot, ClaimOutcome, Clock, Commit, CommitError, EventPage, IdGenerator, KeyClaim,
    StoreError, TransactionStore,
};
use crate::tenancy::TenantId;
use crate::time::Timestamp;
use crate::transaction::{AccountId, Transaction, TransactionId};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

type BalanceKey = (TenantId, AccountId, &'static str);

#[derive(Default)]
struct State {
    transactions: BTreeMap<(TenantId, TransactionId), Transaction>,
    balances: BTreeMap<BalanceKey, BalanceSnapshot>,
    keys: BTreeMap<(TenantId, IdempotencyKey), IdempotencyRecord>,
    /// Append-only; `bool` = published.
    outbox: Vec<(OutboxEvent, bool)>,
    outbox_index: HashMap<uuid::Uuid, usize>,
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

    /// The whole state as JSON with a stable order: transactions, balances, idempotency records
    /// (state and fingerprint) and outbox events. The conformance suite compares cells with it.
    pub fn snapshot(&self) -> serde_json::Value {
        let state = self.lock();
        let transactions: Vec<_> = state
            .transactions
            .values()
            .map(|t| serde_json::to_value(t).unwrap_or_default())
            .collect();
        let balances: Vec<_> = state
            .balances
            .iter()
            .map(|((tenant, account, _), b)| {
                serde_json::json!({
                    "tenant_id": tenant.as_str(),
                    "account_id": account.as_str(),
                    "currency": b.currency.code(),
                    "available": crate::money::render(b.available, b.currency),
                    "version": b.version,
                })
            })
            .collect();
        let keys: Vec<_> = state
            .keys
            .values()
            .map(|r| {
                let outcome = match &r.state {
                    KeyState::InProgress { .. } => serde_json::json!("in_progress"),
                    KeyState::Completed(resp) => serde_json::json!({
                        "status": resp.status,
                        "headers": resp.headers,
                        "body": String::from_utf8_lossy(&resp.body),
                    }),
                };
                serde_json::json!({
                    "tenant_id": r.tenant_id.as_str(),
                    "key": r.key.as_str(),
                    "fingerprint": r.fingerprint,
                    "outcome": outcome,
                })
            })
            .collect();
        let events: Vec<_> = state
            .outbox
            .iter()
            .map(|(e, published)| {
                serde_json::json!({
                    "published": published,
                    "event": serde_json::from_str::<serde_json::Value>(&e.document).unwrap_or_default(),
                })
            })
            .collect();
        serde_json::json!({
            "transactions": transactions,
            "balances": balances,
            "idempotency": keys,
            "outbox": events,
        })
    }
}

fn holds(state: &State, tenant: &TenantId, key: &IdempotencyKey, token: TransactionId) -> bool {
    matches!(
        state.keys.get(&(tenant.clone(), key.clone())),
        Some(IdempotencyRecord { state: KeyState::InProgress { token: t, .. }, .. }) if *t == token
    )
}

#[async_trait::async_trait]
impl TransactionStore for MemoryStore {
    async fn claim_key(&self, claim: KeyClaim) -> Result<ClaimOutcome, StoreError> {
        let mut state = self.lock();
        let id = (claim.tenant_id.clone(), claim.key.clone());
        if let Some(existing) = state.keys.get(&id) {
            let stale = matches!(existing.state, KeyState::InProgress { claimed_at, .. } if claimed_at < claim.stale_before);
            if !stale {
                return Ok(ClaimOutcome::Existing(existing.clone()));
            }
        }
        state.keys.insert(
            id,
            IdempotencyRecord {
                tenant_id: claim.tenant_id,
                key: claim.key,
                fingerprint: claim.fingerprint,
                state: KeyState::InProgress {
                    claimed_at: claim.now,
                    token: claim.token,
                },
            },
        );
        Ok(ClaimOutcome::Claimed)
    }

    async fn complete_key(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        token: TransactionId,
        response: StoredResponse,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        if holds(&state, tenant, key, token)
            && let Some(record) = state.keys.get_mut(&(tenant.clone(), key.clone()))
        {
            record.state = KeyState::Completed(response);
        }
        Ok(())
    }

    async fn release_key(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        token: TransactionId,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        if holds(&state, tenant, key, token) {
            state.keys.remove(&(tenant.clone(), key.clone()));
        }
        Ok(())
    }

    async fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        let mut state = self.lock();
        let tx = &commit.transaction;
        // Check every condition first, then write: all or nothing.
        if !holds(&state, &tx.tenant_id, &commit.key, commit.token) {
            return Err(CommitError::KeyNotHeld);
        }
        let tx_key = (tx.tenant_id.clone(), tx.transaction_id);
        if state.transactions.contains_key(&tx_key) {
            return Err(CommitError::DuplicateTransaction);
        }
        let b = &commit.balance;
        let balance_key = (b.tenant_id.clone(), b.account_id.clone(), b.currency.code());
        let current = state.balances.get(&balance_key).map_or(0, |s| s.version);
        if current != b.expected_version || b.available.is_sign_negative() {
            return Err(CommitError::BalanceConflict);
        }
        state.balances.insert(
            balance_key,
            BalanceSnapshot {
                currency: b.currency,
                available: b.available,
                version: current + 1,
            },
        );
        if let Some(record) = state
            .keys
            .get_mut(&(tx.tenant_id.clone(), commit.key.clone()))
        {
            record.state = KeyState::Completed(commit.response);
        }
        state.transactions.insert(tx_key, commit.transaction);
        let position = state.outbox.len();
        state.outbox_index.insert(commit.event.event_id, position);
        state.outbox.push((commit.event, false));
        Ok(())
    }

    async fn transaction(
        &self,
        tenant: &TenantId,
        id: TransactionId,
    ) -> Result<Option<Transaction>, StoreError> {
        Ok(self.lock().transactions.get(&(tenant.clone(), id)).cloned())
    }

    async fn balance(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        currency: Currency,
    ) -> Result<Option<BalanceSnapshot>, StoreError> {
        Ok(self
            .lock()
            .balances
            .get(&(tenant.clone(), account.clone(), currency.code()))
            .cloned())
    }

    async fn balances(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Vec<BalanceSnapshot>, StoreError> {
        let state = self.lock();
        Ok(state
            .balances
            .iter()
            .filter(|((t, a, _), _)| t == tenant && a == account)
            .map(|(_, b)| b.clone())
            .collect())
    }

    async fn idempotency_record(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(self
            .lock()
            .keys
            .get(&(tenant.clone(), key.clone()))
            .cloned())
    }

    async fn pending_events(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        let start = match after {
            None => 0,
            Some(cursor) => cursor
                .parse::<usize>()
                .map_err(|_| StoreError::Failed(format!("invalid outbox cursor {cursor:?}")))?,
        };
        let state = self.lock();
        let mut events = Vec::new();
        let mut next = None;
        for (position, (event, published)) in state.outbox.iter().enumerate().skip(start) {
            if *published {
                continue;
            }
            if events.len() == limit {
                next = Some(position.to_string());
                break;
            }
            events.push(event.clone());
        }
        Ok(EventPage { events, next })
    }

    async fn mark_published(&self, event_ids: &[uuid::Uuid]) -> Result<(), StoreError> {
        let mut state = self.lock();
        for id in event_ids {
            if let Some(&position) = state.outbox_index.get(id) {
                state.outbox[position].1 = true;
            }
        }
        Ok(())
    }
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
    let store = std::sync::Arc::new(MemoryStore::new());
    let ports = crate::CellPorts {
        store: store.clone(),
        clock: std::sync::Arc::new(SteppingClock::new(SteppingClock::CONFORMANCE_EPOCH, 1)),
        ids: std::sync::Arc::new(SequentialIds::new(0x0190_0000_0000)),
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
}
