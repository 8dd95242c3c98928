//! Planned migration: move a tenant's primary to its standby on another cell without losing or
//! doubling anything.
//!
//! 1. The registry records the move (`migrating`).
//! 2. The old primary is **frozen**, with a lease: its writes answer `503 tenant-frozen`; if the
//!    operator dies, the lease lapses and the cell takes its writes back by itself.
//! 3. Wait until the target has applied **exactly** what the primary committed: the same position,
//!    sequence number and digest (the digest chain makes equal positions equal histories). No time
//!    or lag metric is trusted.
//! 4. The old primary is **fenced first**: it becomes a standby of the target at epoch + 1, by
//!    compare-and-set on the frozen head it froze (a cell whose freeze lapsed and booked meanwhile
//!    fails this, and nothing moves). From here it answers writes with `421 tenant-moved`.
//! 5. The target is **promoted** at epoch + 1 (compare-and-set on its standby head), then the
//!    registry is switched. Reverse replication follows by itself: the old primary is now a standby
//!    at the new epoch and applies what the new primary commits.
//!
//! Every step is a compare-and-set, so two primaries never exist at once (between 4 and 5 there is
//! none: writes get 421 and are retried), and a crashed run is resumed by running it again: it
//! reads where the cells and the registry stand and continues from there.

use super::registry::{Placement, PlacementRegistry, PlacementState, RegistryError};
use super::{TenantHead, TenantRole, thaw};
use crate::ports::{Clock, CommitError, Sleep, StoreError, TransactionStore};
use crate::replication::Position;
use crate::tenancy::{CellId, TenantId};
use std::sync::Arc;
use std::time::Duration;

/// A cell as the operator reaches it: its id and its store.
#[derive(Clone)]
pub struct CellHandle {
    /// The cell.
    pub id: CellId,
    /// Its store (the operator holds the credentials of both cells' databases; nothing of this is
    /// reachable over HTTP).
    pub store: Arc<dyn TransactionStore>,
}

/// What a move needs besides the cells.
#[derive(Clone)]
pub struct MovePorts {
    /// The placement authority.
    pub registry: Arc<dyn PlacementRegistry>,
    /// Time (leases, the pause measured).
    pub clock: Arc<dyn Clock>,
    /// Waiting between checks.
    pub sleep: Arc<dyn Sleep>,
}

/// How long a migration waits and holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationPolicy {
    /// The freeze's lease; renewed while the move waits, lapses if the operator dies.
    pub freeze_lease: Duration,
    /// How long to wait for the target to catch up before rolling back.
    pub catch_up_timeout: Duration,
    /// The interval between checks.
    pub poll: Duration,
}

impl Default for MigrationPolicy {
    fn default() -> Self {
        Self {
            freeze_lease: Duration::from_secs(30),
            catch_up_timeout: Duration::from_secs(60),
            poll: Duration::from_millis(100),
        }
    }
}

/// What a migration did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// The tenant.
    pub tenant: TenantId,
    /// The old primary (now a standby of the new one).
    pub from: CellId,
    /// The new primary.
    pub to: CellId,
    /// The epoch before and after.
    pub epochs: (u64, u64),
    /// Where both cells stood at the switch (the new epoch starts after it).
    pub position: Position,
    /// How long the tenant's writes were refused (frozen, then fenced before the promotion), in
    /// milliseconds; 0 when this run only finished a crashed one's work.
    pub writes_paused_millis: i64,
    /// The steps taken, in order, for the operator's log.
    pub steps: Vec<String>,
}

