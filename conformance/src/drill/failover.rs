//! The failover harness, in process (Jepsen-style, seeded and reproducible): each schedule runs one
//! tenant on an AWS cell (the Lambda adapter) and an Azure cell (the custom handler), replicating both
//! ways through the peers' envelopes, under a client that creates, retries with reused keys and
//! follows `421 tenant-moved`, while relays run at random moments on random splits (duplicates and
//! reordering) and planned migrations move the tenant back and forth. The waits of a migration let
//! the world go on: the relays run and the client keeps writing to the frozen cell. Both cells are
//! under primary leases on a shared virtual clock; some schedules end in an **unplanned failover**:
//! the primary is partitioned (from the operator, the relay and the registry, not from a stale
//! client), the standby is promoted after the lease wait, the old primary returns and is reconciled.
//!
//! The registry is the quorum register (`placement::quorum::QuorumRegistry`) over three acceptors —
//! one per cloud and a witness — and the partition takes the primary's cloud's acceptor with it: every
//! failover is decided by the two acceptors left, and every move reads and writes through rounds.
//!
//! After each schedule: money is conserved (the balances on the current primary are the acknowledged
//! credits minus the acknowledged debits), no balance is negative, every acknowledged write is on the
//! current primary, a retry of any acknowledged key replays the original answer there, at most one
//! cell wrote in each epoch, nothing was applied twice (both cells converge on the same position and
//! balances), and a frozen cell booked nothing; after a failover, every acknowledged write is on the
//! new primary or in the reconciliation report, the money the report lists as lost is exactly what
//! is missing, the loss it classified is what the old primary kept, and the old primary booked
//! nothing once its lease had lapsed.
//!
//! ```text
//! paracell-conformance drill failover [--schedules N] [--writes W] [--seed S]
//! ```

use super::replication::{AWS_DOORS, AZURE_DOORS, Side, relay_to, side_with};
use super::{DrillReport, RelayHost, Rng, answer, cents, create_request, random_groups};
use crate::envelopes::Envelope;
use crate::request::{ClientRequest, ClientResponse};
use crate::runner;
use paracell_aws::LambdaCell;
use paracell_azure::{AzureConfig, AzureHandler, Mode};
use paracell_domain::memory::ManualClock;
use paracell_domain::placement::failover::{FailoverPolicy, failover};
use paracell_domain::placement::lease::{Ownership, PlacementSource};
use paracell_domain::placement::migrate::{
    CellHandle, MigrationError, MigrationPolicy, MovePorts, migrate,
};
use paracell_domain::placement::quorum::{Acceptor, MemoryAcceptor, QuorumRegistry};
use paracell_domain::placement::reconcile::reconcile;
use paracell_domain::placement::registry::{Placement, PlacementRegistry, RegistryError};
use paracell_domain::ports::{Clock, Sleep, StoreError, TransactionStore};
use paracell_domain::transaction::AccountId;
use paracell_domain::{TenantId, Timestamp};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The harness's knobs.
#[derive(Debug, Clone, Copy)]
pub struct FailoverOptions {
    /// Schedules to run.
    pub schedules: usize,
    /// Client operations per schedule.
    pub writes: usize,
    /// The first schedule's seed (schedule `i` runs with `seed + i`).
    pub seed: u64,
}

const TENANT: &str = "coop-1";
const ACCOUNTS: [&str; 3] = ["ACC-1", "ACC-2", "ACC-3"];

/// The invariants, in report order.
const CHECKS: [&str; 11] = [
    "money is conserved on the current primary (acknowledged credits minus debits, minus what reconciliation lists as lost)",
    "no balance is negative",
    "every acknowledged write is on the current primary, byte for byte, or in the reconciliation report",
    "a retry of every acknowledged key replays the original status, body and Location there",
    "at most one cell wrote in each epoch",
    "nothing applied twice: both cells converge (or, after a failover, the old primary is fenced)",
    "a frozen cell booked nothing",
    "every migration and failover completed or rolled back cleanly",
    "the loss reconciliation classified is exactly what the old primary kept beyond the promotion",
    "never two primaries: the standby was promoted after the old primary's lease lapsed, and the old one booked nothing after",
    "the failover was decided by the two acceptors left (the cut cloud's quorum acceptor took no part)",
];

/// The cells' lease, on the schedule's virtual clock.
const LEASE: Duration = Duration::from_secs(30);

