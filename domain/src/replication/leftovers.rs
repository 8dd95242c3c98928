//! A promoted cell's leftovers: entries it *received* as a standby beyond the position it was
//! promoted at, from the epoch before. They are the old primary's tail the standby never applied (a
//! gap held them back, or the promotion landed between an entry's arrival and its application).
//!
//! They must go: the new primary commits its own entries at those sequence numbers, and a store
//! keeps one entry per position, so each of them would refuse every commit of the new primary at its
//! position — the tenant unwritable on the very cell it failed over to. Nothing is lost by removing
//! them: they changed no balance and no idempotency record here, and the old primary still holds
//! them; reconciliation reports them from there (`placement::reconcile`).
//!
//! Found by the outage drill through the binaries: a failover landed while lambda-cell's relay was
//! delivering, and azure-cell, promoted, answered every write `503` ("contended").

use crate::placement::{TenantHead, TenantRole};
use crate::ports::{StoreError, TransactionStore};
use crate::tenancy::TenantId;

/// How many entries beyond the head one call looks at; a standby holds at most what its relay
/// delivered out of order, far fewer.
const LIMIT: usize = 10_000;

/// Removes `head`'s tenant's received entries beyond the head from epochs before the head's, when
/// `head` is a primary's (or a frozen primary's); returns how many went. Each is deleted only if it
/// is still that very entry (by digest). Entries of the head's own epoch are never touched: a
/// primary's commits move its head with them, so none is ever beyond it.
///
/// ```
/// use paracell_domain::memory::MemoryStore;
/// use paracell_domain::placement::{Fence, TenantHead, TenantRole};
/// use paracell_domain::ports::TransactionStore;
/// use paracell_domain::replication::{Position, leftovers};
/// use paracell_domain::testing::{block_on, sample_entry};
/// use paracell_domain::CellId;
/// let store = MemoryStore::new();
/// // A standby receives the old primary's entry 1, and is promoted before it applied it.
/// let received = sample_entry();
/// block_on(store.receive(&received)).unwrap();
/// let promoted = TenantHead {
///     tenant: received.tenant().clone(),
///     role: TenantRole::Primary,
///     epoch: received.entry().epoch + 1,
///     primary: CellId::parse("cell-azure").unwrap(),
///     position: Position::GENESIS,
///     epoch_start: 0,
///     lease_until: None,
/// };
/// block_on(store.put_head(Fence::Absent, promoted.clone())).unwrap();
/// assert_eq!(block_on(leftovers::discard(&store, &promoted)).unwrap(), 1);
/// assert!(block_on(store.entry(received.tenant(), 1)).unwrap().is_none(), "position 1 is free");
/// ```
pub async fn discard(store: &dyn TransactionStore, head: &TenantHead) -> Result<usize, StoreError> {
    if !matches!(head.role, TenantRole::Primary | TenantRole::Frozen) {
        return Ok(0);
    }
    discard_beyond(store, &head.tenant, head.epoch, head.position.seq).await
}

/// [`discard`] for a primary of `tenant` at `epoch` whose head is at `position` (the caller knows
/// the head is a primary's: the create path, which was just admitted as one).
pub async fn discard_beyond(
    store: &dyn TransactionStore,
    tenant: &TenantId,
    epoch: u64,
    position: u64,
) -> Result<usize, StoreError> {
    let beyond = store.entries_after(tenant, position, LIMIT).await?;
    let mut discarded = 0;
    for entry in beyond.iter().filter(|e| e.entry().epoch < epoch) {
        if store
            .discard_received(tenant, entry.seq(), &entry.digest())
            .await?
        {
            tracing::warn!(
                tenant = %tenant,
                seq = entry.seq(),
                epoch = entry.entry().epoch,
                origin = %entry.entry().origin,
                "discarded an entry received from the previous primary and never applied"
            );
            discarded += 1;
        }
    }
    Ok(discarded)
}
