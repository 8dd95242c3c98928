//! Unplanned failover under primary leases, then reconciliation of the returning primary: the old
//! primary books until its lease lapses and no longer; the standby is promoted only after that; what
//! the old primary committed beyond the standby's position is reported exactly and classified.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use paracell_domain::http::ApiRequest;
use paracell_domain::memory::{ManualClock, MemoryStore};
use paracell_domain::placement::TenantRole;
use paracell_domain::placement::failover::{FailoverPolicy, failover};
use paracell_domain::placement::lease::{Ownership, PlacementSource};
use paracell_domain::placement::migrate::{CellHandle, MovePorts};
use paracell_domain::placement::reconcile::{TailClass, reconcile};
use paracell_domain::placement::registry::{
    MemoryRegistry, Placement, PlacementRegistry, PlacementState,
};
use paracell_domain::ports::{Clock, Sleep, StoreError, UuidV7};
use paracell_domain::testing::faults::{Faults, FaultyStore, Operation};
use paracell_domain::testing::{block_on, replicate};
use paracell_domain::{Cell, CellConfig, CellId, CellPorts, TenantId, TenantScope};
use std::sync::Arc;
use std::time::Duration;

/// Waiting moves the clock (and nothing else: the old primary is partitioned).
struct Advance(Arc<ManualClock>);

#[async_trait::async_trait]
impl Sleep for Advance {
    async fn sleep(&self, d: Duration) {
        self.0.advance(d);
    }
}

fn cell(id: &str, clock: &Arc<ManualClock>, registry: &Arc<MemoryRegistry>) -> Cell {
    Cell::new(
        CellConfig::new(id, TenantScope::All).unwrap(),
        CellPorts {
            store: Arc::new(paracell_domain::memory::MemoryStore::new()),
            clock: clock.clone(),
            ids: Arc::new(UuidV7),
        },
    )
    .with_ownership(Ownership {
        source: PlacementSource::Registry(registry.clone()),
        ttl: Duration::from_secs(30),
    })
}

