//! Planned migration between two cells in memory: the tenant moves, nothing is lost or doubled, the
//! freeze answers 503, a target that does not catch up rolls back, a lapsed freeze thaws, and a
//! crashed run resumes.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use paracell_domain::http::ApiRequest;
use paracell_domain::placement::migrate::{
    CellHandle, MigrationError, MigrationPolicy, MovePorts, migrate,
};
use paracell_domain::placement::registry::{
    MemoryRegistry, Placement, PlacementRegistry, PlacementState,
};
use paracell_domain::placement::{TenantHead, TenantRole};
use paracell_domain::ports::{Clock, Sleep, SystemClock};
use paracell_domain::testing::{block_on, replicate};

/// Every pending entry of `from`, applied on `to`.
async fn replicate_all(from: &Cell, to: &Cell) {
    replicate(from, to).await.unwrap();
}
use paracell_domain::{Cell, CellConfig, TenantId, TenantScope, Timestamp};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn cell(id: &str) -> Cell {
    Cell::in_memory(CellConfig::new(id, TenantScope::All).unwrap())
}

fn tenant() -> TenantId {
    TenantId::parse("coop-1").unwrap()
}

fn create(cell: &Cell, key: &str, cents: u32) -> (u16, String) {
    let request = ApiRequest::new("POST", "/v1/transactions")
        .with_header("content-type", "application/json")
        .with_header("x-tenant-id", "coop-1")
        .with_header("idempotency-key", key)
        .with_body(
            format!(
                r#"{{"account_id":"ACC-1","type":"credit","amount":"{}.{:02}","currency":"EUR"}}"#,
                cents / 100,
                cents % 100
            )
            .into_bytes(),
        );
    let response = block_on(cell.handle(request));
    (
        response.status,
        String::from_utf8_lossy(&response.body).into_owned(),
    )
}

fn head(cell: &Cell) -> TenantHead {
    block_on(cell.ports().store.head(&tenant()))
        .unwrap()
        .unwrap()
}

/// A wait that lets the world go on: the relay runs (when enabled) and a client tries to write.
struct World {
    from: Cell,
    to: Cell,
    relay: AtomicBool,
    writes_during: Mutex<Vec<u16>>,
    waits: AtomicUsize,
}

#[async_trait::async_trait]
impl Sleep for World {
    async fn sleep(&self, _: Duration) {
        let n = self.waits.fetch_add(1, Ordering::Relaxed);
        let status = create(&self.from, &format!("during-{n}"), 100).0;
        self.writes_during.lock().unwrap().push(status);
        if self.relay.load(Ordering::Relaxed) {
            replicate(&self.from, &self.to).await.unwrap();
        }
    }
}

fn handles(a: &Cell, b: &Cell) -> (CellHandle, CellHandle) {
    let handle = |c: &Cell| CellHandle {
        id: c.config().cell_id.clone(),
        store: c.ports().store.clone(),
    };
    (handle(a), handle(b))
}

fn ports(world: Arc<World>, registry: Arc<MemoryRegistry>) -> MovePorts {
    MovePorts {
        registry,
        clock: Arc::new(SystemClock),
        sleep: world,
    }
}

fn world(a: &Cell, b: &Cell, relay: bool) -> Arc<World> {
    Arc::new(World {
        from: a.clone(),
        to: b.clone(),
        relay: AtomicBool::new(relay),
        writes_during: Mutex::new(Vec::new()),
        waits: AtomicUsize::new(0),
    })
}

