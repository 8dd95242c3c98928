//! The outage drill, in process: a tenant on one cloud's cell, its standby on the other's, the
//! placement quorum over three acceptors (AWS, Azure, the witness), every cell under its **cell
//! lease** ([`LeaseGate`]) and **failover controllers** in all three domains — then a cloud, a link
//! or a store misbehaves while a client that never stops keeps writing, following `421`s and
//! retrying `503`s under the same key through a router that reads the quorum.
//!
//! Every process, store and acceptor is reached through a simulated network whose links can be cut
//! per pair, on a shared virtual clock (250 ms steps; observers tick every 2 s). Timeouts are
//! modelled as immediate failures here; black holes (an accepted connection that never answers) need
//! real sockets and belong to the binaries' drill, with `paracell_testkit::proxy::FaultProxy`.
//!
//! Scenarios, each from a tenant at home on AWS and again at home on Azure:
//!
//! 1. **the home cloud cut** (its cell, its store, its acceptor) → automatic failover;
//! 2. **the home cloud healed** → the old primary is refused by its lease, reconciled (the report's
//!    loss is the measured loss), and stays fenced, even after its lease is reinstated;
//! 3. **the witness cut** → leases keep renewing at the two clouds' acceptors, no failover;
//! 4. **the clouds cut from each other**, both still seeing the witness → no failover, one primary;
//!    4b. **the home cell cut off** from the other cloud and the witness, still reachable by a
//!    client with a stale route → it stops acknowledging within one lease, and only then is the
//!    standby promoted (a second client, whose router reads the quorum before every write, shows
//!    the two never overlap);
//! 6. **a controller that dies after revoking** → the next tick of another observer finishes;
//! 7. **a write delayed past the lease** on the old primary's store link (delay, not cut) → answered
//!    `503`, never acknowledged, reported in the reconciled tail.
//!
//! Checks per scenario: money conserved, no negative balance, nothing applied twice, every
//! acknowledged write on the current primary or in the reconciliation report, at most one cell
//! writing per epoch (and the old primary acknowledging nothing once the new one has written),
//! reported loss = measured loss, RTO within lease + 10 s; RTO and RPO figures per scenario.
//!
//! ```text
//! paracell-conformance drill outage [--seed S] [--json]
//! ```

use super::{Check, DrillReport, Rng, cents};
use paracell_domain::http::ApiRequest;
use paracell_domain::memory::{ManualClock, MemoryStore, NoSleep, SequentialIds};
use paracell_domain::placement::TenantRole;
use paracell_domain::placement::migrate::{CellHandle, MovePorts};
use paracell_domain::placement::quorum::controller::{
    Controller, ControllerPolicy, Decision, Protected, Watched,
};
use paracell_domain::placement::quorum::lease::{self, LeaseChange};
use paracell_domain::placement::quorum::{
    Accepted, Acceptor, AcceptorError, Ballot, LeaseGate, LeaseHolder, LeaseTiming, LeaseWatch,
    MemoryAcceptor, QuorumRegistry,
};
use paracell_domain::placement::reconcile::{TailClass, reconcile};
use paracell_domain::placement::registry::{Placement, PlacementRegistry};
use paracell_domain::ports::{
    HttpClient, OutboundRequest, OutboundResponse, StoreError, TransactionStore, TransportError,
};
use paracell_domain::replication::SealedEntry;
use paracell_domain::testing::faults::{Faults, FaultyStore, Operation};
use paracell_domain::transaction::AccountId;
use paracell_domain::{Cell, CellConfig, CellId, CellPorts, TenantId, TenantScope};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TENANT: &str = "coop-1";
const ACCOUNTS: [&str; 2] = ["ACC-1", "ACC-2"];
const STEP: Duration = Duration::from_millis(250);
/// Observers tick every 2 s: every 8 steps.
const TICK_EVERY: u64 = 8;
/// The RTO target: lease + 10 s.
const RTO_TARGET_MS: i64 = 22_000;

/// The drill's knobs.
#[derive(Debug, Clone, Copy)]
pub struct OutageOptions {
    /// The schedule's seed (client operations and amounts).
    pub seed: u64,
}

/// One scenario's row.
#[derive(Debug, Clone)]
pub struct Row {
    /// The scenario (`1 home cloud cut`, …).
    pub scenario: String,
    /// Where the tenant lived at the start.
    pub home: &'static str,
    /// The checks.
    pub checks: Vec<Check>,
    /// First refused write to first write accepted on the new primary, in ms (failovers only).
    pub rto_ms: Option<i64>,
    /// Entries the standby had not applied when it was promoted (failovers only).
    pub rpo_entries: Option<u64>,
    /// Writes the client had acknowledged.
    pub acknowledged: usize,
    /// Acknowledged bookings the reconciliation lists as lost.
    pub lost: usize,
}

