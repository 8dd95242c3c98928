//! The failover controller end to end on memory stores, the quorum of three memory acceptors and a
//! manual clock: two observers in other domains promote the standby of a primary that is down and
//! stopped renewing; one observer alone never does; a primary that still renews is never failed over
//! whatever its probes; a controller that died after revoking is finished by the next tick; and a
//! move holds both cells down, so a flapping pair never ping-pongs.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use paracell_domain::memory::{ManualClock, MemoryStore, NoSleep};
use paracell_domain::placement::migrate::{CellHandle, MovePorts};
use paracell_domain::placement::quorum::controller::{
    Controller, ControllerPolicy, Decision, Hold, Protected, TickReport, Watched,
};
use paracell_domain::placement::quorum::{LeaseTiming, QuorumRegistry, lease, memory_quorum};
use paracell_domain::placement::registry::{Placement, PlacementRegistry, PlacementState};
use paracell_domain::placement::{Fence, TenantHead, TenantRole};
use paracell_domain::ports::{HttpClient, OutboundRequest, OutboundResponse, TransportError};
use paracell_domain::testing::block_on;
use paracell_domain::{CellId, TenantId};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Health endpoints by URL: up unless listed as down.
#[derive(Default)]
struct Health(Mutex<HashSet<String>>);

impl Health {
    fn set_down(&self, url: &str, down: bool) {
        let mut set = self.0.lock().unwrap();
        if down {
            set.insert(url.to_owned());
        } else {
            set.remove(url);
        }
    }
}

#[async_trait::async_trait]
impl HttpClient for Health {
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, TransportError> {
        if self.0.lock().unwrap().contains(&request.url) {
            return Err(TransportError::Timeout);
        }
        Ok(OutboundResponse {
            status: 200,
            headers: Vec::new(),
            body: Vec::new(),
        })
    }
}

struct World {
    clock: Arc<ManualClock>,
    quorum: Arc<QuorumRegistry>,
    health: Arc<Health>,
    a: CellHandle,
    b: CellHandle,
}

const A_HEALTH: &str = "http://cell-a/health";
const B_HEALTH: &str = "http://cell-b/health";

fn tenant() -> TenantId {
    TenantId::parse("coop-1").unwrap()
}

fn cell(id: &str) -> CellId {
    CellId::parse(id).unwrap()
}

fn setup() -> World {
    let clock = Arc::new(ManualClock::default());
    let quorum = Arc::new(memory_quorum(1).1);
    let a = CellHandle {
        id: cell("cell-a"),
        store: Arc::new(MemoryStore::new()),
    };
    let b = CellHandle {
        id: cell("cell-b"),
        store: Arc::new(MemoryStore::new()),
    };
    // cell-a is the primary at epoch 1, cell-b its standby.
    let primary = TenantHead::first_primary(tenant(), a.id.clone());
    block_on(a.store.put_head(Fence::Absent, primary.clone())).unwrap();
    let standby = TenantHead {
        role: TenantRole::Standby,
        ..primary
    };
    block_on(b.store.put_head(Fence::Absent, standby)).unwrap();
    let placed = Placement::new(tenant(), a.id.clone(), 1, vec![b.id.clone()]);
    block_on(quorum.put(None, &placed)).unwrap();
    block_on(lease::renew(&quorum, &a.id)).unwrap();
    World {
        clock,
        quorum,
        health: Arc::new(Health::default()),
        a,
        b,
    }
}

fn observer(
    w: &World,
    domain: &str,
    watched: &CellHandle,
    standby: &CellHandle,
    health: &str,
) -> Controller {
    let ports = MovePorts {
        registry: w.quorum.clone(),
        clock: w.clock.clone(),
        sleep: Arc::new(NoSleep),
    };
    Controller::new(
        Watched {
            observer: domain.to_owned(),
            cell: watched.id.clone(),
            cell_domain: "aws".to_owned(),
            health_url: health.to_owned(),
            tenants: vec![Protected {
                tenant: tenant(),
                standby: standby.clone(),
            }],
            old: Some(watched.clone()),
        },
        w.health.clone(),
        w.quorum.clone(),
        ports,
        w.clock.clone(),
        ControllerPolicy::default(),
        LeaseTiming::default(),
    )
}

/// Ticks every observer every 2 s for `seconds`; returns each tick's report.
fn run(w: &World, observers: &[&Controller], seconds: u64, renew: bool) -> Vec<TickReport> {
    let mut reports = Vec::new();
    for _ in 0..seconds / 2 {
        if renew {
            block_on(lease::renew(&w.quorum, &w.a.id)).unwrap();
        }
        for o in observers {
            reports.push(block_on(o.tick()));
        }
        w.clock.advance(Duration::from_secs(2));
    }
    reports
}

fn promoted(reports: &[TickReport]) -> Vec<&TickReport> {
    reports
        .iter()
        .filter(|r| r.failovers.iter().any(Result::is_ok))
        .collect()
}

