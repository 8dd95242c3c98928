//! Moving from the one-table registry to the quorum: each tenant's record is copied, its epoch,
//! primary, standbys and state unchanged (the epoch is what every cell fences by; the version
//! restarts at 1 in the quorum, which counts its own writes).
//!
//! The procedure (`docs/failover.md`): stop moving tenants; `paracell-admin quorum import` every
//! tenant; switch the cells to `PARACELL_PLACEMENT_SOURCE=quorum` one at a time (a cell in its first
//! tenure confirms each tenant against the quorum before booking for it); switch the operator's
//! `PARACELL_REGISTRY` to `quorum`. Running the import again is harmless: a record already in the
//! quorum at the same epoch and primary is left as it is, and one that differs is reported, never
//! overwritten.

use crate::placement::registry::{Placement, PlacementRegistry, RegistryError};
use crate::ports::StoreError;
use crate::tenancy::TenantId;

/// What the import did for one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Imported {
    /// Copied into the quorum.
    Copied(Placement),
    /// The quorum already holds the same placement (epoch, primary, standbys, state).
    AlreadyThere(Placement),
    /// The quorum holds a different placement: nothing written; an operator decides.
    Differs {
        /// The one-table registry's record.
        source: Placement,
        /// The quorum's.
        quorum: Placement,
    },
    /// The one-table registry has no record of the tenant (implicit placement): nothing to copy.
    NotRegistered,
}

/// Copies `tenant`'s record from `source` into `quorum` (see the module's rules).
pub async fn import(
    source: &dyn PlacementRegistry,
    quorum: &dyn PlacementRegistry,
    tenant: &TenantId,
) -> Result<Imported, StoreError> {
    let Some(record) = source.get(tenant).await? else {
        return Ok(Imported::NotRegistered);
    };
    let copy = Placement {
        version: 1,
        ..record.clone()
    };
    let same = |held: &Placement| {
        held.epoch == copy.epoch
            && held.primary == copy.primary
            && held.standbys == copy.standbys
            && held.state == copy.state
    };
    match quorum.put(None, &copy).await {
        Ok(()) => Ok(Imported::Copied(copy)),
        Err(RegistryError::Conflict {
            current: Some(held),
        }) if same(&held) => Ok(Imported::AlreadyThere(*held)),
        Err(RegistryError::Conflict {
            current: Some(held),
        }) => Ok(Imported::Differs {
            source: record,
            quorum: *held,
        }),
        Err(RegistryError::Store(e)) => Err(e),
        Err(other) => Err(StoreError::Failed(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::super::QuorumRegistry;
    use super::*;
    use crate::placement::registry::MemoryRegistry;
    use crate::tenancy::CellId;
    use crate::testing::block_on;

    fn quorum() -> QuorumRegistry {
        super::super::memory_quorum(1).1
    }

    #[test]
    fn records_are_copied_once_with_their_epoch_and_differences_are_reported() {
        let (source, quorum) = (MemoryRegistry::new(), quorum());
        let tenant = TenantId::parse("coop-1").unwrap();
        let first = Placement::new(tenant.clone(), CellId::parse("aws-1").unwrap(), 1, vec![]);
        block_on(source.put(None, &first)).unwrap();
        let moved = first.next(|p| {
            p.primary = CellId::parse("azure-1").unwrap();
            p.epoch = 4;
        });
        block_on(source.put(Some(1), &moved)).unwrap();

        let copied = block_on(import(&source, &quorum, &tenant)).unwrap();
        let Imported::Copied(copy) = copied else {
            panic!("{copied:?}")
        };
        assert_eq!(
            (copy.epoch, copy.version, copy.primary.as_str()),
            (4, 1, "azure-1")
        );
        assert_eq!(block_on(quorum.get(&tenant)).unwrap(), Some(copy.clone()));
        // Again: nothing changes.
        assert_eq!(
            block_on(import(&source, &quorum, &tenant)).unwrap(),
            Imported::AlreadyThere(copy.clone())
        );
        // The quorum moved on (a move after the switch); the stale source is reported, not copied.
        let later = copy.next(|p| p.epoch = 5);
        block_on(quorum.put(Some(1), &later)).unwrap();
        assert!(matches!(
            block_on(import(&source, &quorum, &tenant)).unwrap(),
            Imported::Differs { .. }
        ));
        assert_eq!(block_on(quorum.get(&tenant)).unwrap(), Some(later));
        assert_eq!(
            block_on(import(
                &source,
                &quorum,
                &TenantId::parse("coop-9").unwrap()
            ))
            .unwrap(),
            Imported::NotRegistered
        );
    }
}
