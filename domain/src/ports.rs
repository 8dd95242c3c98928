//! Ports: the traits the domain owns and the outside world implements.
//!
//! [`TransactionStore`] is the one place state lives. [`Clock`] and [`IdGenerator`] are ports too, so
//! that tests and the conformance suite can make every response byte-identical. The replication
//! relay's ports ([`crate::replication::relay::Destination`], [`crate::replication::relay::DeadLetters`])
//! live with it; [`Sleep`] is here because more than one use case retries.

use crate::idempotency::{IdempotencyKey, IdempotencyRecord};
use crate::money::Currency;
use crate::placement::{Fence, TenantHead};
use crate::replication::{Digest, SealedEntry};
use crate::tenancy::TenantId;
use crate::time::Timestamp;
use crate::transaction::{AccountId, Transaction, TransactionId};
use rust_decimal::Decimal;

/// Why the store could not answer. Adapters map their SDK errors to this at the seam.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
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
    /// The tenant's head no longer matches the commit's [`Fence`] (another write committed first, or
    /// the cell's role or epoch changed): read it again and decide again.
    #[error("the tenant's head changed since it was read")]
    HeadMoved,
    /// The idempotency key already has a record: a concurrent request with the same key committed
    /// first (read again and replay it), or, when applying an entry, it was already recorded.
    #[error("the idempotency key is not as expected")]
    KeyConflict,
    /// A transaction with this id already exists.
    #[error("the transaction already exists")]
    DuplicateTransaction,
    /// The balance changed since it was read (optimistic concurrency): read again and retry.
    #[error("the balance changed since it was read")]
    BalanceConflict,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The conditions of a commit, in the order every store checks them (and reports the first that
/// failed): the head, the idempotency record, the entry's position, the transaction, the balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CommitSlot {
    /// The tenant's head still matches the fence.
    Head,
    /// The idempotency record is held (or absent) as the guard says.
    Key,
    /// The committed entry's position is free.
    Entry,
    /// The transaction id is new.
    Transaction,
    /// The balance still has the version read.
    Balance,
}

impl CommitError {
    /// The outcome of a commit whose failed conditions are `failed`: the first in [`CommitSlot`]
    /// order decides, so every store answers the same when several fail at once. `None` when none
    /// failed.
    ///
    /// ```
    /// use paracell_domain::ports::{CommitError, CommitSlot};
    /// let both = [CommitSlot::Balance, CommitSlot::Key];
    /// assert_eq!(CommitError::first_failed(both), Some(CommitError::KeyConflict));
    /// assert_eq!(CommitError::first_failed([]), None);
    /// ```
    pub fn first_failed(failed: impl IntoIterator<Item = CommitSlot>) -> Option<Self> {
        failed.into_iter().min().map(|slot| match slot {
            CommitSlot::Head | CommitSlot::Entry => Self::HeadMoved,
            CommitSlot::Key => Self::KeyConflict,
            CommitSlot::Transaction => Self::DuplicateTransaction,
            CommitSlot::Balance => Self::BalanceConflict,
        })
    }
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

/// Opaque versions of the documents a decision read (entity tags, on stores that guard writes with
/// them), handed back with the commit so the store need not read them again. Empty (the default):
/// the store reads what it needs, or, like DynamoDB and the memory store, checks values and needs
/// nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadStamps {
    /// The tenant's head, as read.
    pub head: Option<String>,
    /// The balance, as read.
    pub balance: Option<String>,
}

/// Everything a create decides on, read in one request to the store (see
/// [`TransactionStore::create_view`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateView {
    /// This cell's head for the tenant; `None` when it has never held it.
    pub head: Option<TenantHead>,
    /// The idempotency key's record.
    pub record: Option<IdempotencyRecord>,
    /// The account's balance in the command's currency.
    pub balance: Option<BalanceSnapshot>,
    /// The versions of what was read, for the commit.
    pub stamps: ReadStamps,
}

/// Where a commit's entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntrySource {
    /// Committed here now: written with the commit (it must not exist) and pending relay.
    Committed,
    /// Received from the primary earlier ([`TransactionStore::receive`]): already stored.
    Received,
}

/// Everything one outcome writes for a tenant, atomically: all of it or nothing. The entry's
/// idempotency key must have no record yet; the commit writes it (key, fingerprint, response).
///
/// The same operation books a client's request on the primary and applies a replicated entry on a
/// standby, so both paths write exactly the same items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// What the tenant's head must still be.
    pub fence: Fence,
    /// The head afterwards (its position is the entry's).
    pub head: TenantHead,
    /// The outcome's replication entry.
    pub entry: SealedEntry,
    /// Whether the entry is written now or was received before.
    pub source: EntrySource,
    /// The transaction and its balance, for an accepted entry.
    pub ledger: Option<LedgerWrite>,
    /// The versions of the documents the decision read (from [`CreateView::stamps`]), or empty.
    pub stamps: ReadStamps,
}

