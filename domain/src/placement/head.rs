use crate::replication::Position;
use crate::tenancy::{CellId, TenantId};
use crate::time::Timestamp;
use std::fmt;

/// What a cell is for a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TenantRole {
    /// Books the tenant's writes and replicates them.
    Primary,
    /// A primary that has stopped booking for a planned migration (writes answer 503, reads are served).
    Frozen,
    /// Follows the primary: applies its replication entries, refuses writes with 421, serves reads.
    Standby,
    /// No longer holds the tenant: another cell was promoted. Refuses writes with 421.
    Fenced,
}

impl TenantRole {
    /// `primary`, `frozen`, `standby` or `fenced`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::Frozen => "frozen",
            Self::Standby => "standby",
            Self::Fenced => "fenced",
        }
    }

    /// Parses [`TenantRole::as_str`]'s names.
    ///
    /// ```
    /// use paracell_domain::placement::TenantRole;
    /// assert_eq!(TenantRole::parse("standby"), Some(TenantRole::Standby));
    /// assert_eq!(TenantRole::parse("Standby"), None);
    /// ```
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Primary, Self::Frozen, Self::Standby, Self::Fenced]
            .into_iter()
            .find(|r| r.as_str() == text)
    }
}

impl fmt::Display for TenantRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A cell's record of one tenant, kept in the tenant's partition of the cell's own store so that it
/// takes part in every atomic write for the tenant.
///
/// `position` is how far the tenant's replication log goes here: on a primary, the last entry it
/// committed; on a standby, the last entry it applied. Two cells at the same position hold the same
/// state, by construction of the digest chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantHead {
    /// The tenant.
    pub tenant: TenantId,
    /// This cell's role.
    pub role: TenantRole,
    /// The generation of the tenant's placement this head belongs to; only ever grows.
    pub epoch: u64,
    /// The tenant's primary as this cell knows it (itself when primary or frozen).
    pub primary: CellId,
    /// The last entry committed (primary) or applied (standby).
    pub position: Position,
    /// The sequence number at which `epoch` began: entries of an older epoch beyond it were never
    /// part of this history (they are stale).
    pub epoch_start: u64,
    /// When the role lapses unless renewed. On a frozen head, when the freeze lapses (the cell then
    /// takes its writes back: a crashed operator never leaves a tenant frozen). On a primary under
    /// leases, when its ownership lapses: it books only before that instant and renews the lease from
    /// the placement registry, so an unplanned failover that waits the lease out can never leave two
    /// primaries. `None`: no lease (implicit placement, or a deployment without leases).
    pub lease_until: Option<Timestamp>,
}

impl TenantHead {
    /// The head a tenant's first write creates on a cell that had none (implicit placement): primary
    /// at epoch 1, nothing committed yet.
    pub fn first_primary(tenant: TenantId, cell: CellId) -> Self {
        Self {
            tenant,
            role: TenantRole::Primary,
            epoch: 1,
            primary: cell,
            position: Position::GENESIS,
            epoch_start: 0,
            lease_until: None,
        }
    }

    /// Whether this is a frozen head whose lease has lapsed at `now` (the cell may thaw it).
    ///
    /// ```
    /// use paracell_domain::placement::{TenantHead, TenantRole};
    /// use paracell_domain::{CellId, TenantId, Timestamp};
    /// let mut head = TenantHead::first_primary(TenantId::parse("coop-1").unwrap(), CellId::parse("a").unwrap());
    /// head.role = TenantRole::Frozen;
    /// head.lease_until = Some(Timestamp::from_unix_millis(1_000));
    /// assert!(!head.freeze_lapsed(Timestamp::from_unix_millis(999)));
    /// assert!(head.freeze_lapsed(Timestamp::from_unix_millis(1_000)));
    /// ```
    pub fn freeze_lapsed(&self, now: Timestamp) -> bool {
        self.role == TenantRole::Frozen && self.lease_until.is_some_and(|until| now >= until)
    }

    /// This head once the cell learns another cell, `primary`, holds the tenant at `epoch`: fenced,
    /// naming it (writes answer `421`), its position kept, no lease.
    pub(crate) fn fenced_for(&self, primary: &CellId, epoch: u64) -> TenantHead {
        TenantHead {
            role: TenantRole::Fenced,
            epoch,
            primary: primary.clone(),
            lease_until: None,
            ..self.clone()
        }
    }

    /// The guard a write must pass for this head to still be current.
    pub fn fence(&self) -> Fence {
        Fence::Head {
            epoch: self.epoch,
            seq: self.position.seq,
            role: self.role,
        }
    }
}

/// What a write expects the tenant's head to be when it lands: the store checks it inside the same
/// atomic write, never only before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fence {
    /// No head exists yet (the tenant's first write or first applied entry on this cell).
    Absent,
    /// The head still has this epoch, this role and this last sequence number.
    Head {
        /// Epoch read.
        epoch: u64,
        /// Last sequence number read.
        seq: u64,
        /// Role read.
        role: TenantRole,
    },
}

/// Takes a tenant's writes back after a freeze lapsed: the frozen head becomes primary again, at the
/// same epoch, by compare-and-set on exactly the head that was read. `None` when the head moved in
/// between (an operator finished the move, or another request thawed it first): read it again.
pub async fn thaw(
    store: &dyn crate::ports::TransactionStore,
    frozen: &TenantHead,
) -> Result<Option<TenantHead>, crate::ports::StoreError> {
    let thawed = TenantHead {
        role: TenantRole::Primary,
        lease_until: None,
        ..frozen.clone()
    };
    match store.put_head(frozen.fence(), thawed.clone()).await {
        Ok(()) => Ok(Some(thawed)),
        Err(crate::ports::CommitError::HeadMoved) => Ok(store
            .head(&frozen.tenant)
            .await?
            .filter(|h| h.role == TenantRole::Primary)),
        Err(crate::ports::CommitError::Store(e)) => Err(e),
        Err(other) => Err(crate::ports::StoreError::Failed(other.to_string())),
    }
}
