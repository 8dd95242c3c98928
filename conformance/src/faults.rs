//! Store faults injected in process ([`crate::case::Fault`]), around the in-memory store.

use crate::case::Fault;
use paracell_domain::idempotency::{IdempotencyKey, IdempotencyRecord, KeyState, StoredResponse};
use paracell_domain::memory::MemoryStore;
use paracell_domain::ports::{
    BalanceSnapshot, ClaimOutcome, Commit, CommitError, EventPage, KeyClaim, StoreError,
    TransactionStore,
};
use paracell_domain::{AccountId, Currency, TenantId, Transaction, TransactionId};
use std::sync::Arc;

/// A store that fails the way its fault says.
pub struct FaultyStore {
    inner: Arc<MemoryStore>,
    fault: Fault,
}

impl FaultyStore {
    /// Wraps a store.
    pub fn new(inner: Arc<MemoryStore>, fault: Fault) -> Self {
        Self { inner, fault }
    }

    fn fail(&self) -> Result<(), StoreError> {
        match self.fault {
            Fault::StoreUnavailable => Err(StoreError::Unavailable {
                retry_after_secs: 2,
                detail: "injected throttling".into(),
            }),
            Fault::StoreFailure => Err(StoreError::Failed(
                "injected failure: connection reset by peer".into(),
            )),
            Fault::Panic => panic!("injected panic in the store"),
            Fault::KeysInProgress => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl TransactionStore for FaultyStore {
    async fn claim_key(&self, claim: KeyClaim) -> Result<ClaimOutcome, StoreError> {
        self.fail()?;
        if self.fault == Fault::KeysInProgress {
            return Ok(ClaimOutcome::Existing(IdempotencyRecord {
                tenant_id: claim.tenant_id,
                key: claim.key,
                fingerprint: claim.fingerprint,
                state: KeyState::InProgress {
                    claimed_at: claim.now,
                    token: TransactionId::from_uuid(uuid::Uuid::nil()),
                },
            }));
        }
        self.inner.claim_key(claim).await
    }
    async fn complete_key(
        &self,
        t: &TenantId,
        k: &IdempotencyKey,
        token: TransactionId,
        r: StoredResponse,
    ) -> Result<(), StoreError> {
        self.fail()?;
        self.inner.complete_key(t, k, token, r).await
    }
    async fn release_key(
        &self,
        t: &TenantId,
        k: &IdempotencyKey,
        token: TransactionId,
    ) -> Result<(), StoreError> {
        self.fail()?;
        self.inner.release_key(t, k, token).await
    }
    async fn commit(&self, c: Commit) -> Result<(), CommitError> {
        self.fail()?;
        self.inner.commit(c).await
    }
    async fn transaction(
        &self,
        t: &TenantId,
        id: TransactionId,
    ) -> Result<Option<Transaction>, StoreError> {
        self.fail()?;
        self.inner.transaction(t, id).await
    }
    async fn balance(
        &self,
        t: &TenantId,
        a: &AccountId,
        c: Currency,
    ) -> Result<Option<BalanceSnapshot>, StoreError> {
        self.fail()?;
        self.inner.balance(t, a, c).await
    }
    async fn balances(
        &self,
        t: &TenantId,
        a: &AccountId,
    ) -> Result<Vec<BalanceSnapshot>, StoreError> {
        self.fail()?;
        self.inner.balances(t, a).await
    }
    async fn idempotency_record(
        &self,
        t: &TenantId,
        k: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.fail()?;
        self.inner.idempotency_record(t, k).await
    }
    async fn pending_events(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        self.fail()?;
        self.inner.pending_events(after, limit).await
    }
    async fn mark_published(&self, ids: &[uuid::Uuid]) -> Result<(), StoreError> {
        self.fail()?;
        self.inner.mark_published(ids).await
    }
}