impl Row {
    /// Whether every check held.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// The row as JSON (`--json`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "scenario": self.scenario, "home": self.home, "passed": self.passed(),
            "rto_ms": self.rto_ms, "rpo_entries": self.rpo_entries,
            "acknowledged": self.acknowledged, "lost": self.lost,
            "checks": self.checks.iter().map(|c| serde_json::json!({
                "name": c.name, "passed": c.passed, "detail": c.detail,
            })).collect::<Vec<_>>(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cloud {
    Aws,
    Azure,
}

impl Cloud {
    fn name(self) -> &'static str {
        match self {
            Self::Aws => "aws",
            Self::Azure => "azure",
        }
    }

    fn other(self) -> Self {
        match self {
            Self::Aws => Self::Azure,
            Self::Azure => Self::Aws,
        }
    }

    fn cell(self) -> String {
        format!("cell-{}", self.name())
    }

    fn store(self) -> String {
        format!("store-{}", self.name())
    }
}

fn acceptor_name(domain: &str) -> String {
    format!("acceptor-{domain}")
}

fn observer_name(domain: &str) -> String {
    format!("observer-{domain}")
}

/// Which domain a component lives in (the drill cuts whole clouds by it).
fn domain_of(component: &str) -> &str {
    component.rsplit('-').next().unwrap_or(component)
}

/// The simulated network: components that are down, and links cut between pairs.
#[derive(Default)]
struct Net {
    down: Mutex<BTreeSet<String>>,
    cut: Mutex<HashSet<(String, String)>>,
}

impl Net {
    fn open(&self, from: &str, to: &str) -> bool {
        let down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        if down.contains(from) || down.contains(to) {
            return false;
        }
        let cut = self.cut.lock().unwrap_or_else(|p| p.into_inner());
        !cut.contains(&(from.to_owned(), to.to_owned()))
    }

    fn set_down(&self, component: &str, down: bool) {
        let mut set = self.down.lock().unwrap_or_else(|p| p.into_inner());
        if down {
            set.insert(component.to_owned());
        } else {
            set.remove(component);
        }
    }

    /// Cuts every link between a component of domain `a` and one of domain `b`, both ways.
    fn cut_domains(&self, a: &str, b: &str, all: &[String]) {
        let mut cut = self.cut.lock().unwrap_or_else(|p| p.into_inner());
        for x in all.iter().filter(|c| domain_of(c) == a) {
            for y in all.iter().filter(|c| domain_of(c) == b) {
                cut.insert((x.clone(), y.clone()));
                cut.insert((y.clone(), x.clone()));
            }
        }
    }

