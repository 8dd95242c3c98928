//! A cell under its cell lease from the placement quorum ([`LeaseGate`]): it books only while its
//! one lease holds (renewed inline, once per interval whatever the number of tenants), refuses past
//! the stop point when the quorum is out of reach, answers `503` for a commit that returned after
//! the deadline (committed, replayed to a retry under the same key, never acknowledged late), stops
//! at once when revoked, and fences itself for a tenant moved while it was revoked.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use paracell_domain::http::{ApiRequest, ApiResponse};
use paracell_domain::memory::MemoryStore;
use paracell_domain::placement::TenantRole;
use paracell_domain::placement::quorum::lease::{self, LeaseChange};
use paracell_domain::placement::quorum::{
    LeaseGate, LeaseHolder, LeaseTiming, MemoryAcceptor, QuorumRegistry, memory_quorum,
};
use paracell_domain::placement::registry::{Placement, PlacementRegistry};
use paracell_domain::ports::{MonotonicClock, StoreError, SystemClock, TransactionStore, UuidV7};
use paracell_domain::testing::block_on;
use paracell_domain::testing::faults::{Faults, FaultyStore, Operation};
use paracell_domain::{Cell, CellConfig, CellId, CellPorts, TenantId, TenantScope};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A monotonic clock the test moves.
#[derive(Default)]
struct Manual(Mutex<Duration>);

impl Manual {
    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl MonotonicClock for Manual {
    fn now(&self) -> Duration {
        *self.0.lock().unwrap()
    }
}

/// Commits that take `commit_takes_ms` on the cell's monotonic clock to answer (a store link
/// delayed, not cut).
struct SlowCommits {
    clock: Arc<Manual>,
    commit_takes_ms: AtomicU64,
}

impl Faults for SlowCommits {
    fn before(&self, _: Operation) -> Result<(), StoreError> {
        Ok(())
    }

