//! `reconcile`: when a primary that was failed over comes back. It is fenced first (so it can never
//! book again at its old epoch), then every entry it committed beyond the point the new primary was
//! promoted from is classified mechanically, by idempotency key, against the new primary:
//!
//! | the key on the new primary | class | what to do |
//! |---|---|---|
//! | present, same fingerprint, same answer | `retried` | nothing: the client retried there; booking it again would double it |
//! | present, same fingerprint, another answer | `retried-other-outcome` | a person decides (booked on one, refused on the other) |
//! | present, other fingerprint | `conflicting` | a person decides |
//! | absent, a booking | `lost` | offer it for re-submission through the normal create path (new id, new time; it may now be refused) |
//! | absent, a refused debit | `lost-refusal` | report only: nothing was booked |
//!
//! Nothing is merged silently: the report is the output.

use super::migrate::CellHandle;
use super::registry::{PlacementRegistry, PlacementState, RegistryError};
use super::{TenantHead, TenantRole};
use crate::ports::{CommitError, StoreError};
use crate::replication::Effect;
use crate::tenancy::{CellId, TenantId};

/// How an unreplicated entry of the old primary stands against the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailClass {
    /// The same request was answered the same on the new primary (a retry).
    Retried,
    /// The same request got another answer on the new primary (a debit booked on one and refused on
    /// the other, because the balances differed).
    RetriedOtherOutcome,
    /// The key was used on the new primary for another request.
    Conflicting,
    /// A booking the new primary does not have.
    Lost,
    /// A refused debit the new primary does not have.
    LostRefusal,
}

impl TailClass {
    /// Every class, in report order: what a report counts (none may be left out of a count).
    pub const ALL: [TailClass; 5] = [
        Self::Retried,
        Self::RetriedOtherOutcome,
        Self::Conflicting,
        Self::Lost,
        Self::LostRefusal,
    ];

    /// `retried`, `retried-other-outcome`, `conflicting`, `lost`, `lost-refusal`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retried => "retried",
            Self::RetriedOtherOutcome => "retried-other-outcome",
            Self::Conflicting => "conflicting",
            Self::Lost => "lost",
            Self::LostRefusal => "lost-refusal",
        }
    }
}

/// One classified entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailEntry {
    /// Its position on the old primary.
    pub seq: u64,
    /// The client's idempotency key.
    pub key: String,
    /// Its class.
    pub class: TailClass,
    /// What the client was answered (status and body), for a person re-submitting it.
    pub status: u16,
    /// The response body the client got (the transaction, or the refusal).
    pub body: String,
    /// What the new primary answered for the same key, when it has it (status and body).
    pub new_answer: Option<(u16, String)>,
}

/// The reconciliation report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    /// The tenant.
    pub tenant: TenantId,
    /// The returning primary.
    pub old: CellId,
    /// The current primary.
    pub new: CellId,
    /// The epoch the new primary holds.
    pub epoch: u64,
    /// Where the new primary's epoch began.
    pub from_seq: u64,
    /// Every unreplicated entry of the old primary, classified.
    pub entries: Vec<TailEntry>,
    /// The steps taken.
    pub steps: Vec<String>,
}

impl ReconcileReport {
    /// How many entries fell in `class`.
    pub fn count(&self, class: TailClass) -> usize {
        self.entries.iter().filter(|e| e.class == class).count()
    }
}

/// Why reconciliation stopped (run it again).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconcileError {
    /// The registry does not record a failover from `old` to `new`.
    #[error("the registry records no failover of the tenant from {old} (state: {state})")]
    NoFailover {
        /// The returning cell.
        old: CellId,
        /// What the registry says.
        state: String,
    },
    /// A cell holds nothing of the tenant.
    #[error("cell {0} holds nothing of the tenant")]
    NotHeld(CellId),
    /// The registry refused a write.
    #[error("registry: {0}")]
    Registry(#[from] RegistryError),
    /// A store failed.
    #[error("store of {cell}: {error}")]
    Store {
        /// The cell.
        cell: CellId,
        /// The failure.
        error: StoreError,
    },
}