#[test]
fn two_observers_promote_the_standby_of_a_primary_that_is_down_and_silent() {
    let w = setup();
    let (azure, gcp) = (
        observer(&w, "azure", &w.a, &w.b, A_HEALTH),
        observer(&w, "gcp", &w.a, &w.b, A_HEALTH),
    );
    w.health.set_down(A_HEALTH, true);
    let reports = run(&w, &[&azure, &gcp], 30, false);
    let moves = promoted(&reports);
    assert_eq!(moves.len(), 1, "exactly one promotion: {reports:#?}");
    // The evidence is in the report: both other domains voted down for the counter revoked.
    let report = moves[0];
    assert_eq!(report.decision, Some(Decision::Promote { seq: 1 }));
    assert!(
        report
            .votes
            .values()
            .filter(|v| v.down && v.lease_seq == 1)
            .count()
            >= 2
    );
    // Promoted at the first tick after the promoter's wait (14.506 s after first seeing seq 1 at 0 s).
    let at = reports
        .iter()
        .position(|r| std::ptr::eq(r, report))
        .unwrap()
        / 2
        * 2;
    assert_eq!(at, 16, "the tick at 16 s");
    let placement = block_on(w.quorum.get(&tenant())).unwrap().unwrap();
    assert_eq!(placement.primary, w.b.id);
    assert_eq!(placement.epoch, 2);
    assert_eq!(
        placement.state,
        PlacementState::FailedOver {
            from: w.a.id.clone()
        }
    );
    let head = block_on(w.b.store.head(&tenant())).unwrap().unwrap();
    assert_eq!((head.role, head.epoch), (TenantRole::Primary, 2));
    // The old primary cannot renew: its lease is revoked.
    assert!(matches!(
        block_on(lease::renew(&w.quorum, &w.a.id)).unwrap(),
        lease::LeaseChange::Refused {
            reason: lease::LeaseRefusal::Revoked,
            ..
        }
    ));
}

#[test]
fn one_observer_alone_never_promotes() {
    let w = setup();
    let azure = observer(&w, "azure", &w.a, &w.b, A_HEALTH);
    w.health.set_down(A_HEALTH, true);
    let reports = run(&w, &[&azure], 120, false);
    assert!(promoted(&reports).is_empty());
    assert!(matches!(
        reports.last().unwrap().decision,
        Some(Decision::Hold(Hold::TooFewObservers { .. }))
    ));
}

#[test]
fn a_primary_that_still_renews_is_never_failed_over() {
    let w = setup();
    let (azure, gcp) = (
        observer(&w, "azure", &w.a, &w.b, A_HEALTH),
        observer(&w, "gcp", &w.a, &w.b, A_HEALTH),
    );
    // Its probes fail (a partition between the observers and the cell, a gray failure), but it
    // reaches a majority of acceptors and renews.
    w.health.set_down(A_HEALTH, true);
    let reports = run(&w, &[&azure, &gcp], 120, true);
    assert!(promoted(&reports).is_empty());
    assert!(
        reports
            .iter()
            .all(|r| !matches!(r.decision, Some(Decision::Promote { .. })))
    );
}

#[test]
fn a_controller_that_died_after_revoking_is_finished_by_the_next_tick() {
    let w = setup();
    let gcp = observer(&w, "gcp", &w.a, &w.b, A_HEALTH);
    // The crashed controller revoked the lease and moved nothing.
    block_on(lease::revoke(&w.quorum, &w.a.id, 1)).unwrap();
    let report = block_on(gcp.tick());
    assert_eq!(report.decision, Some(Decision::Finish));
    assert_eq!(report.failovers.len(), 1);
    assert!(report.failovers[0].is_ok(), "{report:#?}");
    assert_eq!(
        block_on(w.quorum.get(&tenant())).unwrap().unwrap().primary,
        w.b.id
    );
    // Nothing is left to do: the next tick moves nothing again.
    assert!(block_on(gcp.tick()).failovers.is_empty());
}

#[test]
fn after_a_move_both_cells_are_held_down() {
    let w = setup();
    let (azure, gcp) = (
        observer(&w, "azure", &w.a, &w.b, A_HEALTH),
        observer(&w, "gcp", &w.a, &w.b, A_HEALTH),
    );
    w.health.set_down(A_HEALTH, true);
    assert_eq!(promoted(&run(&w, &[&azure, &gcp], 30, false)).len(), 1);
    // Now cell-b flaps: it renewed once as the new primary, then goes quiet and down.
    block_on(lease::renew(&w.quorum, &w.b.id)).unwrap();
    w.health.set_down(B_HEALTH, true);
    let (azure_b, gcp_b) = (
        observer(&w, "azure", &w.b, &w.a, B_HEALTH),
        observer(&w, "gcp", &w.b, &w.a, B_HEALTH),
    );
    let reports = run(&w, &[&azure_b, &gcp_b], 60, false);
    assert!(
        promoted(&reports).is_empty(),
        "no ping-pong within the hold-down"
    );
    assert!(matches!(
        reports.last().unwrap().decision,
        Some(Decision::Hold(Hold::HoldDown { .. }))
    ));
}

