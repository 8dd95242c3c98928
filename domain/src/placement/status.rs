//! `status`: where a tenant stands on every cell the operator reaches, next to the registry's record.

use super::migrate::CellHandle;
use super::registry::{Placement, PlacementRegistry};
use super::{TenantHead, TenantRole};
use crate::ports::{Clock, StoreError};
use crate::tenancy::{CellId, TenantId};

/// One cell's view of the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellStatus {
    /// The cell.
    pub cell: CellId,
    /// Its head (`None`: it holds nothing of the tenant).
    pub head: Option<TenantHead>,
    /// Entries the primary committed that this cell has not applied (0 on the primary).
    pub lag_entries: u64,
    /// How old the oldest of them is, in milliseconds (0 when none).
    pub lag_millis: i64,
}

/// A tenant's placement and every reachable cell's view of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantStatus {
    /// The tenant.
    pub tenant: TenantId,
    /// The registry's record.
    pub placement: Option<Placement>,
    /// Each cell, in the order given.
    pub cells: Vec<CellStatus>,
}

/// Reads the registry and every cell's head; the lag of each standby is measured against the cell
/// that holds the tenant as primary (or frozen), in entries and in the age of the oldest entry it
/// lacks.
pub async fn tenant_status(
    tenant: &TenantId,
    cells: &[CellHandle],
    registry: &dyn PlacementRegistry,
    clock: &dyn Clock,
) -> Result<TenantStatus, StoreError> {
    let placement = registry.get(tenant).await?;
    let mut heads = Vec::with_capacity(cells.len());
    for cell in cells {
        heads.push(cell.store.head(tenant).await?);
    }
    let primary = cells.iter().zip(&heads).find(|(_, h)| {
        h.as_ref()
            .is_some_and(|h| matches!(h.role, TenantRole::Primary | TenantRole::Frozen))
    });
    let now = clock.now();
    let mut out = Vec::with_capacity(cells.len());
    for (cell, head) in cells.iter().zip(heads.iter()) {
        let mut status = CellStatus {
            cell: cell.id.clone(),
            head: head.clone(),
            lag_entries: 0,
            lag_millis: 0,
        };
        if let Some((primary_cell, Some(primary_head))) = primary.map(|(c, h)| (c, h.as_ref()))
            && primary_cell.id != cell.id
        {
            let applied = head.as_ref().map_or(0, |h| h.position.seq);
            status.lag_entries = primary_head.position.seq.saturating_sub(applied);
            if status.lag_entries > 0
                && let Some(oldest) = primary_cell.store.entry(tenant, applied + 1).await?
            {
                status.lag_millis = now.unix_millis() - oldest.entry().time.unix_millis();
            }
        }
        out.push(status);
    }
    Ok(TenantStatus {
        tenant: tenant.clone(),
        placement,
        cells: out,
    })
}