/// The ledger part of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerWrite {
    /// The new transaction (must not exist yet).
    pub transaction: Transaction,
    /// Its balance change.
    pub balance: BalanceUpdate,
}

/// What [`TransactionStore::receive`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// The entry was not there: it is stored now (waiting to be applied).
    Stored,
    /// An entry with this tenant and sequence number was already there, with this digest.
    Existing(Digest),
}

/// A tenant's entry, by position.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryRef {
    /// Tenant.
    pub tenant: TenantId,
    /// Sequence number.
    pub seq: u64,
}

/// One page of entries waiting to be relayed, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntryPage {
    /// The entries.
    pub entries: Vec<SealedEntry>,
    /// Opaque cursor for the next page, `None` at the end.
    pub next: Option<String>,
}

impl EntryPage {
    /// A page of at most `limit` entries from `found` (in outbox order, up to one more than asked, to
    /// tell whether a next page exists), with the cursor stores that order by
    /// [`SealedEntry::outbox_order`] continue from.
    pub fn from_ordered(mut found: Vec<SealedEntry>, limit: usize) -> Self {
        let next = (found.len() > limit)
            .then(|| {
                limit
                    .checked_sub(1)
                    .and_then(|i| found.get(i))
                    .map(SealedEntry::outbox_order)
            })
            .flatten();
        found.truncate(limit);
        Self {
            entries: found,
            next,
        }
    }
}

/// The one place a cell's state lives.
///
/// Implementations must be safe under concurrent use from many requests. Every method either fully
/// happens or does not happen at all.
#[async_trait::async_trait]
pub trait TransactionStore: Send + Sync {
    /// This cell's head for `tenant`; `None` when the cell has never held it.
    async fn head(&self, tenant: &TenantId) -> Result<Option<TenantHead>, StoreError>;

    /// What a create decides on, in **one** request: the tenant's head, the key's record and the
    /// account's balance in `currency` (a transactional read on DynamoDB, a single-partition query
    /// on Cosmos DB). A create is this read and one [`TransactionStore::commit`]; nothing read here
    /// is trusted at the commit, whose conditions check it all again.
    async fn create_view(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        account: &AccountId,
        currency: Currency,
    ) -> Result<CreateView, StoreError>;

    /// Atomically, if the tenant's head matches `commit.fence`, the key its guard, the transaction
    /// is new and the balance still has the version read: writes the new head, the entry (when
    /// committed here), the completed idempotency record, and the transaction and balance.
    async fn commit(&self, commit: Commit) -> Result<(), CommitError>;

    /// Replaces the tenant's head if it still matches `fence` (placement changes: seeding a standby,
    /// freezing, promoting, fencing). `Err(CommitError::HeadMoved)` when it does not.
    async fn put_head(&self, fence: Fence, head: TenantHead) -> Result<(), CommitError>;

    /// Stores a replicated entry unless one with its tenant and sequence number exists (then says
    /// which digest that one has). Received entries are not relayed again.
    async fn receive(&self, entry: &SealedEntry) -> Result<Received, StoreError>;

    /// A tenant's entry at `seq`, committed, applied or waiting.
    async fn entry(&self, tenant: &TenantId, seq: u64) -> Result<Option<SealedEntry>, StoreError>;

    /// Deletes the tenant's entry at `seq` if it still has `digest`; `Ok(false)` when there is none
    /// or it has another digest. Only for an entry this cell *received* and never applied — one
    /// beyond its head, left over from the epoch before it was promoted
    /// ([`crate::replication::leftovers`]): committed and applied entries are never beyond the head,
    /// and nothing else may be deleted.
    async fn discard_received(
        &self,
        tenant: &TenantId,
        seq: u64,
        digest: &crate::replication::Digest,
    ) -> Result<bool, StoreError>;

