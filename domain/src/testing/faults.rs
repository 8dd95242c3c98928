//! A store wrapper that fails on purpose: every operation asks a [`Faults`] first, then delegates.
//! The contract tests and the conformance suite inject outages, throttling and panics with it, the
//! outage drill its network partitions and slow links.

use crate::idempotency::{IdempotencyKey, IdempotencyRecord};
use crate::money::Currency;
use crate::placement::TenantHead;
use crate::ports::{
    BalanceSnapshot, Commit, CommitError, CreateView, EntryPage, EntryRef, Received, StoreError,
    TransactionStore,
};
use crate::replication::SealedEntry;
use crate::tenancy::TenantId;
use crate::transaction::{AccountId, Transaction, TransactionId};
use std::sync::Arc;

/// A store operation, as [`Faults::before`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Operation {
    Head,
    PutHead,
    CreateView,
    Commit,
    Receive,
    Entry,
    DiscardReceived,
    EntriesAfter,
    Transaction,
    Balance,
    Balances,
    IdempotencyRecord,
    PendingEntries,
    MarkRelayed,
}

/// Decides how an operation fails.
pub trait Faults: Send + Sync {
    /// Called before `operation` runs: `Err` makes it fail with that error (it may also panic).
    fn before(&self, operation: Operation) -> Result<(), StoreError>;

    /// Changes what a create read (by default, nothing).
    fn view(&self, tenant: &TenantId, key: &IdempotencyKey, view: CreateView) -> CreateView {
        let _ = (tenant, key);
        view
    }

    /// Called once a commit has been applied, before its answer goes back (by default, nothing): a
    /// slow link makes the answer late here, so the writer sees the time move past it.
    fn after_commit(&self) {}

    /// Whether `operation` is accepted and never answered (a black-holed link; by default, no).
    fn stalls(&self, operation: Operation) -> bool {
        let _ = operation;
        false
    }

    /// Changes the balances a read returns (by default, nothing): a store whose state is not what
    /// its log says.
    fn balances(
        &self,
        account: &AccountId,
        balances: Vec<BalanceSnapshot>,
    ) -> Vec<BalanceSnapshot> {
        let _ = account;
        balances
    }

    /// Changes the idempotency record a read returns (by default, nothing).
    fn record(
        &self,
        key: &IdempotencyKey,
        record: Option<IdempotencyRecord>,
    ) -> Option<IdempotencyRecord> {
        let _ = key;
        record
    }
}

impl<F: Fn(Operation) -> Result<(), StoreError> + Send + Sync> Faults for F {
    fn before(&self, operation: Operation) -> Result<(), StoreError> {
        self(operation)
    }
}

/// A store whose operations fail as `faults` says.
///
/// ```
/// use paracell_domain::{memory::MemoryStore, ports::{StoreError, TransactionStore}, testing::{block_on, faults::*}};
/// let store = FaultyStore::new(std::sync::Arc::new(MemoryStore::new()), |op| match op {
///     Operation::Head => Err(StoreError::Failed("down".into())),
///     _ => Ok(()),
/// });
/// let tenant = paracell_domain::TenantId::parse("coop-1").unwrap();
/// assert!(block_on(store.head(&tenant)).is_err());
/// ```
pub struct FaultyStore<F> {
    inner: Arc<dyn TransactionStore>,
    faults: F,
}

impl<F: Faults> FaultyStore<F> {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn TransactionStore>, faults: F) -> Self {
        Self { inner, faults }
    }

    /// The faults.
    pub fn faults(&self) -> &F {
        &self.faults
    }

    /// What every operation goes through first: a stall, or the fault's error.
    async fn enter(&self, operation: Operation) -> Result<(), StoreError> {
        if self.faults.stalls(operation) {
            std::future::pending::<()>().await;
        }
        self.faults.before(operation)
    }
}

#[async_trait::async_trait]
impl<F: Faults> TransactionStore for FaultyStore<F> {
    async fn head(&self, t: &TenantId) -> Result<Option<TenantHead>, StoreError> {
        self.enter(Operation::Head).await?;
        self.inner.head(t).await
    }
    async fn create_view(
        &self,
        t: &TenantId,
        k: &IdempotencyKey,
        account: &AccountId,
        currency: Currency,
    ) -> Result<CreateView, StoreError> {
        self.enter(Operation::CreateView).await?;
        let view = self.inner.create_view(t, k, account, currency).await?;
        Ok(self.faults.view(t, k, view))
    }
    async fn commit(&self, c: Commit) -> Result<(), CommitError> {
        self.enter(Operation::Commit).await?;
        let committed = self.inner.commit(c).await;
        self.faults.after_commit();
        committed
    }
    async fn put_head(
        &self,
        fence: crate::placement::Fence,
        head: TenantHead,
    ) -> Result<(), CommitError> {
        self.enter(Operation::PutHead).await?;
        self.inner.put_head(fence, head).await
    }
    async fn receive(&self, e: &SealedEntry) -> Result<Received, StoreError> {
        self.enter(Operation::Receive).await?;
        self.inner.receive(e).await
    }
    async fn entry(&self, t: &TenantId, seq: u64) -> Result<Option<SealedEntry>, StoreError> {
        self.enter(Operation::Entry).await?;
        self.inner.entry(t, seq).await
    }
    async fn discard_received(
        &self,
        t: &TenantId,
        seq: u64,
        digest: &crate::replication::Digest,
    ) -> Result<bool, StoreError> {
        self.enter(Operation::DiscardReceived).await?;
        self.inner.discard_received(t, seq, digest).await
    }
    async fn entries_after(
        &self,
        t: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<SealedEntry>, StoreError> {
        self.enter(Operation::EntriesAfter).await?;
        self.inner.entries_after(t, after, limit).await
    }
    async fn transaction(
        &self,
        t: &TenantId,
        id: TransactionId,
    ) -> Result<Option<Transaction>, StoreError> {
        self.enter(Operation::Transaction).await?;
        self.inner.transaction(t, id).await
    }
    async fn balance(
        &self,
        t: &TenantId,
        a: &AccountId,
        c: Currency,
    ) -> Result<Option<BalanceSnapshot>, StoreError> {
        self.enter(Operation::Balance).await?;
        self.inner.balance(t, a, c).await
    }
    async fn balances(
        &self,
        t: &TenantId,
        a: &AccountId,
    ) -> Result<Vec<BalanceSnapshot>, StoreError> {
        self.enter(Operation::Balances).await?;
        let balances = self.inner.balances(t, a).await?;
        Ok(self.faults.balances(a, balances))
    }
    async fn idempotency_record(
        &self,
        t: &TenantId,
        k: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.enter(Operation::IdempotencyRecord).await?;
        let record = self.inner.idempotency_record(t, k).await?;
        Ok(self.faults.record(k, record))
    }
    async fn pending_entries(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<EntryPage, StoreError> {
        self.enter(Operation::PendingEntries).await?;
        self.inner.pending_entries(after, limit).await
    }
    async fn mark_relayed(&self, entries: &[EntryRef]) -> Result<(), StoreError> {
        self.enter(Operation::MarkRelayed).await?;
        self.inner.mark_relayed(entries).await
    }
}