    fn after_commit(&self) {
        self.clock.advance(Duration::from_millis(
            self.commit_takes_ms.load(Ordering::SeqCst),
        ));
    }
}

struct World {
    cell: Cell,
    clock: Arc<Manual>,
    store: Arc<FaultyStore<SlowCommits>>,
    acceptors: Vec<Arc<MemoryAcceptor>>,
    quorum: Arc<QuorumRegistry>,
}

fn cell_a() -> CellId {
    CellId::parse("cell-a").unwrap()
}

fn setup() -> World {
    let clock = Arc::new(Manual::default());
    let (acceptors, quorum) = memory_quorum(1);
    let quorum = Arc::new(quorum);
    let gate = LeaseGate::new(
        cell_a(),
        Arc::clone(&quorum),
        clock.clone(),
        LeaseHolder::new(LeaseTiming::default()),
    );
    let store = Arc::new(FaultyStore::new(
        Arc::new(MemoryStore::new()),
        SlowCommits {
            clock: clock.clone(),
            commit_takes_ms: AtomicU64::new(0),
        },
    ));
    let cell = Cell::new(
        CellConfig::new("cell-a", TenantScope::All).unwrap(),
        CellPorts {
            store: store.clone(),
            clock: Arc::new(SystemClock),
            ids: Arc::new(UuidV7),
        },
    )
    .with_lease_gate(Arc::new(gate));
    World {
        cell,
        clock,
        store,
        acceptors,
        quorum,
    }
}

fn create(cell: &Cell, tenant: &str, key: &str) -> ApiResponse {
    block_on(
        cell.handle(
            ApiRequest::new("POST", "/v1/transactions")
                .with_header("content-type", "application/json")
                .with_header("x-tenant-id", tenant)
                .with_header("idempotency-key", key)
                .with_body(
                    br#"{"account_id":"ACC-1","type":"credit","amount":"1.00","currency":"EUR"}"#
                        .to_vec(),
                ),
        ),
    )
}

fn lease_seq(quorum: &QuorumRegistry) -> u64 {
    block_on(lease::read(quorum, &cell_a()))
        .unwrap()
        .unwrap()
        .seq
}

fn problem_type(r: &ApiResponse) -> String {
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    body["type"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn renewals_do_not_grow_with_tenants() {
    let w = setup();
    for t in 0..50 {
        for k in 0..2 {
            let r = create(&w.cell, &format!("coop-{t}"), &format!("k-{t}-{k}"));
            assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        }
        w.clock.advance(Duration::from_millis(100));
    }
    // 100 writes for 50 tenants over 5 s: two renewals (at 0 s and at 4 s), not one per tenant.
    assert_eq!(lease_seq(&w.quorum), 2);
}

#[test]
fn cut_off_from_the_quorum_the_cell_stops_before_the_deadline() {
    let w = setup();
    assert_eq!(create(&w.cell, "coop-1", "a").status, 201);
    w.acceptors[0].set_reachable(false);
    w.acceptors[1].set_reachable(false);
    // Renewals fail from 4 s on; the renewal sent at 0 s holds until its stop point, 9.994 s.
    w.clock.advance(Duration::from_millis(9_900));
    assert_eq!(create(&w.cell, "coop-1", "b").status, 201);
    w.clock.advance(Duration::from_millis(100));
    let refused = create(&w.cell, "coop-1", "c");
    assert_eq!(refused.status, 503);
    assert!(problem_type(&refused).ends_with("tenant-ownership-unconfirmed"));
    assert_eq!(refused.header("retry-after"), Some("1"));
    // The quorum is back. A failed renewal is retried after a quarter of the interval (1 s), not
    // on every request: until then the cell still refuses; then it renews and books.
    w.acceptors[1].set_reachable(true);
    assert_eq!(create(&w.cell, "coop-1", "c").status, 503);
    w.clock.advance(Duration::from_secs(1));
    assert_eq!(create(&w.cell, "coop-1", "c").status, 201);
}

#[test]
fn a_commit_back_after_the_deadline_is_not_acknowledged_and_replays_once_renewed() {
    let w = setup();
    assert_eq!(create(&w.cell, "coop-1", "a").status, 201);
    // The store link is slow: this commit starts at 9.9 s (before the stop point) and returns at
    // 12.9 s, past the 11.994 s deadline. Renewals fail meanwhile.
    w.acceptors[0].set_reachable(false);
    w.acceptors[1].set_reachable(false);
    w.clock.advance(Duration::from_millis(9_900));
    w.store
        .faults()
        .commit_takes_ms
        .store(3_000, Ordering::SeqCst);
    let late = create(&w.cell, "coop-1", "late");
    assert_eq!(late.status, 503, "{}", String::from_utf8_lossy(&late.body));
    assert!(problem_type(&late).ends_with("tenant-ownership-unconfirmed"));
    assert!(
        late.telemetry
            .cause
            .as_deref()
            .is_some_and(|c| c.starts_with("commit-past-lease: entry 2")),
        "{:?}",
        late.telemetry.cause
    );
    // It is committed here (the store cannot see the time): entry 2 exists.
    let tenant = TenantId::parse("coop-1").unwrap();
    assert!(block_on(w.store.entry(&tenant, 2)).unwrap().is_some());
    // Quorum back, store fast again: a retry under the same key replays the booked outcome.
    w.acceptors[0].set_reachable(true);
    w.store.faults().commit_takes_ms.store(0, Ordering::SeqCst);
    let retry = create(&w.cell, "coop-1", "late");
    assert_eq!(retry.status, 201);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
}

#[test]
fn a_revoked_cell_stops_at_once_and_fences_itself_for_a_tenant_moved_meanwhile() {
    let w = setup();
    assert_eq!(create(&w.cell, "coop-1", "a").status, 201);
    let tenant = TenantId::parse("coop-1").unwrap();
    let placed = Placement::new(tenant.clone(), cell_a(), 1, vec![]);
    block_on(w.quorum.put(None, &placed)).unwrap();
    // A promoter revokes the lease at the counter it saw (seq 1).
    let revoked = block_on(lease::revoke(&w.quorum, &cell_a(), 1)).unwrap();
    assert!(matches!(revoked, LeaseChange::Applied(ref l) if l.revoked));
    // The next renewal (due at 4 s) learns it: refused from then on, whatever the deadline.
    w.clock.advance(Duration::from_secs(4));
    let r = create(&w.cell, "coop-1", "b");
    assert_eq!(r.status, 503);
    // The tenant is promoted on cell-b at epoch 2, then the control plane grants cell-a a new tenure.
    let moved = placed.next(|p| {
        p.primary = CellId::parse("cell-b").unwrap();
        p.epoch = 2;
    });
    block_on(w.quorum.put(Some(1), &moved)).unwrap();
    block_on(lease::reinstate(&w.quorum, &cell_a(), 1)).unwrap();
    w.clock.advance(Duration::from_secs(4));
    // In the new tenure the cell re-confirms the tenant, finds it moved, and fences itself.
    let r = create(&w.cell, "coop-1", "c");
    assert_eq!(r.status, 421, "{}", String::from_utf8_lossy(&r.body));
    let head = block_on(w.store.head(&tenant)).unwrap().unwrap();
    assert_eq!(
        (head.role, head.epoch, head.primary.as_str()),
        (TenantRole::Fenced, 2, "cell-b")
    );
    // A tenant still placed here books as before.
    assert_eq!(create(&w.cell, "coop-2", "d").status, 201);
}