/// Why a migration stopped. Each says what state it left.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MigrationError {
    /// One of the cells has no record of the tenant.
    #[error("cell {cell} does not hold tenant {tenant}")]
    NotHeld {
        /// The cell.
        cell: CellId,
        /// The tenant.
        tenant: TenantId,
    },
    /// The source is not the tenant's primary (nothing changed).
    #[error("cell {cell} is {role} at epoch {epoch} for the tenant, not its primary")]
    SourceNotPrimary {
        /// The source.
        cell: CellId,
        /// Its role.
        role: TenantRole,
        /// Its epoch.
        epoch: u64,
    },
    /// The target does not follow the source (nothing changed).
    #[error("cell {cell} is {role} for the tenant with primary {primary}, not a standby of {from}")]
    TargetNotStandby {
        /// The target.
        cell: CellId,
        /// Its role.
        role: TenantRole,
        /// The primary it follows.
        primary: CellId,
        /// The source.
        from: CellId,
    },
    /// The target did not catch up in time; the source was thawed and is primary again.
    #[error(
        "cell {to} did not catch up within {waited_millis} ms (primary at {primary}, target at {target}); rolled back: {from} is primary again"
    )]
    NotCaughtUp {
        /// The source.
        from: CellId,
        /// The target.
        to: CellId,
        /// The primary's position.
        primary: Position,
        /// The target's.
        target: Position,
        /// How long it waited.
        waited_millis: i64,
    },
    /// The source's freeze lapsed and it took its writes back before it could be fenced; nothing
    /// moved (run the migration again).
    #[error("the freeze of {from} lapsed before it was fenced: it is primary again, nothing moved")]
    FreezeLapsed {
        /// The source.
        from: CellId,
    },
    /// The registry disagrees with the cells (another operator?); nothing was changed by this step.
    #[error("registry: {0}")]
    Registry(#[from] RegistryError),
    /// A head changed under the operator in a way it does not expect.
    #[error("the tenant's head on {cell} changed concurrently: {detail}")]
    Concurrent {
        /// The cell.
        cell: CellId,
        /// What was found.
        detail: String,
    },
    /// A store failed; run the migration again to resume.
    #[error("store of {cell}: {error}")]
    Store {
        /// The cell.
        cell: CellId,
        /// The failure.
        error: StoreError,
    },
}

struct Move<'a> {
    tenant: &'a TenantId,
    from: &'a CellHandle,
    to: &'a CellHandle,
    ports: &'a MovePorts,
    steps: Vec<String>,
}

/// How many times freezing is tried while writes keep moving the head.
const FREEZE_ATTEMPTS: usize = 100;

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Move<'_> {
    async fn head(&self, cell: &CellHandle) -> Result<Option<TenantHead>, MigrationError> {
        cell.store
            .head(self.tenant)
            .await
            .map_err(|error| MigrationError::Store {
                cell: cell.id.clone(),
                error,
            })
    }

    async fn held(&self, cell: &CellHandle) -> Result<TenantHead, MigrationError> {
        self.head(cell)
            .await?
            .ok_or_else(|| MigrationError::NotHeld {
                cell: cell.id.clone(),
                tenant: self.tenant.clone(),
            })
    }

    /// Compare-and-set of a cell's head; `Ok(false)` when it moved.
    async fn swap(
        &self,
        cell: &CellHandle,
        read: &TenantHead,
        next: TenantHead,
    ) -> Result<bool, MigrationError> {
        match cell.store.put_head(read.fence(), next).await {
            Ok(()) => Ok(true),
            Err(CommitError::HeadMoved) => Ok(false),
            Err(CommitError::Store(error)) => Err(MigrationError::Store {
                cell: cell.id.clone(),
                error,
            }),
            Err(other) => Err(MigrationError::Store {
                cell: cell.id.clone(),
                error: StoreError::Failed(other.to_string()),
            }),
        }
    }

    /// The registry's record, created from the source's head when the tenant was placed implicitly
    /// (by its first write) and has none yet.
    async fn placement(&mut self, from_head: &TenantHead) -> Result<Placement, MigrationError> {
        let registry = &self.ports.registry;
        if let Some(p) = registry
            .get(self.tenant)
            .await
            .map_err(RegistryError::from)?
        {
            return Ok(p);
        }
        let p = Placement::new(
            self.tenant.clone(),
            from_head.primary.clone(),
            from_head.epoch,
            vec![self.to.id.clone()],
        );
        registry.put(None, &p).await?;
        self.steps.push(format!(
            "registered the tenant's placement: primary {} at epoch {}",
            p.primary, p.epoch
        ));
        Ok(p)
    }

    async fn set_registry(
        &mut self,
        change: impl FnOnce(&mut Placement),
        what: &str,
    ) -> Result<Placement, MigrationError> {
        let current = self
            .ports
            .registry
            .get(self.tenant)
            .await
            .map_err(RegistryError::from)?
            .ok_or(RegistryError::Conflict { current: None })?;
        let next = current.next(change);
        if next
            == (Placement {
                version: next.version,
                ..current.clone()
            })
        {
            return Ok(current);
        }
        self.ports
            .registry
            .put(Some(current.version), &next)
            .await?;
        self.steps.push(what.to_owned());
        Ok(next)
    }

    /// Points the registry at the new primary.
    async fn switch_registry(&mut self, epoch: u64) -> Result<(), MigrationError> {
        let (from, to) = (self.from.id.clone(), self.to.id.clone());
        self.set_registry(
            |p| {
                p.primary = to.clone();
                p.epoch = epoch;
                p.standbys.retain(|c| *c != to);
                if !p.standbys.contains(&from) {
                    p.standbys.push(from.clone());
                }
                p.state = PlacementState::Active;
            },
            &format!("switched the registry: primary {to} at epoch {epoch}"),
        )
        .await
        .map(|_| ())
    }

    /// Promotes the target at the new epoch (its head must be exactly where the source stopped).
    async fn promote(
        &mut self,
        to_head: &TenantHead,
        epoch: u64,
        position: Position,
    ) -> Result<(), MigrationError> {
        let promoted = TenantHead {
            role: TenantRole::Primary,
            epoch,
            primary: self.to.id.clone(),
            position,
            epoch_start: position.seq,
            lease_until: None,
            tenant: self.tenant.clone(),
        };
        if !self.swap(self.to, to_head, promoted).await? {
            return Err(MigrationError::Concurrent {
                cell: self.to.id.clone(),
                detail: "its head moved while it was being promoted".into(),
            });
        }
        self.steps.push(format!(
            "promoted {} to primary at epoch {epoch} from seq {}",
            self.to.id, position.seq
        ));
        Ok(())
    }

    /// Puts the registry back to active on the source after a rollback.
    async fn registry_back(&mut self) {
        if let Err(e) = self
            .set_registry(
                |p| p.state = PlacementState::Active,
                "registry back to active",
            )
            .await
        {
            // Reported, not silent: the registry still says the move is under way; a rerun of
            // the migration resumes from there.
            self.steps
                .push(format!("FAILED to put the registry back to active: {e}"));
        }
    }
}

