//! The contract every [`PlacementRegistry`] must meet, written once and run against each one.
//!
//! ```
//! use paracell_domain::placement::registry::MemoryRegistry;
//! use paracell_domain::testing::{registry_contract, store_contract::ThreadExecutor};
//! registry_contract::run_all(&ThreadExecutor, &|| std::sync::Arc::new(MemoryRegistry::new()));
//! registry_contract::replica_keeps_the_newest_record(&ThreadExecutor, &paracell_domain::placement::registry::MemoryReplica::default());
//! ```

use super::store_contract::Executor;
use crate::placement::registry::{Placement, PlacementRegistry, PlacementState, RegistryError};
use crate::{CellId, TenantId};
use std::sync::Arc;

/// Builds a fresh, empty registry.
pub type RegistryFactory<'a> = &'a dyn Fn() -> Arc<dyn PlacementRegistry>;

fn cell(c: &str) -> CellId {
    CellId::parse(c).unwrap_or_else(|e| panic!("cell {c}: {e}"))
}

fn first() -> Placement {
    Placement::new(
        TenantId::parse("coop-1").unwrap_or_else(|e| panic!("{e}")),
        cell("cell-a"),
        1,
        vec![cell("cell-b")],
    )
}

/// Every check below.
pub fn run_all(rt: &impl Executor, make: RegistryFactory<'_>) {
    records_are_created_once_and_read_back(rt, make);
    writes_compare_the_version(rt, make);
    the_epoch_never_goes_back(rt, make);
    one_of_two_racing_writers_wins(rt, make);
}

/// A record is created only where none exists, and reads back field for field.
pub fn records_are_created_once_and_read_back(rt: &impl Executor, make: RegistryFactory<'_>) {
    let registry = make();
    let p = first();
    assert_eq!(rt.block_on(registry.get(&p.tenant)), Ok(None), "empty");
    rt.block_on(registry.put(None, &p))
        .unwrap_or_else(|e| panic!("create: {e}"));
    assert_eq!(rt.block_on(registry.get(&p.tenant)), Ok(Some(p.clone())));
    assert!(
        matches!(
            rt.block_on(registry.put(None, &p)),
            Err(RegistryError::Conflict { current: Some(_) })
        ),
        "created once"
    );
    let migrating = p.next(|p| {
        p.state = PlacementState::Migrating { to: cell("cell-b") };
    });
    rt.block_on(registry.put(Some(1), &migrating))
        .unwrap_or_else(|e| panic!("{e}"));
    let failed_over = migrating.next(|p| {
        p.primary = cell("cell-b");
        p.epoch = 2;
        p.standbys = vec![];
        p.state = PlacementState::FailedOver {
            from: cell("cell-a"),
        };
    });
    rt.block_on(registry.put(Some(2), &failed_over))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        rt.block_on(registry.get(&p.tenant)),
        Ok(Some(failed_over)),
        "every state and an empty standby list read back"
    );
}

/// A write names the version it read; a stale one is refused with what the registry holds.
pub fn writes_compare_the_version(rt: &impl Executor, make: RegistryFactory<'_>) {
    let registry = make();
    let p = first();
    rt.block_on(registry.put(None, &p))
        .unwrap_or_else(|e| panic!("{e}"));
    let v2 = p.next(|p| p.standbys.push(cell("cell-c")));
    rt.block_on(registry.put(Some(1), &v2))
        .unwrap_or_else(|e| panic!("{e}"));
    let stale = p.next(|p| p.primary = cell("cell-c"));
    match rt.block_on(registry.put(Some(1), &stale)) {
        Err(RegistryError::Conflict {
            current: Some(current),
        }) => {
            assert_eq!(*current, v2, "the conflict carries the current record");
        }
        other => panic!("a stale version must conflict, got {other:?}"),
    }
    let skipped = v2.next(|_| {}).next(|_| {});
    assert!(
        matches!(
            rt.block_on(registry.put(Some(2), &skipped)),
            Err(RegistryError::Conflict { .. })
        ),
        "the new version is the expected one plus one"
    );
}

/// No write lowers a tenant's epoch.
pub fn the_epoch_never_goes_back(rt: &impl Executor, make: RegistryFactory<'_>) {
    let registry = make();
    let p = first().next(|p| p.epoch = 5);
    let p = Placement { version: 1, ..p };
    rt.block_on(registry.put(None, &p))
        .unwrap_or_else(|e| panic!("{e}"));
    let lower = p.next(|p| p.epoch = 4);
    assert_eq!(
        rt.block_on(registry.put(Some(1), &lower)),
        Err(RegistryError::EpochRegression {
            held: 5,
            attempted: 4
        })
    );
}

/// Two writers that read the same version: exactly one wins.
pub fn one_of_two_racing_writers_wins(rt: &impl Executor, make: RegistryFactory<'_>) {
    let registry = make();
    let p = first();
    rt.block_on(registry.put(None, &p))
        .unwrap_or_else(|e| panic!("{e}"));
    let to_b = p.next(|p| {
        p.primary = cell("cell-b");
        p.epoch = 2;
    });
    let to_c = p.next(|p| {
        p.primary = cell("cell-c");
        p.epoch = 2;
    });
    let results = std::thread::scope(|s| {
        let a = s.spawn(|| rt.block_on(registry.put(Some(1), &to_b)));
        let b = s.spawn(|| rt.block_on(registry.put(Some(1), &to_c)));
        [a.join(), b.join()].map(|r| r.unwrap_or_else(|_| panic!("a writer panicked")))
    });
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "exactly one of two racing writers wins: {results:?}"
    );
}

/// The contract of a [`PlacementReplica`](crate::placement::registry::PlacementReplica): it keeps
/// the newest record per tenant whatever order and how many times the changes arrive.
pub fn replica_keeps_the_newest_record(
    rt: &impl Executor,
    replica: &dyn crate::placement::registry::PlacementReplica,
) {
    let p1 = first();
    let p2 = p1.next(|p| p.state = PlacementState::Migrating { to: cell("cell-b") });
    let p3 = p2.next(|p| {
        p.primary = cell("cell-b");
        p.epoch = 2;
        p.state = PlacementState::Active;
    });
    assert_eq!(rt.block_on(replica.get(&p1.tenant)), Ok(None));
    for (change, applied) in [
        (&p1, true),
        (&p3, true),
        (&p2, false),
        (&p3, false),
        (&p1, false),
    ] {
        assert_eq!(
            rt.block_on(replica.apply(change)),
            Ok(applied),
            "version {} after the newest",
            change.version
        );
    }
    assert_eq!(
        rt.block_on(replica.get(&p1.tenant)),
        Ok(Some(p3)),
        "the newest record"
    );
}