    /// A tenant's entries after `after`, in sequence order, at most `limit`.
    async fn entries_after(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<SealedEntry>, StoreError>;

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

    /// Entries committed here and not yet relayed, oldest first, at most `limit`, after the cursor.
    async fn pending_entries(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<EntryPage, StoreError>;

    /// Marks entries as relayed (idempotent; unknown entries are ignored).
    async fn mark_relayed(&self, entries: &[EntryRef]) -> Result<(), StoreError>;
}

/// Waiting, for the use cases that retry (the relay). The domain has no runtime: hosts implement it.
#[async_trait::async_trait]
pub trait Sleep: Send + Sync {
    /// Resolves after `duration`.
    async fn sleep(&self, duration: std::time::Duration);
}

/// `work`'s output, or `None` when `limit` passes first on `sleep` (`work` is dropped then): a
/// timeout without a runtime, for a read whose answer is worth a bounded wait only.
///
/// ```
/// use paracell_domain::ports::{Sleep, within};
/// use paracell_domain::testing::block_on;
/// use std::time::Duration;
/// struct Instant;
/// #[async_trait::async_trait]
/// impl Sleep for Instant {
///     async fn sleep(&self, _: Duration) {}
/// }
/// // A read that never answers (a black-holed link) costs the limit, not forever.
/// let never = std::future::pending::<u64>();
/// assert_eq!(block_on(within(&Instant, Duration::from_secs(2), never)), None);
/// assert_eq!(block_on(within(&Instant, Duration::from_secs(2), async { 7 })), Some(7));
/// ```
pub async fn within<T>(
    sleep: &dyn Sleep,
    limit: std::time::Duration,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    let mut work = std::pin::pin!(work);
    let mut timer = sleep.sleep(limit);
    std::future::poll_fn(move |cx| {
        // The work first: an answer that is ready when the limit passes still counts.
        if let std::task::Poll::Ready(out) = work.as_mut().poll(cx) {
            return std::task::Poll::Ready(Some(out));
        }
        timer.as_mut().poll(cx).map(|()| None)
    })
    .await
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

/// Elapsed time on the process's own clock, for leases: never compared with another machine's,
/// never stepped back by NTP. Instants are durations since an origin fixed when the clock was made.
pub trait MonotonicClock: Send + Sync {
    /// Time since the origin.
    fn now(&self) -> std::time::Duration;
}

/// The process's monotonic clock, taking the larger of elapsed monotonic and elapsed wall time:
/// `CLOCK_MONOTONIC` stops while a machine is suspended (rust-lang/rust#87906), and a lease must
/// not look younger than it is after a pause.
///
/// ```
/// use paracell_domain::ports::{MonotonicClock, ProcessClock};
/// let clock = ProcessClock::new();
/// let (a, b) = (clock.now(), clock.now());
/// assert!(b >= a);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ProcessClock {
    monotonic: std::time::Instant,
    wall: std::time::SystemTime,
}

impl ProcessClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            monotonic: std::time::Instant::now(),
            wall: std::time::SystemTime::now(),
        }
    }
}

impl Default for ProcessClock {
    fn default() -> Self {
        Self::new()
    }
}

impl MonotonicClock for ProcessClock {
    fn now(&self) -> std::time::Duration {
        let monotonic = self.monotonic.elapsed();
        // A wall clock stepped back reads as zero elapsed: the monotonic one then decides.
        let wall = self.wall.elapsed().unwrap_or_default();
        monotonic.max(wall)
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

/// An HTTP request a use case sends (to a peer cell, a cell behind the router, an event bus).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRequest {
    /// Method.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Header lines.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// The whole exchange must finish within this.
    pub timeout: std::time::Duration,
}

/// The answer to an [`OutboundRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundResponse {
    /// Status.
    pub status: u16,
    /// Header lines (lower-case names).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl OutboundResponse {
    /// A header's first value (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why an [`OutboundRequest`] got no answer. What is known about whether the server saw the request
/// decides whether it may be retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No connection: nothing was sent.
    #[error("could not connect: {0}")]
    Connect(String),
    /// The exchange failed after the request may have been sent.
    #[error("the exchange failed: {0}")]
    Broken(String),
    /// No complete answer within the timeout.
    #[error("no answer within the timeout")]
    Timeout,
}

/// Why no access token could be had (the identity endpoint refused or could not be reached). For
/// logs; it never carries a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no access token: {0}")]
pub struct TokenError(pub String);

/// Where bearer tokens for a service come from: fresh ones on demand (Entra ID through
/// `azure_identity` for Event Grid and Cosmos DB, a federated identity for the witness's object
/// store). Never a fixed token, which would expire.
#[async_trait::async_trait]
pub trait AccessTokens: Send + Sync {
    /// A token valid now.
    async fn token(&self) -> Result<String, TokenError>;
    /// The service refused the last token: forget it, so the next call gets a fresh one.
    fn invalidate(&self);
}

/// Sends HTTP requests. Hosts implement it (hyper on a runtime, `fetch` at an edge).
#[async_trait::async_trait]
pub trait HttpClient: Send + Sync {
    /// Sends one request.
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, TransportError>;
}