/// What one schedule saw.
#[derive(Default)]
struct Outcome {
    violations: BTreeMap<usize, String>,
    acknowledged: usize,
    migrations: usize,
    rolled_back: usize,
    followed_421: usize,
    frozen_503: usize,
    paused_millis: Vec<i64>,
    failovers: usize,
    lost_entries: usize,
    trace: Vec<String>,
}

/// A cell's view of the registry, which a partition cuts off.
struct View {
    registry: Arc<QuorumRegistry>,
    cut: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl PlacementRegistry for View {
    async fn get(&self, tenant: &TenantId) -> Result<Option<Placement>, StoreError> {
        if self.cut.load(Ordering::Relaxed) {
            return Err(StoreError::Unavailable {
                retry_after_secs: 1,
                detail: "partitioned".into(),
            });
        }
        self.registry.get(tenant).await
    }

    async fn put(&self, expected: Option<u64>, p: &Placement) -> Result<(), RegistryError> {
        self.registry.put(expected, p).await
    }
}

/// A cell under leases confirmed from its view of the registry, on the schedule's clock.
fn leased_side(
    name: &'static str,
    id: &str,
    peer: &str,
    doors: &'static [Envelope],
    clock: Arc<ManualClock>,
    view: Arc<View>,
) -> Result<Side, String> {
    let ownership = Ownership {
        source: PlacementSource::Registry(view),
        ttl: LEASE,
    };
    side_with(name, id, peer, doors, clock, Some(ownership))
}

impl Outcome {
    fn violate(&mut self, check: usize, detail: impl Into<String>) {
        self.violations
            .entry(check)
            .or_insert_with(|| detail.into());
    }
}

/// The two cells of a schedule and how to reach them.
struct World {
    aws: Side,
    azure: Side,
    lambda: LambdaCell,
    handler: AzureHandler,
    clock: Arc<ManualClock>,
    /// Per cell (AWS, Azure): cut off from the operator, the relay and the registry.
    cut: [Arc<AtomicBool>; 2],
    /// The quorum's acceptors: AWS, Azure, the witness. A cut cloud loses its acceptor too.
    acceptors: [Arc<MemoryAcceptor>; 3],
}

impl World {
    fn side(&self, cell: &str) -> &Side {
        if cell == "cell-aws" {
            &self.aws
        } else {
            &self.azure
        }
    }

    fn other(&self, cell: &str) -> &'static str {
        if cell == "cell-aws" {
            "cell-azure"
        } else {
            "cell-aws"
        }
    }

    /// Sends `request` to `cell` through one of its platform's front doors.
    async fn send(
        &self,
        cell: &str,
        request: &ClientRequest,
        rng: &mut Rng,
    ) -> Result<ClientResponse, String> {
        let side = self.side(cell);
        let door: Envelope =
            side.doors[usize::try_from(rng.below(side.doors.len() as u64)).unwrap_or(0)];
        answer(
            runner::driver(door, side.cell.clone())
                .exchange(door, request, 0)
                .await,
        )
    }

    fn partitioned(&self) -> bool {
        self.cut.iter().any(|c| c.load(Ordering::Relaxed))
    }

    /// One relay round on each cell: pending entries in random groups, some invoked twice. Nothing
    /// crosses a partition.
    async fn relay(&self, rng: &mut Rng) -> Result<(), String> {
        if self.partitioned() {
            return Ok(());
        }
        for (side, host) in [
            (&self.aws, RelayHost::Lambda(&self.lambda)),
            (&self.azure, RelayHost::Azure(&self.handler)),
        ] {
            let pending = side
                .store
                .pending_entries(None, 10_000)
                .await
                .map_err(|e| e.to_string())?
                .entries;
            for group in random_groups(&pending, rng) {
                let times = if rng.chance(15) { 2 } else { 1 };
                for _ in 0..times {
                    host.invoke(&group, rng).await?;
                }
            }
        }
        Ok(())
    }
}

/// A migration's waits: the relays run, and a client keeps writing to the frozen cell.
struct Waits {
    world: Arc<World>,
    frozen: &'static str,
    rng: Mutex<Rng>,
    probes: Mutex<Vec<u16>>,
}