fn create(cell: &Cell, key: &str, kind: &str, amount: &str) -> (u16, String) {
    let r = block_on(cell.handle(
        ApiRequest::new("POST", "/v1/transactions")
            .with_header("content-type", "application/json")
            .with_header("x-tenant-id", "coop-1")
            .with_header("idempotency-key", key)
            .with_body(
                format!(r#"{{"account_id":"ACC-1","type":"{kind}","amount":"{amount}","currency":"EUR"}}"#)
                    .into_bytes(),
            ),
    ));
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

fn tenant() -> TenantId {
    TenantId::parse("coop-1").unwrap()
}

fn handle(c: &Cell) -> CellHandle {
    CellHandle {
        id: c.config().cell_id.clone(),
        store: c.ports().store.clone(),
    }
}

#[test]
fn a_failover_waits_out_the_lease_and_reconciliation_classifies_the_tail() {
    let clock = Arc::new(ManualClock::default());
    let registry = Arc::new(MemoryRegistry::new());
    let (a, b) = (
        cell("cell-a", &clock, &registry),
        cell("cell-b", &clock, &registry),
    );
    block_on(registry.put(
        None,
        &Placement::new(
            tenant(),
            CellId::parse("cell-a").unwrap(),
            1,
            vec![CellId::parse("cell-b").unwrap()],
        ),
    ))
    .unwrap();
    for k in ["k-1", "k-2", "k-3"] {
        assert_eq!(create(&a, k, "credit", "100.00").0, 201);
    }
    block_on(replicate(&a, &b)).unwrap();
    // The partition: what a books from here never reaches b.
    assert_eq!(create(&a, "k-4", "credit", "40.00").0, 201);
    assert_eq!(create(&a, "k-5", "credit", "50.00").0, 201);
    assert_eq!(create(&a, "k-6", "credit", "60.00").0, 201);
    assert_eq!(
        create(&a, "k-7", "debit", "9999.00").0,
        409,
        "a refused debit, in the tail too"
    );

    let ports = MovePorts {
        registry: registry.clone(),
        clock: clock.clone(),
        sleep: Arc::new(Advance(clock.clone())),
    };
    let policy = FailoverPolicy {
        poll: Duration::from_secs(1),
        ..FailoverPolicy::default()
    };
    let started = clock.now();
    let report = block_on(failover(
        &tenant(),
        &CellId::parse("cell-a").unwrap(),
        Some(&handle(&a)),
        &handle(&b),
        &ports,
        None,
        policy,
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.epochs, (1, 2));
    assert_eq!(report.promoted_at.seq, 3);
    assert_eq!(
        report.lost_entries,
        Some(4),
        "k-4, k-5, k-6 and the refusal"
    );
    assert!(report.waited_millis >= 62_000, "{}", report.waited_millis);
    assert!(clock.now().unix_millis() - started.unix_millis() >= 62_000);

    // The old primary's lease is over: its next write finds the promotion and fences it.
    let (status, body) = create(&a, "k-8", "credit", "1.00");
    assert_eq!(status, 421, "{body}");
    assert!(body.contains(r#""primary_cell":"cell-b""#), "{body}");
    // The new primary books (and takes its lease); clients retry there.
    assert_eq!(
        create(&b, "k-5", "credit", "50.00").0,
        201,
        "a retry, same request"
    );
    assert_eq!(
        create(&b, "k-4", "credit", "41.00").0,
        201,
        "the same key, another request"
    );
    assert!(
        block_on(b.ports().store.head(&tenant()))
            .unwrap()
            .unwrap()
            .lease_until
            .is_some()
    );

    let rec = block_on(reconcile(
        &tenant(),
        &handle(&a),
        &handle(&b),
        registry.as_ref(),
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let classes: Vec<(String, TailClass)> = rec
        .entries
        .iter()
        .map(|e| (e.key.clone(), e.class))
        .collect();
    assert_eq!(
        classes,
        vec![
            ("k-4".to_owned(), TailClass::Conflicting),
            ("k-5".to_owned(), TailClass::Retried),
            ("k-6".to_owned(), TailClass::Lost),
            ("k-7".to_owned(), TailClass::LostRefusal),
        ]
    );
    assert!(
        rec.entries[2].body.contains(r#""amount":"60.00""#),
        "a lost booking carries what the client was told"
    );
    let head = block_on(a.ports().store.head(&tenant())).unwrap().unwrap();
    assert_eq!((head.role, head.epoch), (TenantRole::Fenced, 2));
    let placement = block_on(registry.get(&tenant())).unwrap().unwrap();
    assert_eq!(
        (placement.primary.as_str(), placement.epoch, placement.state),
        ("cell-b", 2, PlacementState::Active)
    );
}

#[test]
fn the_old_primary_books_nothing_once_its_lease_is_out_even_before_the_promotion() {
    let clock = Arc::new(ManualClock::default());
    let registry = Arc::new(MemoryRegistry::new());
    let a = cell("cell-a", &clock, &registry);
    let placed = Placement::new(tenant(), CellId::parse("cell-a").unwrap(), 1, vec![]);
    block_on(registry.put(None, &placed)).unwrap();
    assert_eq!(create(&a, "k-1", "credit", "1.00").0, 201);
    // The registry moves on (the operator's first step) while a still holds a fresh lease…
    block_on(registry.put(
        Some(1),
        &placed.next(|p| {
            p.primary = CellId::parse("cell-b").unwrap();
            p.epoch = 2;
            p.state = PlacementState::FailedOver {
                from: CellId::parse("cell-a").unwrap(),
            };
        }),
    ))
    .unwrap();
    let mut booked_after = 0;
    for second in 0..62 {
        clock.advance(Duration::from_secs(1));
        if create(&a, &format!("late-{second}"), "credit", "1.00").0 == 201 {
            booked_after += 1;
        }
    }
    // …so it can book for at most what was left of its lease (renewals after the change fail), and
    // never after the failover's wait.
    assert!(booked_after <= 30, "{booked_after}");
    assert_eq!(create(&a, "k-last", "credit", "1.00").0, 421);
}

/// A standby promoted while it held entries of the old primary it had not applied (a gap held them
/// back) books at once: the promotion clears them (they are the old primary's tail, which
/// reconciliation reports from there), and an entry that lands after the promotion anyway is
/// cleared by the commit that meets it. Without that, every write of the new primary met the held
/// entry at its position and was answered `503` — found by the outage drill through the binaries.
#[test]
fn a_standby_promoted_with_entries_it_never_applied_books_at_once() {
    let clock = Arc::new(ManualClock::default());
    let registry = Arc::new(MemoryRegistry::new());
    let (a, b) = (
        cell("cell-a", &clock, &registry),
        cell("cell-b", &clock, &registry),
    );
    let (id_a, id_b) = (
        CellId::parse("cell-a").unwrap(),
        CellId::parse("cell-b").unwrap(),
    );
    block_on(registry.put(
        None,
        &Placement::new(tenant(), id_a.clone(), 1, vec![id_b.clone()]),
    ))
    .unwrap();
    for k in ["k-1", "k-2"] {
        assert_eq!(create(&a, k, "credit", "100.00").0, 201);
    }
    block_on(replicate(&a, &b)).unwrap();
    for k in ["k-3", "k-4", "k-5"] {
        assert_eq!(create(&a, k, "credit", "10.00").0, 201);
    }
    // Entry 4 reaches b, entry 3 never does: b holds 4 behind a gap.
    let old = a.ports().store.clone();
    let entry = |seq| block_on(old.entry(&tenant(), seq)).unwrap().unwrap();
    let b_store = b.ports().store.clone();
    block_on(b_store.receive(&entry(4))).unwrap();
    let ports = MovePorts {
        registry: registry.clone(),
        clock: clock.clone(),
        sleep: Arc::new(Advance(clock.clone())),
    };
    let policy = FailoverPolicy {
        poll: Duration::from_secs(1),
        ..FailoverPolicy::default()
    };
    let report = block_on(failover(
        &tenant(),
        &id_a,
        None,
        &handle(&b),
        &ports,
        None,
        policy,
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.promoted_at.seq, 2);
    assert!(
        report
            .steps
            .iter()
            .any(|s| s.contains("discarded 1 entries")),
        "the promotion reports what it cleared: {:?}",
        report.steps
    );
    assert!(block_on(b_store.entry(&tenant(), 4)).unwrap().is_none());
    // Entry 5 arrives after the promotion all the same (stored behind the cell's back).
    block_on(b_store.receive(&entry(5))).unwrap();
    for k in ["n-1", "n-2", "n-3"] {
        assert_eq!(create(&b, k, "credit", "1.00").0, 201, "{k}");
    }
    let head = block_on(b_store.head(&tenant())).unwrap().unwrap();
    assert_eq!(
        (head.role, head.epoch, head.position.seq),
        (TenantRole::Primary, 2, 5)
    );
    let own = block_on(b_store.entry(&tenant(), 5)).unwrap().unwrap();
    assert_eq!(
        own.entry().epoch,
        2,
        "position 5 holds the new primary's own entry"
    );
}

/// The old primary's store behind a black-holed link: every call accepted, never answered.
struct BlackHoled;

impl Faults for BlackHoled {
    fn before(&self, _: Operation) -> Result<(), StoreError> {
        Ok(())
    }
    fn stalls(&self, _: Operation) -> bool {
        true
    }
}

#[test]
fn an_old_primary_whose_store_never_answers_costs_the_report_a_bounded_wait_not_the_failover() {
    let clock = Arc::new(ManualClock::default());
    let registry = Arc::new(MemoryRegistry::new());
    let (a, b) = (
        cell("cell-a", &clock, &registry),
        cell("cell-b", &clock, &registry),
    );
    let id_a = CellId::parse("cell-a").unwrap();
    block_on(registry.put(
        None,
        &Placement::new(
            tenant(),
            id_a.clone(),
            1,
            vec![CellId::parse("cell-b").unwrap()],
        ),
    ))
    .unwrap();
    assert_eq!(create(&a, "k-1", "credit", "100.00").0, 201);
    block_on(replicate(&a, &b)).unwrap();
    let ports = MovePorts {
        registry: registry.clone(),
        clock: clock.clone(),
        sleep: Arc::new(Advance(clock.clone())),
    };
    let silent = CellHandle {
        id: id_a.clone(),
        store: Arc::new(FaultyStore::new(Arc::new(MemoryStore::new()), BlackHoled)),
    };
    let before = clock.now();
    let report = block_on(failover(
        &tenant(),
        &id_a,
        Some(&silent),
        &handle(&b),
        &ports,
        None,
        FailoverPolicy::after_revocation(),
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.epochs, (1, 2));
    assert_eq!(report.lost_entries, None, "unknown, and said so");
    assert!(
        report
            .steps
            .iter()
            .any(|s| s.contains("did not answer within 2000 ms")),
        "{:?}",
        report.steps
    );
    let waited = clock.now().unix_millis() - before.unix_millis();
    assert_eq!(
        waited, 2000,
        "the bounded wait, on the failover's own sleep"
    );
    assert_eq!(create(&b, "k-2", "credit", "1.00").0, 201);
}
