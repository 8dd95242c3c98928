//! Unplanned failover (`--allow-data-loss`): promote the standby of a primary that cannot be reached.
//!
//! 1. The registry names the standby primary at a new epoch, state `failed-over` (and the replica
//!    is written too, so no primary renews its lease from a stale copy).
//! 2. **Wait out the old primary's lease**: a lease is counted from the moment its holder asked the
//!    registry, so once the registry changed, the old primary can book for at most one lease more —
//!    plus the clocks' skew and the longest invocation (a request that confirmed the lease just before
//!    it lapsed may still be committing). After that wait it cannot book, even if a stale router or a
//!    client reaches it: two primaries are impossible.
//! 3. Promote the standby at the new epoch, from the position it reached.
//!
//! What may be lost is what the old primary committed beyond that position: reported exactly when the
//! old primary's store is reachable, otherwise as a lower bound (the position the standby reached),
//! and classified entry by entry by `reconcile` once it is back.

use super::migrate::{CellHandle, MovePorts};
use super::registry::{Placement, PlacementReplica, PlacementState, RegistryError};
use super::{TenantHead, TenantRole};
use crate::ports::{CommitError, StoreError};
use crate::replication::Position;
use crate::tenancy::{CellId, TenantId};
use std::time::Duration;

/// How long a failover waits for the old primary's store to say what it committed beyond the
/// promotion (the report's `lost_entries`), once the promotion is done.
pub const OLD_STORE_READ_LIMIT: Duration = Duration::from_secs(2);

/// The margins of the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailoverPolicy {
    /// The cells' lease (their `Ownership::ttl`).
    pub lease_ttl: Duration,
    /// The most the clocks of the cells and of the operator may disagree.
    pub clock_skew: Duration,
    /// The longest a cell's invocation may run (the function timeout): a write that confirmed its
    /// lease just before it lapsed commits within this.
    pub invocation_timeout: Duration,
    /// The interval between checks while waiting.
    pub poll: Duration,
}

impl Default for FailoverPolicy {
    fn default() -> Self {
        Self {
            lease_ttl: Duration::from_secs(30),
            clock_skew: Duration::from_secs(2),
            invocation_timeout: Duration::from_secs(30),
            poll: Duration::from_millis(500),
        }
    }
}

impl FailoverPolicy {
    /// No wait: for a failover after the old primary's cell lease was revoked in the placement
    /// quorum, whose promoter already waited longer than the lease plus its margins
    /// ([`crate::placement::quorum::LeaseTiming::promoter_wait`]) and which no renewal can undo.
    pub fn after_revocation() -> Self {
        Self {
            lease_ttl: Duration::ZERO,
            clock_skew: Duration::ZERO,
            invocation_timeout: Duration::ZERO,
            poll: Duration::ZERO,
        }
    }

    /// The whole wait: lease + skew + invocation.
    pub fn wait(&self) -> Duration {
        self.lease_ttl + self.clock_skew + self.invocation_timeout
    }
}

/// What a failover did, and what it may have lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverReport {
    /// The tenant.
    pub tenant: TenantId,
    /// The old primary.
    pub from: CellId,
    /// The new primary.
    pub to: CellId,
    /// The epoch before and after.
    pub epochs: (u64, u64),
    /// The last entry the new primary had applied: everything after it on the old primary is lost
    /// unless reconciled.
    pub promoted_at: Position,
    /// The old primary's position, when its store could be read.
    pub old_position: Option<Position>,
    /// Entries committed on the old primary and not on the new one: exact when the old primary was
    /// readable, `None` (unknown, at least 0) otherwise.
    pub lost_entries: Option<u64>,
    /// How long the lease was waited out, in milliseconds.
    pub waited_millis: i64,
    /// The steps taken.
    pub steps: Vec<String>,
}