#[async_trait::async_trait]
impl Sleep for Waits {
    async fn sleep(&self, _: Duration) {
        self.world.clock.advance(Duration::from_millis(50));
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let n = rng.next_u64();
        if rng.chance(50) {
            let probe = create_request(TENANT, &format!("probe-{n}"), "ACC-1", false, 100);
            if let Ok(r) = self.world.send(self.frozen, &probe, &mut rng).await {
                self.probes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(r.status);
            }
        }
        let _ = self.world.relay(&mut rng).await;
        *self.rng.lock().unwrap_or_else(|p| p.into_inner()) = rng;
    }
}

/// The client: what it was told, and what it must still get an answer for.
#[derive(Default)]
struct Client {
    /// key → the request and the first final answer (201 or 409).
    acked: BTreeMap<String, (ClientRequest, ClientResponse)>,
    /// Requests answered 503 (or 421 twice): sent again later with the same key.
    unanswered: Vec<(String, ClientRequest)>,
    /// Where the client sends writes: the cell it last learned is primary (refreshed by a 421 only,
    /// as a router's cache would be).
    route: Option<&'static str>,
}

/// The cell the client believes is primary: the registry's, else where the tenant started.
async fn primary(registry: &QuorumRegistry, tenant: &TenantId) -> &'static str {
    match registry.get(tenant).await {
        Ok(Some(p)) if p.primary.as_str() == "cell-azure" => "cell-azure",
        _ => "cell-aws",
    }
}

/// Sends a write to the primary, following one `421 tenant-moved` to the cell it names.
async fn write(
    world: &World,
    registry: &QuorumRegistry,
    tenant: &TenantId,
    (key, request): (&str, &ClientRequest),
    client: &mut Client,
    rng: &mut Rng,
    outcome: &mut Outcome,
) -> Result<(), String> {
    let mut target = match client.route {
        Some(route) => route,
        None => primary(registry, tenant).await,
    };
    for _ in 0..2 {
        client.route = Some(target);
        let response = world.send(target, request, rng).await?;
        match response.status {
            201 | 409 => {
                client
                    .acked
                    .entry(key.to_owned())
                    .or_insert_with(|| (request.clone(), response));
                return Ok(());
            }
            421 => {
                outcome.followed_421 += 1;
                let body: serde_json::Value =
                    serde_json::from_slice(&response.body).unwrap_or_default();
                target = match body["primary_cell"].as_str() {
                    Some("cell-azure") => "cell-azure",
                    Some("cell-aws") => "cell-aws",
                    other => return Err(format!("{key}: 421 without a known primary: {other:?}")),
                };
            }
            503 => {
                outcome.frozen_503 += 1;
                break;
            }
            status => {
                return Err(format!(
                    "{key}: unexpected {status} {}",
                    String::from_utf8_lossy(&response.body)
                ));
            }
        }
    }
    client.unanswered.push((key.to_owned(), request.clone()));
    Ok(())
}