/// Fences `old` and classifies its unreplicated entries against `new` (the registry's primary after
/// a failover from `old`); then marks the placement active again.
pub async fn reconcile(
    tenant: &TenantId,
    old: &CellHandle,
    new: &CellHandle,
    registry: &dyn PlacementRegistry,
) -> Result<ReconcileReport, ReconcileError> {
    let failed = |cell: &CellId| {
        let cell = cell.clone();
        move |error| ReconcileError::Store { cell, error }
    };
    let mut steps = Vec::new();
    let placement = registry
        .get(tenant)
        .await
        .map_err(RegistryError::from)?
        .ok_or_else(|| ReconcileError::NoFailover {
            old: old.id.clone(),
            state: "no record".into(),
        })?;
    let recorded = placement.primary == new.id
        && matches!(&placement.state, PlacementState::FailedOver { from } if *from == old.id);
    if !recorded {
        return Err(ReconcileError::NoFailover {
            old: old.id.clone(),
            state: format!(
                "primary {} at epoch {}, {}",
                placement.primary, placement.epoch, placement.state
            ),
        });
    }
    let epoch = placement.epoch;

    // Fence the old primary at the new epoch, whatever it believes it is.
    loop {
        let head = old
            .store
            .head(tenant)
            .await
            .map_err(failed(&old.id))?
            .ok_or_else(|| ReconcileError::NotHeld(old.id.clone()))?;
        if head.role == TenantRole::Fenced && head.epoch >= epoch {
            break;
        }
        let fenced = TenantHead {
            role: TenantRole::Fenced,
            epoch,
            primary: new.id.clone(),
            lease_until: None,
            ..head.clone()
        };
        match old.store.put_head(head.fence(), fenced).await {
            Ok(()) => {
                steps.push(format!("fenced {} at epoch {epoch}", old.id));
                break;
            }
            Err(CommitError::HeadMoved) => continue,
            Err(CommitError::Store(e)) => return Err(failed(&old.id)(e)),
            Err(other) => return Err(failed(&old.id)(StoreError::Failed(other.to_string()))),
        }
    }

    let new_head = new
        .store
        .head(tenant)
        .await
        .map_err(failed(&new.id))?
        .ok_or_else(|| ReconcileError::NotHeld(new.id.clone()))?;
    let from_seq = new_head.epoch_start;
    let tail = old
        .store
        .entries_after(tenant, from_seq, 1_000_000)
        .await
        .map_err(failed(&old.id))?;
    let mut entries = Vec::new();
    for sealed in tail.iter().filter(|e| e.entry().epoch < epoch) {
        let entry = sealed.entry();
        let record = new
            .store
            .idempotency_record(tenant, &entry.key)
            .await
            .map_err(failed(&new.id))?;
        let new_answer = record.as_ref().map(|r| {
            (
                r.response.status,
                String::from_utf8_lossy(&r.response.body).into_owned(),
            )
        });
        let class = match (&record, &entry.effect) {
            (Some(r), _) if r.fingerprint == entry.fingerprint => match &new_answer {
                Some((status, _)) if *status == entry.response.status => TailClass::Retried,
                _ => TailClass::RetriedOtherOutcome,
            },
            (Some(_), _) => TailClass::Conflicting,
            (None, Effect::Accepted { .. }) => TailClass::Lost,
            (None, Effect::Refused) => TailClass::LostRefusal,
        };
        entries.push(TailEntry {
            seq: sealed.seq(),
            key: entry.key.to_string(),
            class,
            status: entry.response.status,
            body: String::from_utf8_lossy(&entry.response.body).into_owned(),
            new_answer,
        });
    }
    steps.push(format!(
        "classified {} entries after seq {from_seq}",
        entries.len()
    ));
    if placement.state != PlacementState::Active {
        let next = placement.next(|p| p.state = PlacementState::Active);
        registry.put(Some(placement.version), &next).await?;
        steps.push("registry: active".into());
    }
    Ok(ReconcileReport {
        tenant: tenant.clone(),
        old: old.id.clone(),
        new: new.id.clone(),
        epoch,
        from_seq,
        entries,
        steps,
    })
}
