//! The placement registry: the one authority on where each tenant lives (its primary cell, the
//! epoch, the standbys, whether a move is under way), changed only by compare-and-set. Routers read
//! it; the failover operations write it. Its authority is DynamoDB (conditional writes); a Cosmos DB
//! replica fed from its stream serves the Azure side, and never goes back to a lower epoch
//! ([`replica_accepts`]).

use crate::ports::StoreError;
use crate::tenancy::{CellId, TenantId};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

/// Where a tenant's placement stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlacementState {
    /// Served by its primary.
    Active,
    /// A planned migration to `to` is under way (the primary may be frozen).
    Migrating {
        /// The target cell.
        to: CellId,
    },
    /// Promoted by an unplanned failover (`--allow-data-loss`): the old primary must be reconciled.
    FailedOver {
        /// The primary it replaced.
        from: CellId,
    },
}

impl fmt::Display for PlacementState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Active => f.write_str("active"),
            Self::Migrating { to } => write!(f, "migrating to {to}"),
            Self::FailedOver { from } => write!(f, "failed over from {from}"),
        }
    }
}

/// A tenant's placement, as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The tenant.
    pub tenant: TenantId,
    /// The cell that books its writes.
    pub primary: CellId,
    /// The placement's generation: raised by every promotion, never lowered.
    pub epoch: u64,
    /// Cells that follow the primary.
    pub standbys: Vec<CellId>,
    /// Whether a move is under way.
    pub state: PlacementState,
    /// The record's version: every write raises it by one (what compare-and-set compares).
    pub version: u64,
}

impl Placement {
    /// A first placement (version 1, active).
    pub fn new(tenant: TenantId, primary: CellId, epoch: u64, standbys: Vec<CellId>) -> Self {
        Self {
            tenant,
            primary,
            epoch,
            standbys,
            state: PlacementState::Active,
            version: 1,
        }
    }

    /// The record as one JSON document (what the stores keep and the replica receives):
    /// `{"tenant","primary","epoch","standbys":[…],"state":"active"|"migrating"|"failed-over",
    /// "state_cell"?,"version"}`.
    ///
    /// ```
    /// use paracell_domain::placement::registry::{Placement, PlacementState};
    /// use paracell_domain::{CellId, TenantId};
    /// let p = Placement::new(TenantId::parse("coop-1").unwrap(), CellId::parse("a").unwrap(), 2, vec![CellId::parse("b").unwrap()])
    ///     .next(|p| p.state = PlacementState::Migrating { to: CellId::parse("b").unwrap() });
    /// assert_eq!(p.render(), r#"{"tenant":"coop-1","primary":"a","epoch":2,"standbys":["b"],"state":"migrating","state_cell":"b","version":2}"#);
    /// assert_eq!(Placement::parse(&p.render()), Ok(p));
    /// ```
    pub fn render(&self) -> String {
        let (state, state_cell) = match &self.state {
            PlacementState::Active => ("active", None),
            PlacementState::Migrating { to } => ("migrating", Some(to.as_str())),
            PlacementState::FailedOver { from } => ("failed-over", Some(from.as_str())),
        };
        let doc = PlacementDoc {
            tenant: self.tenant.as_str(),
            primary: self.primary.as_str(),
            epoch: self.epoch,
            standbys: self.standbys.iter().map(CellId::as_str).collect(),
            state,
            state_cell,
            version: self.version,
        };
        serde_json::to_string(&doc).unwrap_or_default()
    }