async fn schedule(seed: u64, writes: usize) -> Result<Outcome, String> {
    let mut outcome = Outcome::default();
    let clock = Arc::new(ManualClock::default());
    let acceptors = ["aws", "azure", "witness"].map(|d| Arc::new(MemoryAcceptor::new(d)));
    let registry = Arc::new(
        QuorumRegistry::new(
            acceptors
                .iter()
                .map(|a| Arc::clone(a) as Arc<dyn Acceptor>)
                .collect(),
            seed,
        )
        .map_err(|e| e.to_string())?,
    );
    let cut = [
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    ];
    let view = |i: usize| {
        Arc::new(View {
            registry: registry.clone(),
            cut: cut[i].clone(),
        })
    };
    let aws = leased_side(
        "aws",
        "cell-aws",
        "cell-azure",
        &AWS_DOORS,
        clock.clone(),
        view(0),
    )?;
    let azure = leased_side(
        "azure",
        "cell-azure",
        "cell-aws",
        &AZURE_DOORS,
        clock.clone(),
        view(1),
    )?;
    let lambda = LambdaCell::new(aws.cell.clone()).with_relay(relay_to(&aws, &azure, seed ^ 1)?);
    let handler = AzureHandler::with_relay(
        azure.cell.clone(),
        AzureConfig {
            mode: Mode::Payload,
            ..AzureConfig::default()
        },
        relay_to(&azure, &aws, seed ^ 2)?,
    );
    let world = Arc::new(World {
        aws,
        azure,
        lambda,
        handler,
        clock,
        cut,
        acceptors,
    });
    let tenant = TenantId::parse(TENANT).map_err(|e| e.to_string())?;
    let mut rng = Rng::new(seed);
    let mut client = Client::default();

    let mut failed_over: Option<Unplanned> = None;
    for i in 0..writes {
        world.clock.advance(Duration::from_millis(200));
        let roll = rng.below(100);
        if roll < 55 {
            let key = format!("k-{i}");
            let account = ACCOUNTS[usize::try_from(rng.below(3)).unwrap_or(0)];
            let request =
                create_request(TENANT, &key, account, rng.chance(35), rng.below(40_000) + 1);
            outcome.trace.push(format!("write {key}"));
            write(
                &world,
                &registry,
                &tenant,
                (&key, &request),
                &mut client,
                &mut rng,
                &mut outcome,
            )
            .await?;
        } else if roll < 65 && !client.acked.is_empty() {
            // A retry of an acknowledged key, wherever the client believes the primary is.
            let keys: Vec<String> = client.acked.keys().cloned().collect();
            let key = keys[usize::try_from(rng.below(keys.len() as u64)).unwrap_or(0)].clone();
            outcome.trace.push(format!("retry {key}"));
            let request = client.acked[&key].0.clone();
            write(
                &world,
                &registry,
                &tenant,
                (&key, &request),
                &mut client,
                &mut rng,
                &mut outcome,
            )
            .await?;
        } else if roll < 72 && !client.unanswered.is_empty() {
            let (key, request) = client.unanswered.remove(0);
            outcome.trace.push(format!("resend {key}"));
            write(
                &world,
                &registry,
                &tenant,
                (&key, &request),
                &mut client,
                &mut rng,
                &mut outcome,
            )
            .await?;
        } else if roll < 93 || (failed_over.is_some() && roll < 100) {
            outcome.trace.push("relay".into());
            world.relay(&mut rng).await?;
        } else if roll < 97 {
            migration(
                &world,
                &registry,
                &tenant,
                &mut client,
                &mut rng,
                &mut outcome,
            )
            .await?;
        } else {
            failed_over = unplanned(
                &world,
                &registry,
                &tenant,
                &mut client,
                &mut rng,
                &mut outcome,
            )
            .await?;
        }
    }
    // The end: every unanswered write gets its answer, the relays drain.
    for _ in 0..20 {
        world.relay(&mut rng).await?;
        let pending: Vec<(String, ClientRequest)> = std::mem::take(&mut client.unanswered);
        for (key, request) in pending {
            write(
                &world,
                &registry,
                &tenant,
                (&key, &request),
                &mut client,
                &mut rng,
                &mut outcome,
            )
            .await?;
        }
        if client.unanswered.is_empty()
            && world
                .aws
                .store
                .pending_entries(None, 1)
                .await
                .map_err(|e| e.to_string())?
                .entries
                .is_empty()
            && world
                .azure
                .store
                .pending_entries(None, 1)
                .await
                .map_err(|e| e.to_string())?
                .entries
                .is_empty()
        {
            break;
        }
    }
    // The old primary is back: reconcile it against the new one.
    let tail = match &failed_over {
        Some(f) => Some(reconciled(&world, &registry, &tenant, f, &mut outcome).await?),
        None => None,
    };
    outcome.acknowledged = client.acked.len();
    verify(
        &world,
        &registry,
        &tenant,
        &client,
        tail.as_ref(),
        &mut rng,
        &mut outcome,
    )
    .await?;
    Ok(outcome)
}

/// An unplanned failover that happened in a schedule.
struct Unplanned {
    from: &'static str,
    to: &'static str,
    /// The sequence number the new primary was promoted at.
    promoted_at: u64,
}

/// What reconciliation found on the returning primary.
struct Tail {
    keys: BTreeSet<String>,
    lost_cents: i128,
}

fn index(cell: &str) -> usize {
    usize::from(cell != "cell-aws")
}

/// The failover's waits: time passes, and a client with a stale route keeps writing to the
/// partitioned primary (which books while its lease holds, and must not after).
struct StaleClient {
    world: Arc<World>,
    from: &'static str,
    rng: Mutex<Rng>,
    booked: Mutex<Vec<(String, ClientRequest, ClientResponse)>>,
    answers: Mutex<Vec<(Timestamp, u16)>>,
}