/// Why a failover stopped (run it again to resume).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FailoverError {
    /// The target does not follow the old primary.
    #[error("cell {cell} is {role} for the tenant with primary {primary}, not a standby of {from}")]
    TargetNotStandby {
        /// The target.
        cell: CellId,
        /// Its role.
        role: TenantRole,
        /// The primary it follows.
        primary: CellId,
        /// The old primary.
        from: CellId,
    },
    /// The target holds nothing of the tenant.
    #[error("cell {cell} holds nothing of tenant {tenant}")]
    NotHeld {
        /// The target.
        cell: CellId,
        /// The tenant.
        tenant: TenantId,
    },
    /// The registry names another primary than the one to fail over from.
    #[error("the registry names {primary} as primary (epoch {epoch}), not {from}")]
    NotThePrimary {
        /// The registry's primary.
        primary: CellId,
        /// Its epoch.
        epoch: u64,
        /// The cell the operator named.
        from: CellId,
    },
    /// The registry refused a write.
    #[error("registry: {0}")]
    Registry(#[from] RegistryError),
    /// The replica could not be written: the wait would not be safe for a primary that renews from
    /// it. Nothing was promoted; run again when the replica is reachable.
    #[error("placement replica: {0}")]
    Replica(StoreError),
    /// A store failed.
    #[error("store of {cell}: {error}")]
    Store {
        /// The cell.
        cell: CellId,
        /// The failure.
        error: StoreError,
    },
    /// The target's head changed while it was being promoted.
    #[error("the tenant's head on {0} changed while it was being promoted")]
    Concurrent(CellId),
}