#[test]
fn a_tenant_moves_and_nothing_is_lost_or_doubled() {
    let (a, b) = (cell("cell-a"), cell("cell-b"));
    for i in 0..5 {
        assert_eq!(create(&a, &format!("k-{i}"), 1_000).0, 201);
    }
    block_on(replicate_all(&a, &b));
    assert_eq!(create(&a, "k-late", 500).0, 201, "not replicated yet");
    let registry = Arc::new(MemoryRegistry::new());
    let w = world(&a, &b, true);
    let (from, to) = handles(&a, &b);
    let report = block_on(migrate(
        &tenant(),
        &from,
        &to,
        &ports(w.clone(), registry.clone()),
        MigrationPolicy {
            poll: Duration::from_millis(1),
            ..MigrationPolicy::default()
        },
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.epochs, (1, 2));
    assert_eq!(report.position.seq, 6, "five writes and the late one");
    assert!(report.steps.iter().any(|s| s.starts_with("froze cell-a")));
    // While frozen, the client's writes were refused with 503, and none was booked.
    let during = w.writes_during.lock().unwrap().clone();
    assert!(
        !during.is_empty() && during.iter().all(|s| *s == 503),
        "{during:?}"
    );

    let (old, new) = (head(&a), head(&b));
    assert_eq!(
        (old.role, old.epoch, old.primary.as_str()),
        (TenantRole::Standby, 2, "cell-b")
    );
    assert_eq!(
        (new.role, new.epoch, new.position),
        (TenantRole::Primary, 2, old.position)
    );
    let placement = block_on(registry.get(&tenant())).unwrap().unwrap();
    assert_eq!((placement.primary.as_str(), placement.epoch), ("cell-b", 2));
    assert_eq!(placement.state, PlacementState::Active);
    assert_eq!(
        placement
            .standbys
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>(),
        ["cell-a"]
    );

    // The old primary refuses writes naming the new one; the new one books; a retry of a key the
    // old primary booked replays there.
    let (status, body) = create(&a, "k-after", 100);
    assert_eq!(status, 421);
    assert!(
        body.contains(r#""primary_cell":"cell-b""#) && body.contains(r#""epoch":2"#),
        "{body}"
    );
    assert_eq!(create(&b, "k-after", 100).0, 201);
    let (status, _) = create(&b, "k-3", 1_000);
    assert_eq!(status, 201, "a retry on the new primary replays");
    let replay = block_on(
        b.handle(
            ApiRequest::new("POST", "/v1/transactions")
                .with_header("content-type", "application/json")
                .with_header("x-tenant-id", "coop-1")
                .with_header("idempotency-key", "k-3")
                .with_body(
                    br#"{"account_id":"ACC-1","type":"credit","amount":"10.00","currency":"EUR"}"#
                        .to_vec(),
                ),
        ),
    );
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));

    // Reverse replication: the old primary follows the new one.
    block_on(replicate_all(&b, &a));
    assert_eq!(head(&a).position, head(&b).position);
    let balance = |c: &Cell| {
        let r = block_on(
            c.handle(
                ApiRequest::new("GET", "/v1/accounts/ACC-1/balances")
                    .with_header("x-tenant-id", "coop-1"),
            ),
        );
        String::from_utf8_lossy(&r.body).into_owned()
    };
    assert_eq!(balance(&a), balance(&b));
    assert!(
        balance(&b).contains("56.00"),
        "5 × 10 + 5 + 1: {}",
        balance(&b)
    );
}

#[test]
fn a_target_that_does_not_catch_up_rolls_back() {
    let (a, b) = (cell("cell-a"), cell("cell-b"));
    assert_eq!(create(&a, "k-1", 100).0, 201);
    block_on(replicate_all(&a, &b));
    assert_eq!(create(&a, "k-2", 100).0, 201);
    let registry = Arc::new(MemoryRegistry::new());
    let (from, to) = handles(&a, &b);
    let err = block_on(migrate(
        &tenant(),
        &from,
        &to,
        &ports(world(&a, &b, false), registry.clone()),
        MigrationPolicy {
            catch_up_timeout: Duration::from_millis(30),
            poll: Duration::from_millis(1),
            ..MigrationPolicy::default()
        },
    ))
    .unwrap_err();
    assert!(matches!(err, MigrationError::NotCaughtUp { .. }), "{err}");
    assert!(err.to_string().contains("cell-a is primary again"), "{err}");
    assert_eq!(head(&a).role, TenantRole::Primary);
    assert_eq!(create(&a, "k-3", 100).0, 201, "the old primary books again");
    let placement = block_on(registry.get(&tenant())).unwrap().unwrap();
    assert_eq!((placement.primary.as_str(), placement.epoch), ("cell-a", 1));
    assert_eq!(placement.state, PlacementState::Active);
}

#[test]
fn a_lapsed_freeze_thaws_on_the_next_write() {
    let a = cell("cell-a");
    assert_eq!(create(&a, "k-1", 100).0, 201);
    let primary = head(&a);
    let frozen = TenantHead {
        role: TenantRole::Frozen,
        lease_until: Some(SystemClock.now().plus_millis(60_000)),
        ..primary.clone()
    };
    block_on(a.ports().store.put_head(primary.fence(), frozen.clone())).unwrap();
    assert_eq!(
        create(&a, "k-2", 100).0,
        503,
        "frozen while the lease holds"
    );
    let lapsed = TenantHead {
        lease_until: Some(Timestamp::from_unix_millis(
            SystemClock.now().unix_millis() - 1,
        )),
        ..frozen.clone()
    };
    block_on(a.ports().store.put_head(frozen.fence(), lapsed)).unwrap();
    assert_eq!(
        create(&a, "k-2", 100).0,
        201,
        "a crashed operator's freeze lapses"
    );
    assert_eq!(head(&a).role, TenantRole::Primary);
    assert_eq!(head(&a).lease_until, None);
}