#[async_trait::async_trait]
impl Sleep for StaleClient {
    async fn sleep(&self, d: Duration) {
        self.world.clock.advance(d);
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if rng.chance(60) {
            let key = format!("stale-{}", rng.next_u64());
            let account = ACCOUNTS[usize::try_from(rng.below(3)).unwrap_or(0)];
            let request =
                create_request(TENANT, &key, account, rng.chance(30), rng.below(20_000) + 1);
            if let Ok(response) = self.world.send(self.from, &request, &mut rng).await {
                self.answers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((self.world.clock.now(), response.status));
                if matches!(response.status, 201 | 409) {
                    self.booked
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((key, request, response));
                }
            }
        }
        *self.rng.lock().unwrap_or_else(|p| p.into_inner()) = rng;
    }
}

async fn unplanned(
    world: &Arc<World>,
    registry: &Arc<QuorumRegistry>,
    tenant: &TenantId,
    client: &mut Client,
    rng: &mut Rng,
    outcome: &mut Outcome,
) -> Result<Option<Unplanned>, String> {
    let from = primary(registry, tenant).await;
    let to = world.other(from);
    let to_head = world
        .side(to)
        .store
        .head(tenant)
        .await
        .map_err(|e| e.to_string())?;
    if !to_head.is_some_and(|h| {
        h.role == paracell_domain::placement::TenantRole::Standby && h.primary.as_str() == from
    }) {
        outcome
            .trace
            .push(format!("failover {from} → {to} skipped: no standby yet"));
        return Ok(None);
    }
    outcome
        .trace
        .push(format!("failover {from} → {to}, {from} partitioned"));
    world.cut[index(from)].store(true, Ordering::Relaxed);
    world.acceptors[index(from)].set_reachable(false);
    let started = world.clock.now();
    let stale = Arc::new(StaleClient {
        world: world.clone(),
        from,
        rng: Mutex::new(Rng::new(rng.next_u64())),
        booked: Mutex::new(Vec::new()),
        answers: Mutex::new(Vec::new()),
    });
    let ports = MovePorts {
        registry: registry.clone(),
        clock: world.clock.clone(),
        sleep: stale.clone(),
    };
    let policy = FailoverPolicy {
        lease_ttl: LEASE,
        clock_skew: Duration::from_secs(1),
        invocation_timeout: Duration::from_secs(5),
        poll: Duration::from_secs(2),
    };
    let from_id = world.side(from).cell.config().cell_id.clone();
    let target = CellHandle {
        id: world.side(to).cell.config().cell_id.clone(),
        store: world.side(to).store.clone(),
    };
    let result = failover(tenant, &from_id, None, &target, &ports, None, policy).await;
    // Decided without the cut cloud: its acceptor still holds a placement naming the old primary.
    let cut_holds = world.acceptors[index(from)]
        .slot(&format!("placement/{tenant}"))
        .and_then(|slot| slot.accepted)
        .and_then(|accepted| Placement::parse(&accepted.value).ok());
    if result.is_ok()
        && cut_holds
            .as_ref()
            .is_some_and(|p| p.primary.as_str() != from)
    {
        outcome.violate(
            10,
            format!("{from}'s acceptor took part in the failover while cut off"),
        );
    }
    // The partition heals; the old primary learns of the promotion on its next write.
    world.cut[index(from)].store(false, Ordering::Relaxed);
    world.acceptors[index(from)].set_reachable(true);
    for (key, request, response) in stale
        .booked
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain(..)
    {
        client.acked.entry(key).or_insert((request, response));
    }
    // Its lease was last confirmed before the partition: it lapsed by `started + LEASE`.
    let lapsed = started.plus_millis(i64::try_from(LEASE.as_millis()).unwrap_or(0));
    let late: Vec<Timestamp> = stale
        .answers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(at, status)| *at >= lapsed && *status == 201)
        .map(|(at, _)| *at)
        .collect();
    if let Some(at) = late.first() {
        outcome.violate(
            9,
            format!("{from} booked at {at}, after its lease lapsed at {lapsed}"),
        );
    }
    // The promotion is the failover's last step: it must come after the old lease lapsed, or two
    // primaries could have booked at the same time.
    let promoted = world.clock.now();
    if result.is_ok() && promoted < lapsed {
        outcome.violate(
            9,
            format!("{to} was promoted at {promoted}, before {from}'s lease lapsed at {lapsed}"),
        );
    }
    match result {
        Ok(report) => {
            outcome.failovers += 1;
            Ok(Some(Unplanned {
                from,
                to,
                promoted_at: report.promoted_at.seq,
            }))
        }
        Err(e) => {
            outcome.violate(7, format!("failover {from} → {to}: {e}"));
            Ok(None)
        }
    }
}