/// Migrates `tenant` from `from` (its primary) to `to` (its standby). Resumes a crashed run.
pub async fn migrate(
    tenant: &TenantId,
    from: &CellHandle,
    to: &CellHandle,
    ports: &MovePorts,
    policy: MigrationPolicy,
) -> Result<MigrationReport, MigrationError> {
    let mut m = Move {
        tenant,
        from,
        to,
        ports,
        steps: Vec::new(),
    };
    let from_head = m.held(from).await?;
    let to_head = m.head(to).await?;

    // A crashed run's work, finished (only while the registry still records this move): the
    // target already promoted, or the source already fenced.
    let registered = ports
        .registry
        .get(tenant)
        .await
        .map_err(RegistryError::from)?;
    let resuming = registered
        .as_ref()
        .is_some_and(|p| p.state == PlacementState::Migrating { to: to.id.clone() });
    if resuming
        && let Some(t) = &to_head
        && t.role == TenantRole::Primary
        && t.primary == to.id
        && from_head.primary == to.id
        && from_head.epoch == t.epoch
    {
        m.switch_registry(t.epoch).await?;
        return Ok(report(m, from_head.epoch - 1, t.epoch, t.position, 0));
    }
    if resuming
        && from_head.role == TenantRole::Standby
        && from_head.primary == to.id
        && let Some(t) = &to_head
        && t.role == TenantRole::Standby
        && t.epoch + 1 == from_head.epoch
        && t.position == from_head.position
    {
        m.steps
            .push("resuming: the source was already fenced".into());
        m.promote(t, from_head.epoch, from_head.position).await?;
        m.switch_registry(from_head.epoch).await?;
        return Ok(report(m, t.epoch, from_head.epoch, from_head.position, 0));
    }

    match from_head.role {
        TenantRole::Primary | TenantRole::Frozen => {}
        role => {
            return Err(MigrationError::SourceNotPrimary {
                cell: from.id.clone(),
                role,
                epoch: from_head.epoch,
            });
        }
    }
    if let Some(t) = &to_head
        && !(t.role == TenantRole::Standby && t.primary == from.id)
    {
        return Err(MigrationError::TargetNotStandby {
            cell: to.id.clone(),
            role: t.role,
            primary: t.primary.clone(),
            from: from.id.clone(),
        });
    }
    let placement = m.placement(&from_head).await?;
    if placement.primary != from.id || placement.epoch != from_head.epoch {
        return Err(RegistryError::Conflict {
            current: Some(Box::new(placement)),
        }
        .into());
    }
    let target = to.id.clone();
    m.set_registry(
        |p| p.state = PlacementState::Migrating { to: target },
        &format!("registry: migrating to {}", to.id),
    )
    .await?;

    // Freeze (or renew a crashed run's freeze). Under load the head moves with every write: read it
    // again and try again, as long as the cell is still this epoch's primary.
    let lease = millis(policy.freeze_lease);
    let mut current = from_head.clone();
    let mut attempts = 0;
    let (frozen_at, mut frozen) = loop {
        let now = ports.clock.now();
        let frozen = TenantHead {
            role: TenantRole::Frozen,
            lease_until: Some(now.plus_millis(lease)),
            ..current.clone()
        };
        if m.swap(from, &current, frozen.clone()).await? {
            break (now, frozen);
        }
        attempts += 1;
        current = m.held(from).await?;
        let still_primary = matches!(current.role, TenantRole::Primary | TenantRole::Frozen)
            && current.epoch == from_head.epoch;
        if !still_primary || attempts >= FREEZE_ATTEMPTS {
            m.registry_back().await;
            return Err(MigrationError::Concurrent {
                cell: from.id.clone(),
                detail: format!(
                    "its head kept moving ({attempts} attempts to freeze it; now {} at epoch {})",
                    current.role, current.epoch
                ),
            });
        }
    };
    m.steps.push(format!(
        "froze {} at seq {} (lease {} ms)",
        from.id, frozen.position.seq, lease
    ));

    // Wait for the target to hold exactly what the source committed.
    let to_head = loop {
        let now = ports.clock.now();
        let waited = now.unix_millis() - frozen_at.unix_millis();
        let current = m.head(to).await?;
        if let Some(t) = &current
            && t.position == frozen.position
        {
            if t.role != TenantRole::Standby || t.primary != from.id {
                m.rollback(&frozen).await?;
                return Err(MigrationError::Concurrent {
                    cell: to.id.clone(),
                    detail: format!("it became {} following {}", t.role, t.primary),
                });
            }
            m.steps.push(format!(
                "{} caught up: seq {} digest {} after {waited} ms",
                to.id, frozen.position.seq, frozen.position.digest
            ));
            break current;
        }
        if waited >= millis(policy.catch_up_timeout) {
            m.rollback(&frozen).await?;
            return Err(MigrationError::NotCaughtUp {
                from: from.id.clone(),
                to: to.id.clone(),
                primary: frozen.position,
                target: current.map_or(Position::GENESIS, |t| t.position),
                waited_millis: waited,
            });
        }
        // Renew the lease well before it lapses (half of it left).
        if frozen
            .lease_until
            .is_some_and(|until| until.unix_millis() - now.unix_millis() < lease / 2)
        {
            let renewed = TenantHead {
                lease_until: Some(now.plus_millis(lease)),
                ..frozen.clone()
            };
            if !m.swap(from, &frozen, renewed.clone()).await? {
                m.registry_back().await;
                return Err(MigrationError::FreezeLapsed {
                    from: from.id.clone(),
                });
            }
            frozen = renewed;
        }
        ports.sleep.sleep(policy.poll).await;
    };
    let to_head = to_head.ok_or_else(|| MigrationError::NotHeld {
        cell: to.id.clone(),
        tenant: tenant.clone(),
    })?;

    // Fence the source first: no instant with two primaries.
    let epoch = frozen.epoch + 1;
    let fenced = TenantHead {
        role: TenantRole::Standby,
        epoch,
        primary: to.id.clone(),
        epoch_start: frozen.position.seq,
        lease_until: None,
        ..frozen.clone()
    };
    if !m.swap(from, &frozen, fenced).await? {
        m.registry_back().await;
        return Err(MigrationError::FreezeLapsed {
            from: from.id.clone(),
        });
    }
    m.steps.push(format!(
        "fenced {}: standby of {} at epoch {epoch}",
        from.id, to.id
    ));
    m.promote(&to_head, epoch, frozen.position).await?;
    let paused = ports.clock.now().unix_millis() - frozen_at.unix_millis();
    m.switch_registry(epoch).await?;
    Ok(report(m, frozen.epoch, epoch, frozen.position, paused))
}

impl Move<'_> {
    /// Gives the source its writes back (and the registry its state) after a failed wait.
    async fn rollback(&mut self, frozen: &TenantHead) -> Result<(), MigrationError> {
        thaw(self.from.store.as_ref(), frozen)
            .await
            .map_err(|error| MigrationError::Store {
                cell: self.from.id.clone(),
                error,
            })?;
        self.steps
            .push(format!("rolled back: {} is primary again", self.from.id));
        self.registry_back().await;
        Ok(())
    }
}

fn report(
    m: Move<'_>,
    before: u64,
    after: u64,
    position: Position,
    paused: i64,
) -> MigrationReport {
    MigrationReport {
        tenant: m.tenant.clone(),
        from: m.from.id.clone(),
        to: m.to.id.clone(),
        epochs: (before, after),
        position,
        writes_paused_millis: paused,
        steps: m.steps,
    }
}