    /// Reads [`Placement::render`]'s document back, every field through its own parser.
    pub fn parse(text: &str) -> Result<Self, crate::DecodeError> {
        let invalid = |detail: String| crate::DecodeError::new("placement", detail);
        let doc: PlacementDoc<'_> =
            serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let cell = |c: &str| CellId::parse(c).map_err(|e| invalid(format!("cell {c:?}: {e}")));
        let state_cell = || {
            doc.state_cell
                .ok_or_else(|| invalid(format!("state {} needs state_cell", doc.state)))
                .and_then(cell)
        };
        let state = match doc.state {
            "active" => PlacementState::Active,
            "migrating" => PlacementState::Migrating { to: state_cell()? },
            "failed-over" => PlacementState::FailedOver {
                from: state_cell()?,
            },
            other => return Err(invalid(format!("state {other:?}"))),
        };
        Ok(Self {
            tenant: TenantId::parse(doc.tenant).map_err(|e| invalid(format!("tenant: {e}")))?,
            primary: cell(doc.primary)?,
            epoch: doc.epoch,
            standbys: doc
                .standbys
                .into_iter()
                .map(cell)
                .collect::<Result<_, _>>()?,
            state,
            version: doc.version,
        })
    }

    /// The next version of this record, changed by `change`.
    #[must_use]
    pub fn next(&self, change: impl FnOnce(&mut Self)) -> Self {
        let mut next = self.clone();
        change(&mut next);
        next.version = self.version + 1;
        next
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct PlacementDoc<'a> {
    #[serde(borrow)]
    tenant: &'a str,
    primary: &'a str,
    epoch: u64,
    #[serde(borrow)]
    standbys: Vec<&'a str>,
    state: &'a str,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    state_cell: Option<&'a str>,
    version: u64,
}

/// Why a registry write did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The record is not the one expected (another operator, or a resumed one, changed it): read
    /// it again and decide again. `current` is what the registry holds.
    #[error("the placement changed (now {})", current.as_ref().map_or("absent".to_owned(), |p| format!("version {}, epoch {}", p.version, p.epoch)))]
    Conflict {
        /// What the registry holds now.
        current: Option<Box<Placement>>,
    },
    /// The write would lower the epoch.
    #[error("epoch {attempted} is lower than the registry's {held}")]
    EpochRegression {
        /// The epoch held.
        held: u64,
        /// The epoch written.
        attempted: u64,
    },
    /// The registry failed or is unreachable.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The registry port.
#[async_trait::async_trait]
pub trait PlacementRegistry: Send + Sync {
    /// The tenant's placement, if it has one.
    async fn get(&self, tenant: &TenantId) -> Result<Option<Placement>, StoreError>;

    /// Writes `placement` if the registry still holds version `expected` of the tenant's record
    /// (`None`: no record yet). `placement.version` must be `expected + 1` (or 1), and its epoch
    /// must not be lower than the one held.
    async fn put(&self, expected: Option<u64>, placement: &Placement) -> Result<(), RegistryError>;
}

/// A read replica of the registry (Cosmos DB on the Azure side), fed from the authority's change
/// stream: it keeps, per tenant, the newest record it was given ([`replica_accepts`]).
#[async_trait::async_trait]
pub trait PlacementReplica: Send + Sync {
    /// The tenant's placement as the replica last received it.
    async fn get(&self, tenant: &TenantId) -> Result<Option<Placement>, StoreError>;

    /// Keeps `placement` if it is newer than what the replica holds: `true` when stored, `false`
    /// when ignored (a redelivery, or an older change arriving late).
    async fn apply(&self, placement: &Placement) -> Result<bool, StoreError>;
}

/// A replica in memory (tests).
#[derive(Debug, Default)]
pub struct MemoryReplica {
    records: Mutex<BTreeMap<TenantId, Placement>>,
}

#[async_trait::async_trait]
impl PlacementReplica for MemoryReplica {
    async fn get(&self, tenant: &TenantId) -> Result<Option<Placement>, StoreError> {
        Ok(self
            .records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .cloned())
    }