/// Reconciles the returning primary; checks that what it classified is exactly what it kept.
async fn reconciled(
    world: &World,
    registry: &Arc<QuorumRegistry>,
    tenant: &TenantId,
    failed_over: &Unplanned,
    outcome: &mut Outcome,
) -> Result<Tail, String> {
    let handle = |cell: &str| CellHandle {
        id: world.side(cell).cell.config().cell_id.clone(),
        store: world.side(cell).store.clone(),
    };
    let report = reconcile(
        tenant,
        &handle(failed_over.from),
        &handle(failed_over.to),
        registry.as_ref(),
    )
    .await
    .map_err(|e| format!("reconcile: {e}"))?;
    let old_seq = world
        .side(failed_over.from)
        .store
        .head(tenant)
        .await
        .map_err(|e| e.to_string())?
        .map_or(0, |h| h.position.seq);
    let kept = old_seq.saturating_sub(failed_over.promoted_at);
    if report.entries.len() as u64 != kept {
        outcome.violate(
            8,
            format!(
                "{} classified, {kept} kept beyond seq {}",
                report.entries.len(),
                failed_over.promoted_at
            ),
        );
    }
    let (keys, lost, lost_cents) = super::reconciled_money(&report);
    outcome.lost_entries += lost;
    let tail = Tail { keys, lost_cents };
    Ok(tail)
}

async fn migration(
    world: &Arc<World>,
    registry: &Arc<QuorumRegistry>,
    tenant: &TenantId,
    client: &mut Client,
    rng: &mut Rng,
    outcome: &mut Outcome,
) -> Result<(), String> {
    let from = primary(registry, tenant).await;
    let to = world.other(from);
    outcome.trace.push(format!("migrate {from} → {to}"));
    let handle = |cell: &str| CellHandle {
        id: world.side(cell).cell.config().cell_id.clone(),
        store: world.side(cell).store.clone(),
    };
    // Most migrations get the time they need; some get none (right after a write the target has
    // not received) and must roll back.
    let hurried = rng.chance(20);
    if hurried {
        let key = format!("before-move-{}", rng.next_u64());
        let request = create_request(TENANT, &key, "ACC-1", false, 100);
        let response = world.send(from, &request, rng).await?;
        if response.status == 201 {
            client.acked.insert(key, (request, response));
        }
    }
    let waits = Arc::new(Waits {
        world: world.clone(),
        frozen: from,
        rng: Mutex::new(Rng::new(rng.next_u64())),
        probes: Mutex::new(Vec::new()),
    });
    let ports = MovePorts {
        registry: registry.clone(),
        clock: world.clock.clone(),
        sleep: waits.clone(),
    };
    let timeout = if hurried { 0 } else { 10_000 };
    let result = migrate(
        tenant,
        &handle(from),
        &handle(to),
        &ports,
        MigrationPolicy {
            catch_up_timeout: Duration::from_millis(timeout),
            poll: Duration::ZERO,
            ..MigrationPolicy::default()
        },
    )
    .await;
    let probes = waits
        .probes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    outcome.frozen_503 += probes.iter().filter(|s| **s == 503).count();
    let booked_while_frozen = probes.iter().filter(|s| **s == 201).count();
    if booked_while_frozen > 0 {
        outcome.violate(
            6,
            format!("{from} answered 201 {booked_while_frozen} times while frozen"),
        );
    }
    match result {
        Ok(report) => {
            outcome.migrations += 1;
            outcome.paused_millis.push(report.writes_paused_millis);
        }
        Err(MigrationError::NotCaughtUp { .. }) => outcome.rolled_back += 1,
        Err(MigrationError::TargetNotStandby { .. } | MigrationError::NotHeld { .. })
            if world
                .side(to)
                .store
                .head(tenant)
                .await
                .map_err(|e| e.to_string())?
                .is_none() =>
        {
            // Nothing was ever written: nothing to move.
        }
        Err(MigrationError::NotHeld { .. }) => {}
        Err(e) => outcome.violate(7, format!("migrate {from} → {to}: {e}")),
    }
    Ok(())
}

