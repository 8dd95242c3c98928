//! The cell lease applied to a cell's writes: [`LeaseGate`] is what a cell under the quorum asks
//! before it books for a tenant, and after its commit returns.
//!
//! - **Before**: renew the cell's one lease if a renewal is due (inline: a Lambda or a Function has
//!   no background time between invocations; a long-running host may also call
//!   [`LeaseGate::renew_if_due`] from a timer), then refuse unless the process is before its stop
//!   point ([`LeaseHolder::may_commit`]). In a tenure the process has not confirmed this tenant in —
//!   its first, or one granted after a revocation — the tenant's placement is read from the quorum
//!   once: still this cell at the head's epoch → admitted for the rest of the tenure; moved to
//!   another cell at a higher epoch → the cell fences itself (`421` naming the new primary).
//! - **After**: the ack rule ([`LeaseHolder::acknowledge`]): a commit that returned at or past the
//!   deadline is not acknowledged (`503`); it stays committed here and is either replayed to a
//!   retry under the same key (the lease was only late) or reported in the divergent tail when the
//!   tenant moved.
//!
//! Renewals cost the same for one tenant or ten thousand; the per-tenant read happens once per
//! tenant per tenure, never per request.

use super::QuorumRegistry;
use super::lease::{self, LeaseHolder, MayCommit, Renewed};
use crate::placement::TenantHead;
use crate::placement::registry::{Placement, PlacementRegistry};
use crate::ports::MonotonicClock;
use crate::tenancy::{CellId, TenantId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Whether a cell may book for a tenant now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Yes: the lease holds and the tenant's placement is confirmed in this tenure.
    Admitted,
    /// The tenant was moved to another cell: fence the head (the placement as the quorum holds it).
    Moved(Box<Placement>),
    /// No: no lease, revoked, past the stop point, or the placement could not be confirmed (`503`).
    Unconfirmed(&'static str),
}

/// One cell process's view of its cell lease. Share one per process (it is `Send + Sync`).
pub struct LeaseGate {
    cell: CellId,
    quorum: Arc<QuorumRegistry>,
    clock: Arc<dyn MonotonicClock>,
    holder: Mutex<LeaseHolder>,
    renewing: AtomicBool,
    /// The tenure each tenant was last confirmed in.
    confirmed: Mutex<HashMap<TenantId, u64>>,
}

impl std::fmt::Debug for LeaseGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseGate")
            .field("cell", &self.cell)
            .field("holder", &*self.holder())
            .finish_non_exhaustive()
    }
}

impl LeaseGate {
    /// The gate of `cell`'s process, renewing through `quorum` with `holder`'s timings, measuring
    /// on `clock`.
    pub fn new(
        cell: CellId,
        quorum: Arc<QuorumRegistry>,
        clock: Arc<dyn MonotonicClock>,
        holder: LeaseHolder,
    ) -> Self {
        Self {
            cell,
            quorum,
            clock,
            holder: Mutex::new(holder),
            renewing: AtomicBool::new(false),
            confirmed: Mutex::new(HashMap::new()),
        }
    }

    fn holder(&self) -> MutexGuard<'_, LeaseHolder> {
        // A panic elsewhere cannot leave the holder half-updated: every update is one assignment.
        self.holder.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Renews the cell lease if a renewal is due and none is in flight in this process; returns
    /// what happened (`None`: nothing was due).
    pub async fn renew_if_due(&self) -> Option<Renewed> {
        let sent = self.clock.now();
        {
            let mut holder = self.holder();
            if !holder.renewal_due(sent) || self.renewing.swap(true, Ordering::AcqRel) {
                return None;
            }
            holder.sending(sent);
        }
        let outcome = lease::renew(&self.quorum, &self.cell).await;
        let renewed = self.holder().on_renewal(sent, &outcome);
        self.renewing.store(false, Ordering::Release);
        if let Renewed::NewTenure(_) | Renewed::Revoked = renewed {
            // Every tenant is confirmed again in the new tenure (or never, once revoked).
            self.confirmed().clear();
        }
        Some(renewed)
    }

    fn confirmed(&self) -> MutexGuard<'_, HashMap<TenantId, u64>> {
        self.confirmed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this cell may book for `head`'s tenant now (`head`: its primary head here).
    pub async fn admit(&self, head: &TenantHead) -> Admission {
        self.renew_if_due().await;
        let MayCommit::Yes(tenure) = self.holder().may_commit(self.clock.now()) else {
            return Admission::Unconfirmed("the cell lease is not held");
        };
        if self.confirmed().get(&head.tenant) == Some(&tenure) {
            return Admission::Admitted;
        }
        let placement = match self.quorum.get(&head.tenant).await {
            Ok(p) => p,
            Err(_) => return Admission::Unconfirmed("the tenant's placement could not be read"),
        };
        match placement {
            // Never registered: the implicit placement of a tenant's first cell.
            None => {}
            Some(p) if p.primary == self.cell && p.epoch == head.epoch => {}
            Some(p) if p.primary != self.cell && p.epoch > head.epoch => {
                return Admission::Moved(Box::new(p));
            }
            // Mid-change (a migration at the same epoch, a registry ahead of the head here).
            Some(_) => return Admission::Unconfirmed("the tenant's placement is changing"),
        }
        // Confirmed only for the tenure it was confirmed in: a revocation since clears the map.
        if self.holder().may_commit(self.clock.now()) == MayCommit::Yes(tenure) {
            self.confirmed().insert(head.tenant.clone(), tenure);
            Admission::Admitted
        } else {
            Admission::Unconfirmed("the cell lease lapsed while confirming")
        }
    }

    /// The ack rule, for a commit that has just returned.
    pub fn acknowledge(&self) -> bool {
        self.holder().acknowledge(self.clock.now())
    }
}