    async fn apply(&self, placement: &Placement) -> Result<bool, StoreError> {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        if !replica_accepts(records.get(&placement.tenant), placement) {
            return Ok(false);
        }
        records.insert(placement.tenant.clone(), placement.clone());
        Ok(true)
    }
}

/// Whether a write of `incoming` over `held` is a valid compare-and-set, as every registry checks it.
pub fn check_write(
    held: Option<&Placement>,
    expected: Option<u64>,
    incoming: &Placement,
) -> Result<(), RegistryError> {
    if held.map(|p| p.version) != expected || incoming.version != expected.map_or(1, |v| v + 1) {
        return Err(RegistryError::Conflict {
            current: held.cloned().map(Box::new),
        });
    }
    match held {
        Some(h) if incoming.epoch < h.epoch => Err(RegistryError::EpochRegression {
            held: h.epoch,
            attempted: incoming.epoch,
        }),
        _ => Ok(()),
    }
}

/// Whether a read replica holding `held` takes `incoming` from the authority's change stream:
/// only a newer record (higher version) and never a lower epoch, so redelivered or reordered
/// changes cannot move a tenant back.
///
/// ```
/// use paracell_domain::placement::registry::{replica_accepts, Placement};
/// use paracell_domain::{CellId, TenantId};
/// let p = Placement::new(TenantId::parse("coop-1").unwrap(), CellId::parse("a").unwrap(), 1, vec![]);
/// let moved = p.next(|p| { p.primary = CellId::parse("b").unwrap(); p.epoch = 2; });
/// assert!(replica_accepts(Some(&p), &moved));
/// assert!(!replica_accepts(Some(&moved), &p), "an old change arriving late is ignored");
/// assert!(!replica_accepts(Some(&moved), &moved), "a redelivery changes nothing");
/// ```
pub fn replica_accepts(held: Option<&Placement>, incoming: &Placement) -> bool {
    held.is_none_or(|h| incoming.version > h.version && incoming.epoch >= h.epoch)
}

/// A registry in memory (tests, local runs, the drills).
#[derive(Debug, Default)]
pub struct MemoryRegistry {
    records: Mutex<BTreeMap<TenantId, Placement>>,
}

impl MemoryRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait::async_trait]
impl PlacementRegistry for MemoryRegistry {
    async fn get(&self, tenant: &TenantId) -> Result<Option<Placement>, StoreError> {
        Ok(self
            .records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .cloned())
    }

    async fn put(&self, expected: Option<u64>, placement: &Placement) -> Result<(), RegistryError> {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        check_write(records.get(&placement.tenant), expected, placement)?;
        records.insert(placement.tenant.clone(), placement.clone());
        Ok(())
    }
}

/// What one batch of the authority's changes did to the replica.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicationReport {
    /// Records stored.
    pub applied: usize,
    /// Records ignored (redelivered or older than what the replica holds).
    pub ignored: usize,
    /// The first record that could not be applied (its position in the stream, and why): it and
    /// everything after it must be delivered again, never dropped.
    pub first_failure: Option<(String, String)>,
}

/// Applies a batch of the authority's changes, in stream order, to the replica; stops at the first
/// record it cannot read or store (the stream retries from there; ordering within a tenant is kept).
/// `records` are `(stream position, the record or why it is unreadable)`; positions of records that
/// are not placements are left out by the caller.
///
/// ```
/// use paracell_domain::placement::registry::{replicate, MemoryReplica, Placement, PlacementReplica};
/// use paracell_domain::{CellId, TenantId, testing::block_on};
/// let p = Placement::new(TenantId::parse("coop-1").unwrap(), CellId::parse("a").unwrap(), 1, vec![]);
/// let replica = MemoryReplica::default();
/// let report = block_on(replicate(&[("1".into(), Ok(p.clone())), ("2".into(), Ok(p.clone())),
///     ("3".into(), Err("no doc".into()))], &replica));
/// assert_eq!((report.applied, report.ignored), (1, 1));
/// assert_eq!(report.first_failure, Some(("3".into(), "no doc".into())));
/// ```
pub async fn replicate(
    records: &[(String, Result<Placement, String>)],
    replica: &dyn PlacementReplica,
) -> ReplicationReport {
    let mut report = ReplicationReport::default();
    for (position, record) in records {
        let outcome = match record {
            Ok(placement) => replica.apply(placement).await.map_err(|e| e.to_string()),
            Err(reason) => Err(reason.clone()),
        };
        match outcome {
            Ok(true) => report.applied += 1,
            Ok(false) => report.ignored += 1,
            Err(reason) => {
                report.first_failure = Some((position.clone(), reason));
                break;
            }
        }
    }
    report
}
