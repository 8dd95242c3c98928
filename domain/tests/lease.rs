//! Primary leases: a registered tenant's primary books only while its lease, confirmed from the
//! registry, holds; it fences itself when the registry names another primary; it refuses writes when
//! the lease lapsed and the registry cannot be reached.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use paracell_domain::http::ApiRequest;
use paracell_domain::memory::ManualClock;
use paracell_domain::placement::TenantRole;
use paracell_domain::placement::lease::{Ownership, PlacementSource};
use paracell_domain::placement::registry::{
    MemoryRegistry, Placement, PlacementRegistry, RegistryError,
};
use paracell_domain::ports::{Clock, StoreError, UuidV7};
use paracell_domain::testing::block_on;
use paracell_domain::{Cell, CellConfig, CellId, CellPorts, TenantId, TenantScope};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A registry that can be cut off.
#[derive(Default)]
struct Flaky {
    inner: MemoryRegistry,
    down: AtomicBool,
}

#[async_trait::async_trait]
impl PlacementRegistry for Flaky {
    async fn get(&self, tenant: &TenantId) -> Result<Option<Placement>, StoreError> {
        if self.down.load(Ordering::Relaxed) {
            return Err(StoreError::Unavailable {
                retry_after_secs: 1,
                detail: "cut off".into(),
            });
        }
        self.inner.get(tenant).await
    }
    async fn put(&self, expected: Option<u64>, p: &Placement) -> Result<(), RegistryError> {
        self.inner.put(expected, p).await
    }
}

fn setup() -> (Cell, Arc<ManualClock>, Arc<Flaky>) {
    let clock = Arc::new(ManualClock::default());
    let registry = Arc::new(Flaky::default());
    let cell = Cell::new(
        CellConfig::new("cell-a", TenantScope::All).unwrap(),
        CellPorts {
            store: Arc::new(paracell_domain::memory::MemoryStore::new()),
            clock: clock.clone(),
            ids: Arc::new(UuidV7),
        },
    )
    .with_ownership(Ownership {
        source: PlacementSource::Registry(registry.clone()),
        ttl: Duration::from_secs(30),
    });
    (cell, clock, registry)
}

fn create(cell: &Cell, key: &str) -> (u16, String) {
    let r = block_on(
        cell.handle(
            ApiRequest::new("POST", "/v1/transactions")
                .with_header("content-type", "application/json")
                .with_header("x-tenant-id", "coop-1")
                .with_header("idempotency-key", key)
                .with_body(
                    br#"{"account_id":"ACC-1","type":"credit","amount":"1.00","currency":"EUR"}"#
                        .to_vec(),
                ),
        ),
    );
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

fn tenant() -> TenantId {
    TenantId::parse("coop-1").unwrap()
}

fn head(cell: &Cell) -> paracell_domain::placement::TenantHead {
    block_on(cell.ports().store.head(&tenant()))
        .unwrap()
        .unwrap()
}

fn advance(clock: &ManualClock, secs: u64) {
    clock.advance(Duration::from_secs(secs));
}

#[test]
fn an_unregistered_tenant_books_without_a_lease() {
    let (cell, _, _) = setup();
    assert_eq!(create(&cell, "k-1").0, 201);
    assert_eq!(head(&cell).lease_until, None);
}

#[test]
fn a_registered_primary_takes_and_renews_its_lease_from_the_registry() {
    let (cell, clock, registry) = setup();
    assert_eq!(create(&cell, "k-1").0, 201);
    let placed = Placement::new(tenant(), CellId::parse("cell-a").unwrap(), 1, vec![]);
    block_on(registry.put(None, &placed)).unwrap();
    assert_eq!(create(&cell, "k-2").0, 201);
    let first = head(&cell).lease_until.expect("a lease once registered");
    assert_eq!(first, clock.now().plus_millis(30_000));
    advance(&clock, 10);
    assert_eq!(create(&cell, "k-3").0, 201);
    assert_eq!(
        head(&cell).lease_until,
        Some(first),
        "not renewed while more than half is left"
    );
    advance(&clock, 10);
    assert_eq!(create(&cell, "k-4").0, 201);
    assert_eq!(
        head(&cell).lease_until,
        Some(clock.now().plus_millis(30_000)),
        "renewed"
    );
}

#[test]
fn a_primary_that_cannot_reach_the_registry_stops_when_its_lease_lapses() {
    let (cell, clock, registry) = setup();
    assert_eq!(create(&cell, "k-1").0, 201);
    block_on(registry.put(
        None,
        &Placement::new(tenant(), CellId::parse("cell-a").unwrap(), 1, vec![]),
    ))
    .unwrap();
    assert_eq!(create(&cell, "k-2").0, 201);
    registry.down.store(true, Ordering::Relaxed);
    advance(&clock, 20);
    assert_eq!(create(&cell, "k-3").0, 201, "the lease still holds");
    advance(&clock, 10);
    let (status, body) = create(&cell, "k-4");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("tenant-ownership-unconfirmed"), "{body}");
    registry.down.store(false, Ordering::Relaxed);
    assert_eq!(
        create(&cell, "k-4").0,
        201,
        "renewed once the registry answers; the key was not claimed"
    );
}

#[test]
fn a_primary_that_learns_of_a_promotion_fences_itself_and_names_the_new_primary() {
    let (cell, clock, registry) = setup();
    assert_eq!(create(&cell, "k-1").0, 201);
    let placed = Placement::new(tenant(), CellId::parse("cell-a").unwrap(), 1, vec![]);
    block_on(registry.put(None, &placed)).unwrap();
    assert_eq!(create(&cell, "k-2").0, 201);
    let moved = placed.next(|p| {
        p.primary = CellId::parse("cell-b").unwrap();
        p.epoch = 2;
    });
    block_on(registry.put(Some(1), &moved)).unwrap();
    assert_eq!(
        create(&cell, "k-3").0,
        201,
        "it does not know yet: its lease holds"
    );
    advance(&clock, 16);
    let (status, body) = create(&cell, "k-4");
    assert_eq!(status, 421, "{body}");
    assert!(
        body.contains(r#""primary_cell":"cell-b""#) && body.contains(r#""epoch":2"#),
        "{body}"
    );
    assert_eq!(
        (head(&cell).role, head(&cell).epoch),
        (TenantRole::Fenced, 2)
    );
}
