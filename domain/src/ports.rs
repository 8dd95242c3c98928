//! Ports: the traits the domain owns and the outside world implements.
//!
//! [`TransactionStore`] is the one place state lives. [`Clock`] and [`IdGenerator`] are ports too, so
//! that tests and the conformance suite can make every response byte-identical.

use crate::events::OutboxEvent;
use crate::idempotency::{IdempotencyKey, IdempotencyRecord, StoredResponse};
use crate::money::Currency;
use crate::tenancy::TenantId;
use crate::time::Timestamp;
use crate::transaction::{AccountId, Transaction, TransactionId};
use rust_decimal::Decimal;

/// Why the store could not answer. Adapters map their SDK errors to this at the seam.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Throttled or temporarily unreachable after the store's own bounded retries: the 503
    /// `store-unavailable` problem with `Retry-After`. Nothing was written.
    #[error("store unavailable: {detail}")]
    Unavailable {
        /// Seconds the client should wait before retrying.
        retry_after_secs: u32,
        /// For logs only; never shown to clients.
        detail: String,
    },
    /// Anything else: the 500 `internal` problem. For logs only; never shown to clients.
    #[error("store failure: {0}")]
    Failed(String),
}

/// Why an atomic commit was refused. Nothing was written in any case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    /// The balance changed since it was read (optimistic concurrency): read again and retry.
    #[error("the balance changed since it was read")]
    BalanceConflict,
    /// The idempotency key is no longer held by this request (its lease expired and another took it).
    #[error("the idempotency key is no longer held by this request")]
    KeyNotHeld,
    /// A transaction with this id already exists.
    #[error("the transaction already exists")]
    DuplicateTransaction,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An account's available balance in one currency, with the version that guards updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceSnapshot {
    /// Currency.
    pub currency: Currency,
    /// Available amount (never negative).
    pub available: Decimal,
    /// Incremented on every change; 0 means "no balance yet".
    pub version: u64,
}

/// The balance row a commit writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceUpdate {
    /// Owner.
    pub tenant_id: TenantId,
    /// Account.
    pub account_id: AccountId,
    /// Currency.
    pub currency: Currency,
    /// The new available amount (the domain has already refused overdrafts).
    pub available: Decimal,
    /// The version read; the commit succeeds only if the stored version still equals it
    /// (0: the balance must not exist yet). The new version is `expected_version + 1`.
    pub expected_version: u64,
}

/// Everything one accepted transaction writes, atomically: all of it or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The new transaction (must not exist yet).
    pub transaction: Transaction,
    /// Its balance change.
    pub balance: BalanceUpdate,
    /// The idempotency key it completes (must be held with `token`).
    pub key: IdempotencyKey,
    /// The holder's token from the claim.
    pub token: TransactionId,
    /// The response to replay for this key.
    pub response: StoredResponse,
    /// The `TransactionAccepted` event for the outbox.
    pub event: OutboxEvent,
}

/// A request to hold an idempotency key while processing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyClaim {
    /// Owner.
    pub tenant_id: TenantId,
    /// The key.
    pub key: IdempotencyKey,
    /// The canonical command.
    pub fingerprint: String,
    /// Identifies this holder.
    pub token: TransactionId,
    /// Now.
    pub now: Timestamp,
    /// An in-progress claim older than this is abandoned and may be taken over.
    pub stale_before: Timestamp,
}

/// The answer to a [`KeyClaim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The key is now held by this request.
    Claimed,
    /// The key already has a live record (completed, or in progress and not stale).
    Existing(IdempotencyRecord),
}

/// One page of outbox events, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventPage {
    /// The events.
    pub events: Vec<OutboxEvent>,
    /// Opaque cursor for the next page, `None` at the end.
    pub next: Option<String>,
}

/// The one place a cell's state lives.
///
/// Implementations must be safe under concurrent use from many requests. Every method either fully
/// happens or does not happen at all.
#[async_trait::async_trait]
pub trait TransactionStore: Send + Sync {
    /// Holds (tenant, key) for this request unless a live record exists: creates an in-progress record,
    /// or takes over one whose claim is older than `stale_before`.
    async fn claim_key(&self, claim: KeyClaim) -> Result<ClaimOutcome, StoreError>;

    /// Records a finished outcome that wrote nothing else (a refused debit), so it replays.
    /// A no-op if the key is no longer held with `token`.
    async fn complete_key(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        token: TransactionId,
        response: StoredResponse,
    ) -> Result<(), StoreError>;

    /// Drops an in-progress claim held with `token` (the request failed and the client may retry).
    async fn release_key(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        token: TransactionId,
    ) -> Result<(), StoreError>;

    /// Atomically writes the transaction, the balance, the completed key and the outbox event.
    async fn commit(&self, commit: Commit) -> Result<(), CommitError>;

    /// A tenant's transaction; `None` also when the id exists under another tenant.
    async fn transaction(
        &self,
        tenant: &TenantId,
        id: TransactionId,
    ) -> Result<Option<Transaction>, StoreError>;

    /// One balance of an account.
    async fn balance(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        currency: Currency,
    ) -> Result<Option<BalanceSnapshot>, StoreError>;

    /// All balances of an account, in any order.
    async fn balances(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Vec<BalanceSnapshot>, StoreError>;

    /// The record of (tenant, key).
    async fn idempotency_record(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;

    /// Events not yet marked published, oldest first, at most `limit`, after the cursor.
    async fn pending_events(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<EventPage, StoreError>;

    /// Marks events as published (idempotent).
    async fn mark_published(&self, event_ids: &[uuid::Uuid]) -> Result<(), StoreError>;
}

/// The time source.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The real time.
///
/// ```
/// use paracell_domain::ports::{Clock, SystemClock};
/// assert!(SystemClock.now().unix_millis() > 1_700_000_000_000);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp::from_unix_millis(millis)
    }
}

/// The source of transaction and event ids.
pub trait IdGenerator: Send + Sync {
    /// A fresh, unique id.
    fn next_id(&self) -> uuid::Uuid;
}

/// Random UUIDv7 ids (time-ordered, monotonic within the process): the default.
///
/// ```
/// use paracell_domain::ports::{IdGenerator, UuidV7};
/// let (a, b) = (UuidV7.next_id(), UuidV7.next_id());
/// assert_eq!(a.get_version_num(), 7);
/// assert!(a < b);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct UuidV7;

impl IdGenerator for UuidV7 {
    fn next_id(&self) -> uuid::Uuid {
        uuid::Uuid::now_v7()
    }
}