    fn heal(&self) {
        self.down.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.cut.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

fn unreachable(what: &str) -> StoreError {
    StoreError::Unavailable {
        retry_after_secs: 1,
        detail: format!("{what}: partitioned"),
    }
}

/// An acceptor as one actor reaches it.
struct Linked {
    actor: String,
    target: String,
    inner: Arc<MemoryAcceptor>,
    net: Arc<Net>,
}

#[async_trait::async_trait]
impl Acceptor for Linked {
    fn domain(&self) -> &str {
        self.inner.domain()
    }

    async fn prepare(&self, key: &str, ballot: Ballot) -> Result<Option<Accepted>, AcceptorError> {
        if !self.net.open(&self.actor, &self.target) {
            return Err(unreachable(&self.target).into());
        }
        self.inner.prepare(key, ballot).await
    }

    async fn accept(&self, key: &str, ballot: Ballot, value: &str) -> Result<(), AcceptorError> {
        if !self.net.open(&self.actor, &self.target) {
            return Err(unreachable(&self.target).into());
        }
        self.inner.accept(key, ballot, value).await
    }

    async fn peek(&self, key: &str) -> Result<Option<Accepted>, AcceptorError> {
        if !self.net.open(&self.actor, &self.target) {
            return Err(unreachable(&self.target).into());
        }
        self.inner.peek(key).await
    }
}

/// A cell's store as one actor reaches it: every operation fails while the link is cut, and a
/// commit's answer can come back late (the link slowed, not cut) — the world's clock moves on
/// meanwhile.
struct StoreLink {
    actor: String,
    target: String,
    net: Arc<Net>,
    clock: Arc<ManualClock>,
    delay_next_commit_ms: Arc<AtomicU64>,
}

impl Faults for StoreLink {
    fn before(&self, _: Operation) -> Result<(), StoreError> {
        if self.net.open(&self.actor, &self.target) {
            Ok(())
        } else {
            Err(unreachable(&self.target))
        }
    }

    fn after_commit(&self) {
        let delay = self.delay_next_commit_ms.swap(0, Ordering::SeqCst);
        self.clock.advance(Duration::from_millis(delay));
    }
}

/// Health probes as one observer sends them.
struct Probe {
    actor: String,
    net: Arc<Net>,
}

#[async_trait::async_trait]
impl HttpClient for Probe {
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, TransportError> {
        // `http://cell-aws/health`: the host names the cell.
        let cell = request
            .url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default();
        if !self.net.open(&self.actor, cell) {
            return Err(TransportError::Timeout);
        }
        Ok(OutboundResponse {
            status: 200,
            headers: Vec::new(),
            body: Vec::new(),
        })
    }
}

/// One acknowledged operation.
#[derive(Debug, Clone)]
struct Ack {
    key: String,
    account: &'static str,
    /// Signed cents moved (0 for a refused debit).
    cents: i128,
    cell: Cloud,
    at_ms: i64,
}

/// The operation the client is trying, until it is acknowledged.
#[derive(Debug, Clone)]
struct Op {
    key: String,
    account: &'static str,
    debit: bool,
    cents: u64,
}

struct World {
    clock: Arc<ManualClock>,
    net: Arc<Net>,
    acceptors: BTreeMap<&'static str, Arc<MemoryAcceptor>>,
    components: Vec<String>,
    cells: BTreeMap<&'static str, Cell>,
    stores: BTreeMap<&'static str, Arc<MemoryStore>>,
    delays: BTreeMap<&'static str, Arc<AtomicU64>>,
    operator: Arc<QuorumRegistry>,
    router: Arc<QuorumRegistry>,
    home: Cloud,
    target: Cloud,
    rng: Rng,
    next_key: u64,
    pending: Option<Op>,
    /// A second client whose router reads the quorum before every write (never stale), with its
    /// next key number and the operation it is trying.
    eager: (u64, Option<Op>),
    /// The relay is held back (a lagging stream consumer).
    relay_paused: bool,
    acks: Vec<Ack>,
    refused_at: Vec<i64>,
    proposers: u64,
}

impl World {
    fn new(home: Cloud, seed: u64) -> Self {
        let clock = Arc::new(ManualClock::default());
        let net = Arc::new(Net::default());
        let acceptors: BTreeMap<&'static str, Arc<MemoryAcceptor>> = ["aws", "azure", "gcp"]
            .into_iter()
            .map(|d| (d, Arc::new(MemoryAcceptor::new(d))))
            .collect();
        let mut components: Vec<String> = vec![
            "cell-aws".into(),
            "cell-azure".into(),
            "store-aws".into(),
            "store-azure".into(),
            "client-edge".into(),
            "operator-edge".into(),
        ];
        components.extend(acceptors.keys().map(|d| acceptor_name(d)));
        components.extend(acceptors.keys().map(|d| observer_name(d)));
        let mut world = Self {
            clock,
            net,
            acceptors,
            components,
            cells: BTreeMap::new(),
            stores: BTreeMap::new(),
            delays: BTreeMap::new(),
            operator: Arc::new(placeholder_quorum()),
            router: Arc::new(placeholder_quorum()),
            home,
            target: home,
            rng: Rng::new(seed),
            next_key: 0,
            pending: None,
            eager: (0, None),
            relay_paused: false,
            acks: Vec::new(),
            refused_at: Vec::new(),
            proposers: 0,
        };
        world.operator = world.quorum_for("operator-edge");
        world.router = world.quorum_for("client-edge");
        for cloud in [Cloud::Aws, Cloud::Azure] {
            let store = Arc::new(MemoryStore::new());
            let delay = Arc::new(AtomicU64::new(0));
            world.stores.insert(cloud.name(), Arc::clone(&store));
            world.delays.insert(cloud.name(), Arc::clone(&delay));
            let view = world.store_view(&cloud.cell(), cloud);
            let gate = LeaseGate::new(
                CellId::parse(&cloud.cell()).unwrap_or_else(|_| unreachable_id()),
                world.quorum_for(&cloud.cell()),
                world.clock.clone(),
                LeaseHolder::new(LeaseTiming::default()),
            );
            let cell = Cell::new(
                CellConfig::new(&cloud.cell(), TenantScope::All)
                    .unwrap_or_else(|_| unreachable_id()),
                CellPorts {
                    store: view,
                    clock: world.clock.clone(),
                    ids: Arc::new(SequentialIds::new(
                        0x0190_0000_0000 + u64::from(cloud == Cloud::Azure),
                    )),
                },
            )
            .with_lease_gate(Arc::new(gate));
            world.cells.insert(cloud.name(), cell);
        }
        world
    }

    fn quorum_for(&mut self, actor: &str) -> Arc<QuorumRegistry> {
        self.proposers += 1;
        let acceptors = self
            .acceptors
            .iter()
            .map(|(d, a)| {
                Arc::new(Linked {
                    actor: actor.to_owned(),
                    target: acceptor_name(d),
                    inner: Arc::clone(a),
                    net: Arc::clone(&self.net),
                }) as Arc<dyn Acceptor>
            })
            .collect();
        Arc::new(
            QuorumRegistry::new(acceptors, self.proposers)
                .unwrap_or_else(|_| unreachable!("three acceptors in three domains")),
        )
    }

    fn store_view(&self, actor: &str, cloud: Cloud) -> Arc<FaultyStore<StoreLink>> {
        let inner: Arc<dyn TransactionStore> = self.stores[cloud.name()].clone();
        Arc::new(FaultyStore::new(
            inner,
            StoreLink {
                actor: actor.to_owned(),
                target: cloud.store(),
                net: Arc::clone(&self.net),
                clock: Arc::clone(&self.clock),
                delay_next_commit_ms: Arc::clone(&self.delays[cloud.name()]),
            },
        ))
    }

    fn handle(&self, actor: &str, cloud: Cloud) -> CellHandle {
        CellHandle {
            id: CellId::parse(&cloud.cell()).unwrap_or_else(|_| unreachable_id()),
            store: self.store_view(actor, cloud),
        }
    }

    fn now_ms(&self) -> i64 {
        use paracell_domain::ports::Clock;
        self.clock.now().unix_millis()
    }

    fn tenant() -> TenantId {
        TenantId::parse(TENANT).unwrap_or_else(|_| unreachable_id())
    }

    /// The observers of the home cell, one per domain.
    fn controllers(&mut self) -> Vec<Controller> {
        let home = self.home;
        ["aws", "azure", "gcp"]
            .into_iter()
            .map(|d| {
                let actor = observer_name(d);
                let quorum = self.quorum_for(&actor);
                Controller::new(
                    Watched {
                        observer: d.to_owned(),
                        cell: CellId::parse(&home.cell()).unwrap_or_else(|_| unreachable_id()),
                        cell_domain: home.name().to_owned(),
                        health_url: format!("http://{}/health", home.cell()),
                        tenants: vec![Protected {
                            tenant: Self::tenant(),
                            standby: self.handle(&actor, home.other()),
                        }],
                        old: Some(self.handle(&actor, home)),
                    },
                    Arc::new(Probe {
                        actor: actor.clone(),
                        net: Arc::clone(&self.net),
                    }),
                    Arc::clone(&quorum),
                    MovePorts {
                        registry: quorum,
                        clock: self.clock.clone(),
                        sleep: Arc::new(NoSleep),
                    },
                    self.clock.clone(),
                    ControllerPolicy::default(),
                    LeaseTiming::default(),
                )
            })
            .collect()
    }

    fn new_op(&mut self, key: String) -> Op {
        let account = ACCOUNTS[usize::try_from(self.rng.below(2)).unwrap_or(0)];
        Op {
            key,
            account,
            debit: self.rng.chance(30),
            cents: 100 + self.rng.below(5_000),
        }
    }

    /// Sends `op` to `target` (when the client's link reaches it) and records an acknowledgement;
    /// returns whether it was acknowledged (`None`: unreachable).
    async fn send(&mut self, target: Cloud, op: &Op) -> Option<bool> {
        if !self.net.open("client-edge", &target.cell()) {
            return None;
        }
        let response = self.cells[target.name()]
            .handle(create(&op.key, op.account, op.debit, op.cents))
            .await;
        if !matches!(response.status, 201 | 409) {
            return Some(false);
        }
        let signed = i128::from(op.cents) * if op.debit { -1 } else { 1 };
        self.acks.push(Ack {
            key: op.key.clone(),
            account: op.account,
            cents: if response.status == 201 { signed } else { 0 },
            cell: target,
            at_ms: self.now_ms(),
        });
        Some(true)
    }

    /// One attempt of the sticky client: the pending operation (or a new one) sent to the cell its
    /// router last named; a refusal (421, 503, no answer) refreshes the route and the same key is
    /// tried again next step.
    async fn client_step(&mut self) {
        let op = match self.pending.clone() {
            Some(op) => op,
            None => {
                self.next_key += 1;
                let op = self.new_op(format!("k-{}", self.next_key));
                self.pending = Some(op.clone());
                op
            }
        };
        if self.send(self.target, &op).await == Some(true) {
            self.pending = None;
        } else {
            self.refused_at.push(self.now_ms());
            self.reroute().await;
        }
    }

    /// One attempt of the eager client: routed by a fresh majority read of the placement.
    async fn eager_step(&mut self) {
        let op = match self.eager.1.clone() {
            Some(op) => op,
            None => {
                self.eager.0 += 1;
                let op = self.new_op(format!("e-{}", self.eager.0));
                self.eager.1 = Some(op.clone());
                op
            }
        };
        let Ok(Some(p)) = self.router.get(&Self::tenant()).await else {
            return;
        };
        let target = if p.primary.as_str() == Cloud::Aws.cell() {
            Cloud::Aws
        } else {
            Cloud::Azure
        };
        if self.send(target, &op).await == Some(true) {
            self.eager.1 = None;
        }
    }

    /// The router's refresh: the tenant's primary as the quorum holds it (a majority read; kept as
    /// it was when the router cannot reach one).
    async fn reroute(&mut self) {
        if let Ok(Some(p)) = self.router.get(&Self::tenant()).await {
            self.target = if p.primary.as_str() == Cloud::Aws.cell() {
                Cloud::Aws
            } else {
                Cloud::Azure
            };
        }
    }

    /// The relay: the primary's entries to the standby, when both stores and the link allow.
    async fn relay(&self) {
        for from in [Cloud::Aws, Cloud::Azure] {
            let to = from.other();
            let Some(source) = self.stores[from.name()]
                .head(&Self::tenant())
                .await
                .ok()
                .flatten()
            else {
                continue;
            };
            // A standby, or a cell that holds nothing of the tenant yet (seeded by its first entries).
            let target = self.stores[to.name()]
                .head(&Self::tenant())
                .await
                .ok()
                .flatten();
            if source.role == TenantRole::Primary
                && target.is_none_or(|t| t.role == TenantRole::Standby)
                && self.net.open(&from.cell(), &to.cell())
            {
                let _ = paracell_domain::testing::replicate(
                    &self.cells[from.name()],
                    &self.cells[to.name()],
                )
                .await;
            }
        }
    }

    /// Advances one step: time, the client, the relay (at a random quarter of the steps, so the
    /// standby lags by a few entries, as a stream consumer does); the observers every 2 s.
    async fn step(&mut self, step: u64, controllers: &[Controller]) -> Vec<Decision> {
        self.clock.advance(STEP);
        self.client_step().await;
        self.eager_step().await;
        if !self.relay_paused && self.rng.chance(25) {
            self.relay().await;
        }
        let mut decisions = Vec::new();
        if step.is_multiple_of(TICK_EVERY) {
            for c in controllers {
                if let Some(d) = c.tick().await.decision {
                    decisions.push(d);
                }
            }
        }
        decisions
    }

    /// Starts the world: the tenant registered on its home cell at epoch 1 with the other as
    /// standby, a few writes, the standby caught up.
    async fn start(&mut self) -> Result<(), String> {
        let home = CellId::parse(&self.home.cell()).map_err(|e| e.to_string())?;
        let other = CellId::parse(&self.home.other().cell()).map_err(|e| e.to_string())?;
        let placed = Placement::new(Self::tenant(), home, 1, vec![other]);
        self.operator
            .put(None, &placed)
            .await
            .map_err(|e| format!("register: {e}"))?;
        for _ in 0..8 {
            self.clock.advance(STEP);
            self.client_step().await;
        }
        self.relay().await;
        let standby = self.stores[self.home.other().name()]
            .head(&Self::tenant())
            .await
            .map_err(|e| e.to_string())?;
        if standby.map(|h| h.role) != Some(TenantRole::Standby) {
            return Err("the standby was not seeded".into());
        }
        Ok(())
    }

    async fn entries(&self, cloud: Cloud) -> Vec<SealedEntry> {
        self.stores[cloud.name()]
            .entries_after(&Self::tenant(), 0, 1_000_000)
            .await
            .unwrap_or_default()
    }

    async fn balance_cents(&self, cloud: Cloud, account: &str) -> i128 {
        let Ok(account) = AccountId::parse(account) else {
            return 0;
        };
        self.stores[cloud.name()]
            .balances(&Self::tenant(), &account)
            .await
            .unwrap_or_default()
            .iter()
            .map(|b| cents(&b.available.to_string()))
            .sum()
    }
}

/// The home cell's lease, as a majority reads it.
async fn read_lease(w: &World, home: Cloud) -> Option<lease::CellLease> {
    let cell = CellId::parse(&home.cell()).unwrap_or_else(|_| unreachable_id());
    lease::read(&w.operator, &cell).await.ok().flatten()
}

/// The home cell's lease counter (0: none).
async fn lease_seq(w: &World, home: Cloud) -> u64 {
    read_lease(w, home).await.map_or(0, |l| l.seq)
}

/// The controller that dies: watches the home cell's lease and, the moment it may, revokes it —
/// then does nothing more. Whether it revoked.
async fn crash_watch(w: &World, home: Cloud, watch: &mut LeaseWatch) -> bool {
    let cell = CellId::parse(&home.cell()).unwrap_or_else(|_| unreachable_id());
    let Some(l) = read_lease(w, home).await else {
        return false;
    };
    let now = Duration::from_millis(u64::try_from(w.now_ms()).unwrap_or(0));
    watch.observe(&l, now);
    match watch.expired(now) {
        Some(seq) => matches!(
            lease::revoke(&w.operator, &cell, seq).await,
            Ok(LeaseChange::Applied(_))
        ),
        None => false,
    }
}

/// A client's create on the tenant.
fn create(key: &str, account: &str, debit: bool, cents: u64) -> ApiRequest {
    ApiRequest::new("POST", "/v1/transactions")
        .with_header("content-type", "application/json")
        .with_header("x-tenant-id", TENANT)
        .with_header("idempotency-key", key)
        .with_body(
            format!(
                r#"{{"account_id":"{account}","type":"{}","amount":"{}.{:02}","currency":"EUR"}}"#,
                if debit { "debit" } else { "credit" },
                cents / 100,
                cents % 100
            )
            .into_bytes(),
        )
}

fn unreachable_id() -> ! {
    unreachable!("the drill's identifiers are valid")
}

fn placeholder_quorum() -> QuorumRegistry {
    let acceptors = ["p1", "p2", "p3"]
        .iter()
        .map(|d| Arc::new(MemoryAcceptor::new(d)) as Arc<dyn Acceptor>)
        .collect();
    QuorumRegistry::new(acceptors, u64::MAX).unwrap_or_else(|_| unreachable!("three domains"))
}

/// The checks every scenario ends with, on the cell the quorum names primary now.
async fn common_checks(w: &World, row: &mut Row, lost_keys: &BTreeSet<String>) {
    let primary = match w.operator.get(&World::tenant()).await {
        Ok(Some(p)) if p.primary.as_str() == Cloud::Azure.cell() => Cloud::Azure,
        _ => Cloud::Aws,
    };
    let on_primary = w.entries(primary).await;
    let keys: BTreeMap<String, u16> = on_primary
        .iter()
        .map(|e| (e.entry().key.as_str().to_owned(), e.entry().response.status))
        .collect();
    // Money: each account's balance on the primary is what the client was told was booked there.
    let mut money = Vec::new();
    for account in ACCOUNTS {
        let told: i128 = w
            .acks
            .iter()
            .filter(|a| a.account == account && keys.contains_key(&a.key))
            .map(|a| a.cents)
            .sum();
        let held = w.balance_cents(primary, account).await;
        if told != held {
            money.push(format!("{account}: acknowledged {told} cents, held {held}"));
        }
    }
    check(
        row,
        "money is conserved on the current primary",
        money.is_empty(),
        money.join("; "),
    );
    let mut negative = Vec::new();
    for cloud in [Cloud::Aws, Cloud::Azure] {
        for account in ACCOUNTS {
            let held = w.balance_cents(cloud, account).await;
            if held < 0 {
                negative.push(format!("{} {account}: {held}", cloud.name()));
            }
        }
    }
    check(
        row,
        "no balance is negative",
        negative.is_empty(),
        negative.join("; "),
    );
    let distinct: BTreeSet<&str> = on_primary.iter().map(|e| e.entry().key.as_str()).collect();
    check(
        row,
        "nothing applied twice (every key once on the primary)",
        distinct.len() == on_primary.len(),
        format!("{} entries, {} keys", on_primary.len(), distinct.len()),
    );
    let missing: Vec<&str> = w
        .acks
        .iter()
        .filter(|a| !keys.contains_key(&a.key) && !lost_keys.contains(&a.key))
        .map(|a| a.key.as_str())
        .collect();
    check(
        row,
        "every acknowledged write is on the current primary or in the reconciliation report",
        missing.is_empty(),
        format!("{} acknowledged; missing: {missing:?}", w.acks.len()),
    );
    // One writer per epoch: the entries of each epoch, on both cells, have one origin.
    let mut origins: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for cloud in [Cloud::Aws, Cloud::Azure] {
        for e in w.entries(cloud).await {
            origins
                .entry(e.entry().epoch)
                .or_default()
                .insert(e.entry().origin.to_string());
        }
    }
    let split: Vec<String> = origins
        .iter()
        .filter(|(_, o)| o.len() > 1)
        .map(|(epoch, o)| format!("epoch {epoch}: {o:?}"))
        .collect();
    check(
        row,
        "at most one cell wrote in each epoch",
        split.is_empty(),
        split.join("; "),
    );
    let first_new = w
        .acks
        .iter()
        .filter(|a| a.cell != w.home)
        .map(|a| a.at_ms)
        .min();
    let last_old = w
        .acks
        .iter()
        .filter(|a| a.cell == w.home)
        .map(|a| a.at_ms)
        .max();
    check(
        row,
        "the old primary acknowledged nothing once the new one had written",
        match (last_old, first_new) {
            (Some(old), Some(new)) => old < new,
            _ => true,
        },
        format!("last on the old primary {last_old:?} ms, first on the new {first_new:?} ms"),
    );
    row.acknowledged = w.acks.len();
}

fn check(row: &mut Row, name: &str, passed: bool, detail: impl ToString) {
    row.checks.push(Check {
        name: name.to_owned(),
        passed,
        detail: detail.to_string(),
    });
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// 1 (and 2 after it): the home cloud cut.
    CloudCut,
    /// 6: as 1, with the revoking controller dying before it moved anything.
    ControllerCrash,
    /// 4b: the home cell isolated from the other cloud and the witness, still reachable by a
    /// sticky client: the minority side.
    Isolated,
    /// 7: as 4b, with the home cell's store link slowed.
    DelayedWrite,
}

/// Scenarios 1 (+2), 6 and 7: a failover, then the old primary healed and reconciled.
fn row(scenario: &str, home: Cloud) -> Row {
    Row {
        scenario: scenario.to_owned(),
        home: home.name(),
        checks: Vec::new(),
        rto_ms: None,
        rpo_entries: None,
        acknowledged: 0,
        lost: 0,
    }
}

/// One failover scenario's world, its observers and how far it has run.
struct FailoverRun {
    w: World,
    controllers: Vec<Controller>,
    home: Cloud,
    fault: Fault,
    step: u64,
    /// The drill's own watch, for the controller that dies after revoking: it watches from the
    /// start, every step, so it is the first to see the lease expire.
    watch: LeaseWatch,
    crashed: bool,
}

/// What happened between the fault and the first write on the new primary.
struct Failover {
    fault_at: i64,
    promoted_at_ms: Option<i64>,
    rpo: Option<u64>,
    /// Scenario 7: the key of the write whose commit came back late.
    delayed_key: Option<String>,
}

impl FailoverRun {
    async fn tick(&mut self) {
        self.step += 1;
        if self.fault == Fault::ControllerCrash && !self.crashed {
            self.crashed = crash_watch(&self.w, self.home, &mut self.watch).await;
        }
        self.w.step(self.step, &self.controllers).await;
    }

    /// Normal operation, then up to the worst moment for a fault: right after the home cell renewed
    /// its lease, so its deadline is as far away as it gets (and the RTO measured the longest). The
    /// relay lags for those last seconds: what the standby has not applied then is the RPO, and
    /// reconciliation must report exactly those writes.
    async fn warm_up(&mut self) {
        for _ in 0..40 {
            self.tick().await;
        }
        self.w.relay_paused = true;
        let before = lease_seq(&self.w, self.home).await;
        for _ in 0..32 {
            if lease_seq(&self.w, self.home).await != before {
                break;
            }
            self.tick().await;
        }
        self.w.relay_paused = false;
    }

    fn inject(&mut self) {
        let home = self.home;
        match self.fault {
            Fault::CloudCut | Fault::ControllerCrash => {
                self.w.net.set_down(&home.cell(), true);
                self.w.net.set_down(&home.store(), true);
                self.w.net.set_down(&acceptor_name(home.name()), true);
                self.w.net.set_down(&observer_name(home.name()), true);
            }
            Fault::Isolated | Fault::DelayedWrite => {
                // The home cell still runs and reaches its own store and acceptor, but nothing in
                // the other cloud or the witness; the clients still reach it.
                let components = self.w.components.clone();
                for other in [home.other().name(), "gcp"] {
                    self.w.net.cut_domains(home.name(), other, &components);
                }
                if self.fault == Fault::DelayedWrite {
                    // Its next commit returns 13 s later: past the deadline of its last renewal.
                    self.w.delays[home.name()].store(13_000, Ordering::SeqCst);
                }
            }
        }
    }

    /// Injects the fault and runs until the standby is promoted and has taken a write (or 60 s).
    async fn until_failover(&mut self) -> Failover {
        let standby = self.home.other();
        self.inject();
        let mut run = Failover {
            fault_at: self.w.now_ms(),
            promoted_at_ms: None,
            rpo: None,
            delayed_key: None,
        };
        let tenant = World::tenant();
        for _ in 0..240 {
            let standby_before = self.w.stores[standby.name()]
                .head(&tenant)
                .await
                .ok()
                .flatten();
            self.tick().await;
            // The first attempt after the fault is the delayed one; answered 503, it stays pending.
            if self.fault == Fault::DelayedWrite && run.delayed_key.is_none() {
                run.delayed_key = self.w.pending.as_ref().map(|op| op.key.clone());
            }
            if run.promoted_at_ms.is_none()
                && let Ok(Some(p)) = self.w.operator.get(&tenant).await
                && p.primary.as_str() == standby.cell()
            {
                run.promoted_at_ms = Some(self.w.now_ms());
                let kept = self.w.stores[self.home.name()]
                    .head(&tenant)
                    .await
                    .ok()
                    .flatten()
                    .map_or(0, |h| h.position.seq);
                let promoted_from = standby_before.map_or(0, |h| h.position.seq);
                run.rpo = Some(kept.saturating_sub(promoted_from));
            }
            if run.promoted_at_ms.is_some() && self.w.acks.iter().any(|a| a.cell == standby) {
                break;
            }
        }
        run
    }

    /// The failover's own checks and figures.
    fn failover_checks(&self, row: &mut Row, run: &Failover) {
        let w = &self.w;
        let first_refused = w.refused_at.iter().copied().find(|t| *t >= run.fault_at);
        let first_new = w
            .acks
            .iter()
            .filter(|a| a.cell == self.home.other())
            .map(|a| a.at_ms)
            .min();
        let rto = first_refused.zip(first_new).map(|(r, n)| n - r);
        row.rto_ms = rto;
        row.rpo_entries = run.rpo;
        check(
            row,
            "failed over automatically (the quorum names the standby, at epoch 2)",
            run.promoted_at_ms.is_some(),
            format!(
                "promoted {:?} ms after the fault",
                run.promoted_at_ms.map(|t| t - run.fault_at)
            ),
        );
        check(
            row,
            "RTO within lease + 10 s (first refused write to first write on the new primary)",
            rto.is_some_and(|r| r <= RTO_TARGET_MS),
            format!("{rto:?} ms"),
        );
        if self.fault == Fault::ControllerCrash {
            check(
                row,
                "the lease was revoked by a controller that then died",
                self.crashed,
                "",
            );
        }
        if self.fault == Fault::Isolated {
            let last_old = w
                .acks
                .iter()
                .filter(|a| a.cell == self.home)
                .map(|a| a.at_ms)
                .max()
                .unwrap_or(0);
            check(
                row,
                "the isolated primary acknowledged nothing later than one lease after it was cut off",
                last_old - run.fault_at <= 12_000,
                format!(
                    "last acknowledgement {} ms after the cut",
                    last_old - run.fault_at
                ),
            );
        }
    }

    /// Scenario 2: the home cloud back — a stale route refused, reconciliation's report against the
    /// measured loss, and the old primary still fenced in a new tenure. Returns the keys the
    /// report lists.
    async fn heal(&mut self, row: &mut Row, healed: &mut Row, run: &Failover) -> BTreeSet<String> {
        let (home, standby) = (self.home, self.home.other());
        let w = &mut self.w;
        w.net.heal();
        w.delays[home.name()].store(0, Ordering::SeqCst);
        let stale = w.cells[home.name()]
            .handle(create("stale-router", "ACC-1", false, 100))
            .await;
        check(
            healed,
            "a stale route to the old primary is refused (its lease is revoked)",
            stale.status != 201,
            format!("{}", stale.status),
        );
        let (old, new) = (
            w.handle("operator-edge", home),
            w.handle("operator-edge", standby),
        );
        let mut lost_keys = BTreeSet::new();
        match reconcile(&World::tenant(), &old, &new, w.operator.as_ref()).await {
            Ok(report) => {
                // Measured: what the client was told was booked on the old primary and the new
                // one does not have.
                let on_new: BTreeSet<String> = w
                    .entries(standby)
                    .await
                    .iter()
                    .map(|e| e.entry().key.as_str().to_owned())
                    .collect();
                let measured: BTreeSet<String> = w
                    .acks
                    .iter()
                    .filter(|a| a.cell == home && !on_new.contains(&a.key))
                    .map(|a| a.key.clone())
                    .collect();
                let reported: BTreeSet<String> = report
                    .entries
                    .iter()
                    .filter(|e| matches!(e.class, TailClass::Lost | TailClass::LostRefusal))
                    .map(|e| e.key.clone())
                    .collect();
                healed.lost = reported.len();
                row.lost = reported.len();
                check(
                    healed,
                    "reported loss = measured loss",
                    reported == measured,
                    format!("reported {reported:?}, measured {measured:?}"),
                );
                if let Some(key) = &run.delayed_key {
                    let in_tail = report.entries.iter().any(|e| &e.key == key);
                    let acked_on_old = w.acks.iter().any(|a| &a.key == key && a.cell == home);
                    check(
                        row,
                        "the delayed write was not acknowledged by the old primary and is in the reconciled tail",
                        in_tail && !acked_on_old,
                        format!(
                            "key {key}: in the tail {in_tail}, acknowledged by the old primary {acked_on_old}"
                        ),
                    );
                }
                lost_keys = report.entries.iter().map(|e| e.key.clone()).collect();
            }
            Err(e) => check(healed, "reconciliation ran", false, e),
        }
        // Stays fenced, even once its lease is granted a new tenure.
        let cell = CellId::parse(&home.cell()).unwrap_or_else(|_| unreachable_id());
        let tenure = match lease::renew(&w.operator, &cell).await {
            Ok(LeaseChange::Refused {
                current: Some(l), ..
            }) => l.tenure,
            _ => 0,
        };
        let _ = lease::reinstate(&w.operator, &cell, tenure).await;
        w.clock.advance(Duration::from_secs(5));
        let after = w.cells[home.name()]
            .handle(create("after-reinstate", "ACC-1", false, 100))
            .await;
        check(
            healed,
            "the old primary stays fenced after a new tenure (421 naming the new primary)",
            after.status == 421,
            format!("{} {}", after.status, String::from_utf8_lossy(&after.body)),
        );
        lost_keys
    }
}

/// Scenarios 1 (+2), 4b, 6 and 7: a failover, then the old primary healed and reconciled.
async fn failover_scenario(home: Cloud, seed: u64, fault: Fault) -> Vec<Row> {
    let name = match fault {
        Fault::CloudCut => "1 home cloud cut: automatic failover",
        Fault::ControllerCrash => "6 a controller dies after revoking: the next tick finishes",
        Fault::Isolated => {
            "4b home cell cut from the other cloud and the witness: it stops within one lease, then failover"
        }
        Fault::DelayedWrite => "7 a write delayed past the lease: not acknowledged, reported",
    };
    let mut main = row(name, home);
    let mut healed = row(
        "2 home cloud healed: old primary fenced, reconciled, stays fenced",
        home,
    );
    let mut w = World::new(home, seed);
    if let Err(e) = w.start().await {
        check(&mut main, "the world started", false, e);
        return vec![main];
    }
    let controllers = w.controllers();
    let mut run = FailoverRun {
        w,
        controllers,
        home,
        fault,
        step: 0,
        watch: LeaseWatch::new(LeaseTiming::default()),
        crashed: false,
    };
    run.warm_up().await;
    let failover = run.until_failover().await;
    run.failover_checks(&mut main, &failover);
    // The client writes on for a while on the new primary.
    for _ in 0..40 {
        run.tick().await;
    }
    let lost_keys = run.heal(&mut main, &mut healed, &failover).await;
    common_checks(&run.w, &mut main, &lost_keys).await;
    common_checks(&run.w, &mut healed, &lost_keys).await;
    if fault == Fault::CloudCut {
        vec![main, healed]
    } else {
        main.checks.extend(healed.checks);
        vec![main]
    }
}

/// Scenarios 3 and 4: a fault that must not move the tenant.
async fn steady_scenario(home: Cloud, seed: u64, witness_cut: bool) -> Row {
    let mut row = row(
        if witness_cut {
            "3 witness cut: leases renew, no failover"
        } else {
            "4 clouds cut from each other, both see the witness: one primary"
        },
        home,
    );
    let mut w = World::new(home, seed);
    if let Err(e) = w.start().await {
        check(&mut row, "the world started", false, e);
        return row;
    }
    let controllers = w.controllers();
    let mut step = 0;
    for _ in 0..40 {
        step += 1;
        w.step(step, &controllers).await;
    }
    let cell = CellId::parse(&home.cell()).unwrap_or_else(|_| unreachable_id());
    if witness_cut {
        w.net.set_down(&acceptor_name("gcp"), true);
    } else {
        w.net.cut_domains(
            Cloud::Aws.name(),
            Cloud::Azure.name(),
            &w.components.clone(),
        );
    }
    // The operator's own reads go through the witness: heal nothing, read via a cell's view.
    let before = lease_seq(&w, home).await;
    let acks_before = w.acks.len();
    let mut decisions = Vec::new();
    for _ in 0..240 {
        step += 1;
        decisions.extend(w.step(step, &controllers).await);
    }
    let after = lease_seq(&w, home).await;
    let placement = w.operator.get(&World::tenant()).await;
    check(
        &mut row,
        "no failover: the quorum still names the home cell at epoch 1",
        matches!(&placement, Ok(Some(p)) if p.primary == cell && p.epoch == 1),
        format!("{placement:?}"),
    );
    check(
        &mut row,
        "the home cell's lease kept renewing",
        after > before + 10,
        format!("lease counter {before} → {after} over 60 s"),
    );
    let during = w.acks.len() - acks_before;
    check(
        &mut row,
        "the client kept writing on the home cell",
        during >= 200 && w.acks[acks_before..].iter().all(|a| a.cell == home),
        format!("{during} acknowledged during the fault"),
    );
    check(
        &mut row,
        "no controller decided to promote",
        !decisions
            .iter()
            .any(|d| matches!(d, Decision::Promote { .. } | Decision::Finish)),
        format!("{} decisions", decisions.len()),
    );
    w.net.heal();
    common_checks(&w, &mut row, &BTreeSet::new()).await;
    row
}

/// Runs every scenario from each home.
pub fn run(options: OutageOptions) -> (DrillReport, Vec<Row>) {
    let mut rows = Vec::new();
    let report = super::run_on_runtime(0, async |report: &mut DrillReport| {
        for (i, home) in [Cloud::Aws, Cloud::Azure].into_iter().enumerate() {
            let seed = options.seed + i as u64;
            rows.extend(failover_scenario(home, seed, Fault::CloudCut).await);
            rows.push(steady_scenario(home, seed, true).await);
            rows.push(steady_scenario(home, seed, false).await);
            rows.extend(failover_scenario(home, seed, Fault::Isolated).await);
            rows.extend(failover_scenario(home, seed, Fault::ControllerCrash).await);
            rows.extend(failover_scenario(home, seed, Fault::DelayedWrite).await);
        }
        report_rows(report, &rows);
        Ok(())
    });
    (report, rows)
}

/// Each row's RTO and RPO as figures and its checks, named by scenario and home.
pub(crate) fn report_rows(report: &mut DrillReport, rows: &[Row]) {
    for row in rows {
        if let Some(rto) = row.rto_ms {
            report.figure(
                &format!("RTO, {} at home on {}", row.scenario, row.home),
                format!("{rto} ms"),
            );
        }
        if let Some(rpo) = row.rpo_entries {
            report.figure(
                &format!("RPO, {} at home on {}", row.scenario, row.home),
                format!("{rpo} entries"),
            );
        }
        for c in &row.checks {
            report.check(
                &format!("[{} | {}] {}", row.home, row.scenario, c.name),
                c.passed,
                &c.detail,
            );
        }
    }
}