/// An acceptor that counts the writes it is asked for (a round's prepare and accept each write).
struct Counted {
    inner: paracell_domain::placement::quorum::MemoryAcceptor,
    writes: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl paracell_domain::placement::quorum::Acceptor for Counted {
    fn domain(&self) -> &str {
        self.inner.domain()
    }
    async fn prepare(
        &self,
        key: &str,
        ballot: paracell_domain::placement::quorum::Ballot,
    ) -> Result<
        Option<paracell_domain::placement::quorum::Accepted>,
        paracell_domain::placement::quorum::AcceptorError,
    > {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.prepare(key, ballot).await
    }
    async fn accept(
        &self,
        key: &str,
        ballot: paracell_domain::placement::quorum::Ballot,
        value: &str,
    ) -> Result<(), paracell_domain::placement::quorum::AcceptorError> {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.accept(key, ballot, value).await
    }
    async fn peek(
        &self,
        key: &str,
    ) -> Result<
        Option<paracell_domain::placement::quorum::Accepted>,
        paracell_domain::placement::quorum::AcceptorError,
    > {
        self.inner.peek(key).await
    }
}

/// The witness on Cloud Storage takes about one write per second per object: observers of a healthy
/// cell watch its lease and the votes by reading without a round, and write a vote only when it
/// changes — so after their first votes they write nothing, however often they tick and the cell
/// renews. Once the cell is down they write again (non-vacuous), and the failover still happens.
#[test]
fn observers_of_a_healthy_cell_write_nothing_after_their_first_vote() {
    use paracell_domain::placement::quorum::{Acceptor, MemoryAcceptor};
    use std::sync::atomic::Ordering;
    let mut w = setup();
    let acceptors: Vec<Arc<Counted>> = ["aws", "azure", "gcp"]
        .into_iter()
        .map(|d| {
            Arc::new(Counted {
                inner: MemoryAcceptor::new(d),
                writes: Default::default(),
            })
        })
        .collect();
    let quorum = Arc::new(
        QuorumRegistry::new(
            acceptors
                .iter()
                .map(|a| Arc::clone(a) as Arc<dyn Acceptor>)
                .collect(),
            7,
        )
        .unwrap(),
    );
    let placed = Placement::new(tenant(), w.a.id.clone(), 1, vec![w.b.id.clone()]);
    block_on(quorum.put(None, &placed)).unwrap();
    block_on(lease::renew(&quorum, &w.a.id)).unwrap();
    w.quorum = quorum;
    let writes = || {
        acceptors
            .iter()
            .map(|a| a.writes.load(Ordering::SeqCst))
            .sum::<usize>()
    };
    let azure = observer(&w, "azure", &w.a, &w.b, A_HEALTH);
    let gcp = observer(&w, "gcp", &w.a, &w.b, A_HEALTH);
    block_on(azure.tick());
    block_on(gcp.tick());
    let mut by_ticks = 0;
    for _ in 0..20 {
        block_on(lease::renew(&w.quorum, &w.a.id)).unwrap();
        w.clock.advance(Duration::from_secs(2));
        let before = writes();
        for o in [&azure, &gcp] {
            let report = block_on(o.tick());
            assert!(report.problems.is_empty(), "{:?}", report.problems);
            assert!(matches!(report.decision, Some(Decision::Hold(_))));
        }
        by_ticks += writes() - before;
    }
    assert_eq!(by_ticks, 0, "healthy ticks wrote {by_ticks} times");
    // The cell goes down and stops renewing: the observers vote, wait, revoke and fail over.
    w.health.set_down(A_HEALTH, true);
    let before = writes();
    run(&w, &[&azure, &gcp], 40, false);
    assert!(writes() > before, "down votes are written");
    let moved = block_on(w.quorum.get(&tenant())).unwrap().unwrap();
    assert_eq!((moved.primary.as_str(), moved.epoch), ("cell-b", 2));
    // Failed over: the lease stays revoked, and the observers' later ticks (each `Finish`) write
    // nothing once each has seen the move complete.
    run(&w, &[&azure, &gcp], 4, false);
    let before = writes();
    for _ in 0..20 {
        w.clock.advance(Duration::from_secs(2));
        for o in [&azure, &gcp] {
            let report = block_on(o.tick());
            assert_eq!(report.decision, Some(Decision::Finish));
            assert!(report.problems.is_empty(), "{:?}", report.problems);
        }
    }
    assert_eq!(writes() - before, 0, "finished ticks wrote");
}