#[test]
fn a_run_that_crashed_after_fencing_is_resumed() {
    let (a, b) = (cell("cell-a"), cell("cell-b"));
    assert_eq!(create(&a, "k-1", 100).0, 201);
    block_on(replicate_all(&a, &b));
    // The crashed run got as far as fencing the source.
    let primary = head(&a);
    let fenced = TenantHead {
        role: TenantRole::Standby,
        epoch: 2,
        primary: b.config().cell_id.clone(),
        epoch_start: primary.position.seq,
        ..primary.clone()
    };
    block_on(a.ports().store.put_head(primary.fence(), fenced)).unwrap();
    assert_eq!(create(&a, "k-2", 100).0, 421);
    assert_eq!(
        create(&b, "k-2", 100).0,
        421,
        "no primary until the run is resumed"
    );
    // ...after recording the move in the registry.
    let registry = Arc::new(MemoryRegistry::new());
    let placed = Placement::new(
        tenant(),
        a.config().cell_id.clone(),
        1,
        vec![b.config().cell_id.clone()],
    );
    block_on(registry.put(None, &placed)).unwrap();
    let migrating = placed.next(|p| {
        p.state = PlacementState::Migrating {
            to: b.config().cell_id.clone(),
        }
    });
    block_on(registry.put(Some(1), &migrating)).unwrap();
    let (from, to) = handles(&a, &b);
    let report = block_on(migrate(
        &tenant(),
        &from,
        &to,
        &ports(world(&a, &b, true), registry.clone()),
        MigrationPolicy::default(),
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.steps[0].contains("resuming"), "{:?}", report.steps);
    let placement = block_on(registry.get(&tenant())).unwrap().unwrap();
    assert_eq!(
        (
            placement.primary.as_str(),
            placement.epoch,
            &placement.state
        ),
        ("cell-b", 2, &PlacementState::Active)
    );
    assert_eq!(report.epochs, (1, 2));
    assert_eq!(create(&b, "k-2", 100).0, 201);
    // Running it once more changes nothing: the source is no longer the primary.
    let again = block_on(migrate(
        &tenant(),
        &from,
        &to,
        &ports(world(&a, &b, true), registry.clone()),
        MigrationPolicy::default(),
    ));
    assert!(
        matches!(again, Err(MigrationError::SourceNotPrimary { .. })),
        "{again:?}"
    );
    assert_eq!(
        block_on(registry.get(&tenant())).unwrap().unwrap(),
        placement
    );
}

#[test]
fn a_source_that_is_not_primary_or_a_target_that_does_not_follow_it_is_refused() {
    let (a, b, c) = (cell("cell-a"), cell("cell-b"), cell("cell-c"));
    assert_eq!(create(&a, "k-1", 100).0, 201);
    assert_eq!(
        create(&c, "k-1", 100).0,
        201,
        "cell-c is a primary of its own"
    );
    block_on(replicate_all(&a, &b));
    let registry = Arc::new(MemoryRegistry::new());
    let (from, to) = handles(&b, &a);
    let err = block_on(migrate(
        &tenant(),
        &from,
        &to,
        &ports(world(&b, &a, true), registry.clone()),
        MigrationPolicy::default(),
    ))
    .unwrap_err();
    assert!(
        matches!(err, MigrationError::SourceNotPrimary { .. }),
        "{err}"
    );
    let (from, to) = handles(&a, &c);
    let err = block_on(migrate(
        &tenant(),
        &from,
        &to,
        &ports(world(&a, &c, true), registry),
        MigrationPolicy::default(),
    ))
    .unwrap_err();
    assert!(
        matches!(err, MigrationError::TargetNotStandby { .. }),
        "{err}"
    );
    assert_eq!(head(&a).role, TenantRole::Primary, "nothing changed");
}

#[test]
fn status_shows_each_cell_and_the_standby_lag() {
    use paracell_domain::placement::status::tenant_status;
    let (a, b) = (cell("cell-a"), cell("cell-b"));
    assert_eq!(create(&a, "k-1", 100).0, 201);
    block_on(replicate_all(&a, &b));
    assert_eq!(create(&a, "k-2", 100).0, 201);
    assert_eq!(create(&a, "k-3", 100).0, 201);
    let (ha, hb) = handles(&a, &b);
    let registry = MemoryRegistry::new();
    let status = block_on(tenant_status(
        &tenant(),
        &[ha.clone(), hb.clone()],
        &registry,
        &SystemClock,
    ))
    .unwrap();
    assert_eq!(status.placement, None);
    assert_eq!(
        status.cells[0].head.as_ref().map(|h| h.role),
        Some(TenantRole::Primary)
    );
    assert_eq!(
        (status.cells[0].lag_entries, status.cells[1].lag_entries),
        (0, 2)
    );
    assert!(status.cells[1].lag_millis >= 0);
    block_on(replicate_all(&a, &b));
    let status = block_on(tenant_status(&tenant(), &[ha, hb], &registry, &SystemClock)).unwrap();
    assert_eq!(
        (status.cells[1].lag_entries, status.cells[1].lag_millis),
        (0, 0)
    );
}