async fn verify(
    world: &World,
    registry: &QuorumRegistry,
    tenant: &TenantId,
    client: &Client,
    tail: Option<&Tail>,
    rng: &mut Rng,
    outcome: &mut Outcome,
) -> Result<(), String> {
    let in_tail = |key: &str| tail.is_some_and(|t| t.keys.contains(key));
    let primary_cell = primary(registry, tenant).await;
    let primary_side = world.side(primary_cell);
    let standby_side = world.side(world.other(primary_cell));

    // 1, 2: money.
    let mut expected: i128 = 0;
    for (request, response) in client.acked.values() {
        if response.status != 201 {
            continue;
        }
        let body: serde_json::Value =
            serde_json::from_slice(&request.body).map_err(|e| e.to_string())?;
        let amount = cents(body["amount"].as_str().unwrap_or("0"));
        expected += if body["type"] == "debit" {
            -amount
        } else {
            amount
        };
    }
    let mut held: i128 = 0;
    let mut balances = Vec::new();
    for account in ACCOUNTS {
        let account = AccountId::parse(account).map_err(|e| e.to_string())?;
        let on = |store: &Arc<paracell_domain::memory::MemoryStore>| {
            let store = store.clone();
            let tenant = tenant.clone();
            let account = account.clone();
            async move { store.balances(&tenant, &account).await }
        };
        let here = on(&primary_side.store).await.map_err(|e| e.to_string())?;
        let there = on(&standby_side.store).await.map_err(|e| e.to_string())?;
        for b in &here {
            let c = cents(&b.available.to_string());
            if c < 0 {
                outcome.violate(1, format!("{account}: {}", b.available));
            }
            held += c;
        }
        balances.push((here, there));
    }
    expected -= tail.map_or(0, |t| t.lost_cents);
    if held != expected {
        outcome.violate(
            0,
            format!("balances {held} cents, acknowledged {expected} cents"),
        );
    }

    // 3, 4: every acknowledged write is there, and replays.
    for (key, (request, first)) in &client.acked {
        if in_tail(key) {
            // Kept only by the old primary (or retried since): the reconciliation report says which.
            continue;
        }
        if first.status == 201
            && let Some(location) = first.header("location")
        {
            let read = world
                .send(primary_cell, &super::read_request(TENANT, location), rng)
                .await?;
            if read.status != 200 || read.body != first.body {
                outcome.violate(2, format!("{key}: GET {location} answered {}", read.status));
            }
        }
        let again = world.send(primary_cell, request, rng).await?;
        if again.status != first.status
            || again.body != first.body
            || again.header("location") != first.header("location")
            || again.header("idempotent-replayed") != Some("true")
        {
            outcome.violate(
                3,
                format!(
                    "{key}: first {} then {} {}",
                    first.status,
                    again.status,
                    String::from_utf8_lossy(&again.body)
                ),
            );
        }
    }

    // 5, 6: the log.
    let log = primary_side
        .store
        .entries_after(tenant, 0, 1_000_000)
        .await
        .map_err(|e| e.to_string())?;
    let mut writers: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    let mut keys = BTreeSet::new();
    for entry in &log {
        writers
            .entry(entry.entry().epoch)
            .or_default()
            .insert(entry.entry().origin.to_string());
        if !keys.insert(entry.entry().key.to_string()) {
            outcome.violate(5, format!("key {} booked twice", entry.entry().key));
        }
    }
    // Who wrote each epoch, on both cells' logs (after a failover the old primary keeps its tail).
    for entry in standby_side
        .store
        .entries_after(tenant, 0, 1_000_000)
        .await
        .map_err(|e| e.to_string())?
    {
        writers
            .entry(entry.entry().epoch)
            .or_default()
            .insert(entry.entry().origin.to_string());
    }
    if let Some((epoch, cells)) = writers.iter().find(|(_, cells)| cells.len() > 1) {
        outcome.violate(4, format!("epoch {epoch} written by {cells:?}"));
    }
    let (a, b) = (
        primary_side
            .store
            .head(tenant)
            .await
            .map_err(|e| e.to_string())?,
        standby_side
            .store
            .head(tenant)
            .await
            .map_err(|e| e.to_string())?,
    );
    if tail.is_some() {
        // The old primary diverged (its tail) and must stay fenced; it is not a standby any more.
        if b.as_ref().map(|h| h.role) != Some(paracell_domain::placement::TenantRole::Fenced) {
            outcome.violate(
                5,
                format!("the old primary is {:?}, not fenced", b.map(|h| h.role)),
            );
        }
        return Ok(());
    }
    let converged = match (&a, &b) {
        (Some(a), Some(b)) => a.position == b.position,
        (None, None) => true,
        _ => client.acked.is_empty(),
    };
    if !converged
        || balances.iter().any(|(here, there)| {
            let norm = |v: &Vec<paracell_domain::ports::BalanceSnapshot>| {
                let mut v: Vec<String> = v
                    .iter()
                    .map(|b| format!("{}:{}", b.available, b.version))
                    .collect();
                v.sort();
                v
            };
            norm(here) != norm(there)
        })
    {
        outcome.violate(
            5,
            format!(
                "primary at {:?}, standby at {:?}",
                a.map(|h| h.position.seq),
                b.map(|h| h.position.seq)
            ),
        );
    }
    Ok(())
}

