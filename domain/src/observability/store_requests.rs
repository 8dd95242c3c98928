//! Counting a request's store operations, for the `store_requests` metric: a cell wraps its store in
//! a [`CountedStore`] for each request it answers. Each operation is one database round trip on
//! DynamoDB and Cosmos DB, except a commit on Cosmos DB without the versions of what was read (the
//! replication apply: one more read per guarded document) and the paginated reads of the relay and
//! the operator (one per page).

use crate::Currency;
use crate::idempotency::{IdempotencyKey, IdempotencyRecord};
use crate::placement::{Fence, TenantHead};
use crate::ports::{
    BalanceSnapshot, Commit, CommitError, CreateView, EntryPage, EntryRef, Received, StoreError,
    TransactionStore,
};
use crate::replication::SealedEntry;
use crate::tenancy::TenantId;
use crate::transaction::{AccountId, Transaction, TransactionId};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// A store that counts the operations made through it.
///
/// ```
/// use paracell_domain::observability::store_requests::CountedStore;
/// use paracell_domain::ports::TransactionStore;
/// use paracell_domain::TenantId;
/// let store = CountedStore::new(std::sync::Arc::new(paracell_domain::memory::MemoryStore::new()));
/// let tenant = TenantId::parse("coop-1").unwrap();
/// paracell_domain::testing::block_on(store.head(&tenant)).unwrap();
/// assert_eq!(store.calls(), 1);
/// ```
pub struct CountedStore {
    inner: Arc<dyn TransactionStore>,
    calls: AtomicU32,
}

impl CountedStore {
    /// Counts the operations made on `inner`.
    pub fn new(inner: Arc<dyn TransactionStore>) -> Self {
        Self {
            inner,
            calls: AtomicU32::new(0),
        }
    }

    /// Operations made so far.
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::Relaxed)
    }

    fn count(&self) -> &dyn TransactionStore {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.as_ref()
    }
}

#[async_trait::async_trait]
impl TransactionStore for CountedStore {
    async fn head(&self, tenant: &TenantId) -> Result<Option<TenantHead>, StoreError> {
        self.count().head(tenant).await
    }

    async fn create_view(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        account: &AccountId,
        currency: Currency,
    ) -> Result<CreateView, StoreError> {
        self.count()
            .create_view(tenant, key, account, currency)
            .await
    }

    async fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        self.count().commit(commit).await
    }

    async fn put_head(&self, fence: Fence, head: TenantHead) -> Result<(), CommitError> {
        self.count().put_head(fence, head).await
    }

    async fn receive(&self, entry: &SealedEntry) -> Result<Received, StoreError> {
        self.count().receive(entry).await
    }

    async fn entry(&self, tenant: &TenantId, seq: u64) -> Result<Option<SealedEntry>, StoreError> {
        self.count().entry(tenant, seq).await
    }

    async fn discard_received(
        &self,
        tenant: &TenantId,
        seq: u64,
        digest: &crate::replication::Digest,
    ) -> Result<bool, StoreError> {
        self.count().discard_received(tenant, seq, digest).await
    }

    async fn entries_after(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<SealedEntry>, StoreError> {
        self.count().entries_after(tenant, after, limit).await
    }

    async fn transaction(
        &self,
        tenant: &TenantId,
        id: TransactionId,
    ) -> Result<Option<Transaction>, StoreError> {
        self.count().transaction(tenant, id).await
    }

    async fn balance(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        currency: Currency,
    ) -> Result<Option<BalanceSnapshot>, StoreError> {
        self.count().balance(tenant, account, currency).await
    }

    async fn balances(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Vec<BalanceSnapshot>, StoreError> {
        self.count().balances(tenant, account).await
    }

    async fn idempotency_record(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.count().idempotency_record(tenant, key).await
    }

    async fn pending_entries(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<EntryPage, StoreError> {
        self.count().pending_entries(after, limit).await
    }

    async fn mark_relayed(&self, entries: &[EntryRef]) -> Result<(), StoreError> {
        self.count().mark_relayed(entries).await
    }
}