/// Fails `tenant` over from `from` (unreachable, or `old` when its store can still be read) to
/// `to`'s standby. Resumable: run it again after any error.
pub async fn failover(
    tenant: &TenantId,
    from: &CellId,
    old: Option<&CellHandle>,
    to: &CellHandle,
    ports: &MovePorts,
    replica: Option<&dyn PlacementReplica>,
    policy: FailoverPolicy,
) -> Result<FailoverReport, FailoverError> {
    let store_error = |cell: &CellId| {
        let cell = cell.clone();
        move |error| FailoverError::Store { cell, error }
    };
    let mut steps = Vec::new();
    let to_head = to
        .store
        .head(tenant)
        .await
        .map_err(store_error(&to.id))?
        .ok_or_else(|| FailoverError::NotHeld {
            cell: to.id.clone(),
            tenant: tenant.clone(),
        })?;
    if !(to_head.role == TenantRole::Standby && to_head.primary == *from) {
        return Err(FailoverError::TargetNotStandby {
            cell: to.id.clone(),
            role: to_head.role,
            primary: to_head.primary.clone(),
            from: from.clone(),
        });
    }

    // 1. The registry (and its replica) name the new primary.
    let registry = &ports.registry;
    let current = match registry.get(tenant).await.map_err(RegistryError::from)? {
        Some(p) => p,
        None => {
            let p = Placement::new(
                tenant.clone(),
                from.clone(),
                to_head.epoch,
                vec![to.id.clone()],
            );
            registry.put(None, &p).await?;
            steps.push(format!(
                "registered the placement: primary {from} at epoch {}",
                p.epoch
            ));
            p
        }
    };
    let resumed = current.primary == to.id
        && current.state == (PlacementState::FailedOver { from: from.clone() });
    let placement = if resumed {
        steps.push(format!(
            "resuming: the registry already names {} at epoch {}",
            to.id, current.epoch
        ));
        current
    } else {
        if current.primary != *from {
            return Err(FailoverError::NotThePrimary {
                primary: current.primary,
                epoch: current.epoch,
                from: from.clone(),
            });
        }
        let epoch = current.epoch.max(to_head.epoch) + 1;
        let next = current.next(|p| {
            p.primary = to.id.clone();
            p.epoch = epoch;
            p.standbys.retain(|c| *c != to.id);
            p.state = PlacementState::FailedOver { from: from.clone() };
        });
        registry.put(Some(current.version), &next).await?;
        steps.push(format!(
            "registry: {} primary at epoch {epoch}, failed over from {from}",
            to.id
        ));
        next
    };
    if let Some(replica) = replica {
        replica
            .apply(&placement)
            .await
            .map_err(FailoverError::Replica)?;
        steps.push("replica: the same record".into());
    }

    // 2. Wait the old primary's lease out.
    let started = ports.clock.now();
    let wait = i64::try_from(policy.wait().as_millis()).unwrap_or(i64::MAX);
    while ports.clock.now().unix_millis() - started.unix_millis() < wait {
        ports.sleep.sleep(policy.poll).await;
    }
    let waited = ports.clock.now().unix_millis() - started.unix_millis();
    steps.push(format!(
        "waited {waited} ms (lease {} ms + skew {} ms + invocation {} ms)",
        policy.lease_ttl.as_millis(),
        policy.clock_skew.as_millis(),
        policy.invocation_timeout.as_millis()
    ));

    // 3. Promote the standby where it stands.
    let head = to.store.head(tenant).await.map_err(store_error(&to.id))?;
    let Some(head) = head.filter(|h| h.role == TenantRole::Standby) else {
        return Err(FailoverError::Concurrent(to.id.clone()));
    };
    let promoted = TenantHead {
        role: TenantRole::Primary,
        epoch: placement.epoch,
        primary: to.id.clone(),
        epoch_start: head.position.seq,
        lease_until: None,
        ..head.clone()
    };
    match to.store.put_head(head.fence(), promoted.clone()).await {
        Ok(()) => {}
        Err(CommitError::HeadMoved) => return Err(FailoverError::Concurrent(to.id.clone())),
        Err(CommitError::Store(e)) => return Err(store_error(&to.id)(e)),
        Err(other) => return Err(store_error(&to.id)(StoreError::Failed(other.to_string()))),
    }
    steps.push(format!(
        "promoted {} at epoch {} from {}",
        to.id, placement.epoch, head.position
    ));
    // Entries it received beyond that position and never applied would take the positions of its
    // own first commits (`replication::leftovers`). A failure here is reported, not fatal: the
    // promotion stands, and the cell's next commit clears them itself.
    match crate::replication::leftovers::discard(to.store.as_ref(), &promoted).await {
        Ok(0) => {}
        Ok(n) => steps.push(format!(
            "discarded {n} entries {} received from {from} and never applied (reconciliation reports them from {from})",
            to.id
        )),
        Err(e) => steps.push(format!(
            "entries received beyond the promotion could not be listed or discarded yet: {e}"
        )),
    }

    // What the old primary committed beyond that position, when it can be read — within a
    // bounded wait: the promotion is done, and a black-holed store would otherwise hold the
    // report (and the controller's tick) for its client's whole retry schedule. Unknown is
    // reported as such; reconciliation counts it once the old store is back.
    let old_position = match old {
        Some(old) => match crate::ports::within(
            ports.sleep.as_ref(),
            OLD_STORE_READ_LIMIT,
            old.store.head(tenant),
        )
        .await
        {
            Some(Ok(h)) => h.map(|h| h.position),
            Some(Err(e)) => {
                steps.push(format!("the old primary's store could not be read: {e}"));
                None
            }
            None => {
                steps.push(format!(
                    "the old primary's store did not answer within {} ms",
                    OLD_STORE_READ_LIMIT.as_millis()
                ));
                None
            }
        },
        None => None,
    };
    let lost_entries = old_position.map(|p| p.seq.saturating_sub(head.position.seq));
    Ok(FailoverReport {
        tenant: tenant.clone(),
        from: from.clone(),
        to: to.id.clone(),
        epochs: (placement.epoch - 1, placement.epoch),
        promoted_at: head.position,
        old_position,
        lost_entries,
        waited_millis: waited,
        steps,
    })
}