/// Runs the harness.
pub fn run(options: FailoverOptions) -> DrillReport {
    super::run_on_runtime(0, async |report| {
        let started = Instant::now();
        let mut failures: BTreeMap<usize, Vec<(u64, String, Vec<String>)>> = BTreeMap::new();
        let mut acknowledged = 0;
        let mut migrations = 0;
        let mut rolled_back = 0;
        let mut followed = 0;
        let mut frozen = 0;
        let mut paused = Vec::new();
        let mut failovers = 0;
        let mut lost = 0;
        let progress = crate::progress::Progress::new(options.schedules as u64, "schedules");
        for i in 0..options.schedules {
            let seed = options.seed.wrapping_add(i as u64);
            let outcome = schedule(seed, options.writes)
                .await
                .map_err(|e| format!("schedule {seed}: {e}"))?;
            progress.step(!outcome.violations.is_empty());
            acknowledged += outcome.acknowledged;
            migrations += outcome.migrations;
            rolled_back += outcome.rolled_back;
            followed += outcome.followed_421;
            frozen += outcome.frozen_503;
            paused.extend(outcome.paused_millis.iter().copied());
            failovers += outcome.failovers;
            lost += outcome.lost_entries;
            for (check, detail) in outcome.violations {
                failures
                    .entry(check)
                    .or_default()
                    .push((seed, detail, outcome.trace.clone()));
            }
        }
        progress.finish();
        paused.sort_unstable();
        let at = |p: usize| {
            paused
                .get((paused.len().saturating_sub(1)) * p / 100)
                .copied()
                .unwrap_or(0)
        };
        report.figure("schedules", options.schedules);
        report.figure("client operations per schedule", options.writes);
        report.figure("writes acknowledged", acknowledged);
        report.figure(
            "migrations completed / rolled back",
            format!("{migrations} / {rolled_back}"),
        );
        report.figure(
            "unplanned failovers / acknowledged writes reconciled as lost",
            format!("{failovers} / {lost}"),
        );
        report.figure(
            "421 followed / 503 while frozen",
            format!("{followed} / {frozen}"),
        );
        report.figure(
            "writes paused by a migration, ms (p50/p99/max)",
            format!("{} / {} / {}", at(50), at(99), at(100)),
        );
        report.figure("elapsed", format!("{:.1?}", started.elapsed()));
        for (i, name) in CHECKS.iter().enumerate() {
            let detail = match failures.get(&i) {
                None => format!("{} schedules", options.schedules),
                Some(list) => {
                    let (seed, detail, trace) = &list[0];
                    format!(
                        "{} schedules failed; first: seed {seed}: {detail}; reproduce: paracell-conformance drill failover --schedules 1 --writes {} --seed {seed}; trace: {}",
                        list.len(),
                        options.writes,
                        trace.join(", ")
                    )
                }
            };
            report.check(name, !failures.contains_key(&i), detail);
        }
        report.check(
            "the schedules moved the tenant (migrations, rollbacks and unplanned failovers happened)",
            migrations > 0 && rolled_back > 0 && followed > 0 && failovers > 0,
            format!(
                "{migrations} migrations, {rolled_back} rollbacks, {failovers} failovers, {followed} 421s followed"
            ),
        );
        Ok(())
    })
}
