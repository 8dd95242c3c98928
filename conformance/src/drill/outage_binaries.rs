//! The outage drill through the built binaries on the local stand-ins (run it under
//! `scripts/dev-services.sh`): `lambda-cell` (under the Lambda Runtime API emulator, its DynamoDB
//! stream relayed as Lambda's event source mapping would) and `azure-cell` (Cosmos DB), both under
//! their **cell lease** from the placement quorum over three real stores — moto's DynamoDB (AWS), the
//! Cosmos DB stand-in (Azure) and fake-gcs-server (the witness) — three `paracell-admin watch`
//! controllers (one per failure domain) and the `edge-router` reading the quorum, with a client that
//! never stops writing through the router and retries every `5xx` under the same key.
//!
//! **Every link is a [`FaultProxy`]**: each process reaches each store and each cell through a proxy
//! of its own failure domain's, so a cloud is "cut" at the TCP level — its store, its cell and its
//! acceptor, for every process in every domain — rather than by stopping a process.
//!
//! Scenarios (each from a tenant at home on AWS and again at home on Azure):
//!
//! 1. **the home cloud cut** (connections refused) → the controllers on the other cloud and the
//!    witness agree, revoke the cell lease, wait it out, and promote the standby, with no person
//!    acting; then the home cloud is healed, the tail is reconciled, and the old primary refuses a
//!    write sent straight to it;
//! 4. **the clouds cut from each other**, both still seeing the witness → no failover, the home cell
//!    keeps renewing at its own acceptor and the witness and keeps acknowledging;
//! 5. **the home cloud black-holed** (connections accepted, never answered) → as 1: every timeout
//!    on the way (probes, acceptor reads and writes, store calls, the router's deadline) must fire.
//!
//! Checks per scenario: the client got an answer for every write; money conserved (balances on the
//! final primary are the acknowledged sum minus what reconciliation lists as lost); no negative
//! balance; nothing applied twice; every acknowledged booking readable on the final primary byte for
//! byte or in the reconciliation report; no acknowledgement from the old primary once the new one has
//! written; the loss the controller reported is what reconciliation classified; RTO within
//! lease + 10 s. Leases are 6 s here (the shortest [`LeaseTiming`] accepts with its 2 s stop margin),
//! controllers tick every 500 ms.
//!
//! ```text
//! paracell-conformance drill outage --binaries [--scenarios 1,4,5] [--lease-secs L] [--seed S] [--json]
//! ```
//!
//! `PARACELL_OUTAGE_HOME=aws` (or `azure`) runs each scenario from that home only, for debugging; a
//! failed row keeps its controllers' ticks (one JSON line per tick) in a directory it names, and
//! `PARACELL_BINARIES_LOGS=DIR` keeps every process's log.
//!
//! [`LeaseTiming`]: paracell_domain::placement::quorum::LeaseTiming

use super::decision_events::{self, DecisionBuses};
use super::outage::Row;
use super::replication_binaries::{Disorder, FrontDoor, SECRET, serve_front_door};
use super::stream::StreamReader;
use super::{Check, DrillReport, Rng, cents, create_request, dev_env};
use crate::binaries::{AzureProcess, Binaries, LambdaProcess, Running, bin_dir, log_file};
use crate::request::ClientRequest;
use crate::wire;
use paracell_aws::outbound::dynamodb::acceptor::DynamoSlots;
use paracell_aws::outbound::dynamodb::registry::DynamoRegistry;
use paracell_aws::outbound::dynamodb::{DynamoConfig, DynamoStore};
use paracell_azure::outbound::cosmos::acceptor::CosmosSlots;
use paracell_azure::outbound::cosmos::{CosmosConfig, CosmosStore};
use paracell_domain::placement::migrate::CellHandle;
use paracell_domain::placement::quorum::{Acceptor, CasAcceptor, QuorumRegistry};
use paracell_domain::placement::reconcile::{ReconcileReport, reconcile};
use paracell_domain::placement::registry::{Placement, PlacementRegistry};
use paracell_domain::ports::{
    HttpClient, OutboundRequest, OutboundResponse, TransactionStore, TransportError,
};
use paracell_domain::replication::signature::PeerSecret;
use paracell_domain::transaction::AccountId;
use paracell_domain::{CellConfig, CellId, TenantId, TenantScope};
use paracell_gcp::gcs::{GcsAuth, GcsConfig, GcsSlots};
use paracell_testkit::proxy::{Direction, Fault, FaultProxy};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TENANT: &str = "coop-1";
const ACCOUNTS: [&str; 2] = ["ACC-1", "ACC-2"];
/// The cell lease L, in seconds, unless `--lease-secs` says otherwise: the shortest
/// [`LeaseTiming`](paracell_domain::placement::quorum::LeaseTiming) accepts with its 2 s stop margin.
pub const LEASE_SECS: u64 = 6;
/// Between two controller ticks.
const EVERY_MS: u64 = 500;
/// The RTO target: lease + 10 s.
fn rto_target_ms(lease_secs: u64) -> i64 {
    i64::try_from(lease_secs + 10).unwrap_or(i64::MAX) * 1000
}

/// Which scenarios to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// 1: the home cloud cut (refused connections).
    HomeCut,
    /// 4: the clouds cut from each other, both seeing the witness.
    CloudsPartitioned,
    /// 5: the home cloud black-holed (accepted, never answered).
    HomeBlackHoled,
}

impl Scenario {
    /// Every scenario the binaries' drill has, in the order it runs them.
    pub const ALL: [Self; 3] = [Self::HomeCut, Self::CloudsPartitioned, Self::HomeBlackHoled];

    /// Its number in the issue's list (`1`, `4`, `5`).
    ///
    /// ```
    /// use paracell_conformance::drill::outage_binaries::Scenario;
    /// assert_eq!(Scenario::parse("5"), Some(Scenario::HomeBlackHoled));
    /// assert_eq!(Scenario::parse("2"), None);
    /// ```
    pub fn parse(number: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.number() == number)
    }

    fn number(self) -> &'static str {
        match self {
            Self::HomeCut => "1",
            Self::CloudsPartitioned => "4",
            Self::HomeBlackHoled => "5",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::HomeCut => "1 home cloud cut",
            Self::CloudsPartitioned => "4 clouds cut from each other",
            Self::HomeBlackHoled => "5 home cloud black-holed",
        }
    }
}

/// The binaries' drill's knobs.
#[derive(Debug, Clone)]
pub struct BinariesOptions {
    /// The client's seed.
    pub seed: u64,
    /// The scenarios, each run from both homes.
    pub scenarios: Vec<Scenario>,
    /// The cells' lease L, in seconds ([`LEASE_SECS`] in CI; 12, the default, for the documented
    /// figures).
    pub lease_secs: u64,
}

/// A failure domain a process runs in; the client (and its router) is outside all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Domain {
    Aws,
    Azure,
    Gcp,
    Client,
}

impl Domain {
    fn name(self) -> &'static str {
        match self {
            Self::Aws => "aws",
            Self::Azure => "azure",
            Self::Gcp => "gcp",
            Self::Client => "client",
        }
    }
}

/// What a link leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Endpoint {
    Dynamo,
    Cosmos,
    Gcs,
    CellAws,
    CellAzure,
    /// The Event Grid topic (the controllers' decisions on Azure).
    EventGrid,
}

impl Endpoint {
    fn domain(self) -> Domain {
        match self {
            Self::Dynamo | Self::CellAws => Domain::Aws,
            Self::Cosmos | Self::CellAzure | Self::EventGrid => Domain::Azure,
            Self::Gcs => Domain::Gcp,
        }
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

    fn cell(self) -> &'static str {
        match self {
            Self::Aws => "cell-aws",
            Self::Azure => "cell-azure",
        }
    }

    fn domain(self) -> Domain {
        match self {
            Self::Aws => Domain::Aws,
            Self::Azure => Domain::Azure,
        }
    }

    fn endpoint(self) -> Endpoint {
        match self {
            Self::Aws => Endpoint::CellAws,
            Self::Azure => Endpoint::CellAzure,
        }
    }

    /// The cell's health path behind its front door (azure-cell serves under the route prefix).
    fn health(self) -> &'static str {
        match self {
            Self::Aws => "/health",
            Self::Azure => "/api/health",
        }
    }
}

/// Every link, one proxy each.
#[derive(Default)]
struct Net {
    links: BTreeMap<(Domain, Endpoint), FaultProxy>,
}

impl Net {
    async fn add(
        &mut self,
        from: Domain,
        to: Endpoint,
        upstream: SocketAddr,
    ) -> Result<(), String> {
        let proxy = FaultProxy::start(upstream)
            .await
            .map_err(|e| format!("proxy {}→{to:?}: {e}", from.name()))?;
        self.links.insert((from, to), proxy);
        Ok(())
    }

    fn url(&self, from: Domain, to: Endpoint) -> String {
        self.links
            .get(&(from, to))
            .map_or_else(String::new, |p| format!("http://{}", p.addr()))
    }

    /// Sets `fault` both ways on every link `pick` selects.
    fn set(&self, pick: impl Fn(Domain, Endpoint) -> bool, fault: Fault) {
        for ((from, to), proxy) in &self.links {
            if pick(*from, *to) {
                proxy.set(Direction::Up, fault);
                proxy.set(Direction::Down, fault);
            }
        }
    }

    fn heal(&self) {
        self.set(|_, _| true, Fault::Pass);
    }
}

fn addr_of(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: expected http://host:port"))?;
    let hostport = rest.split('/').next().unwrap_or_default();
    let hostport = hostport.replace("localhost", "127.0.0.1");
    hostport
        .parse()
        .map_err(|e| format!("{url}: not host:port ({e})"))
}

/// The operator's and the drill's own HTTP client for the witness (blocking loopback HTTP/1.1 on a
/// worker thread; no connection reuse).
struct LoopbackHttp;

#[async_trait::async_trait]
impl HttpClient for LoopbackHttp {
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, TransportError> {
        let addr = addr_of(&request.url).map_err(TransportError::Connect)?;
        let target = request
            .url
            .splitn(4, '/')
            .nth(3)
            .map_or_else(|| "/".to_owned(), |t| format!("/{t}"));
        let reply = tokio::task::spawn_blocking(move || {
            let headers: Vec<(&str, &str)> = request
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            wire::send(
                addr.port(),
                &request.method,
                &target,
                &headers,
                &request.body,
                false,
            )
        })
        .await
        .map_err(|e| TransportError::Broken(e.to_string()))?
        .map_err(|e| TransportError::Broken(e.to_string()))?;
        Ok(OutboundResponse {
            status: reply.status,
            headers: reply
                .headers
                .into_iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v))
                .collect(),
            body: reply.body,
        })
    }
}

/// One run's names on the shared stand-ins: fresh tables, containers and witness prefix.
struct Names {
    cell_table: String,
    cell_container: String,
    acceptors: String,
    bucket: String,
    prefix: String,
    moto: String,
    gcs: String,
    cosmos_endpoint: String,
    /// The Event Grid topic stand-in and its key.
    topic: String,
    topic_key: String,
    lease_secs: u64,
}

impl Names {
    fn new(run: &str, lease_secs: u64) -> Result<Self, String> {
        Ok(Self {
            cell_table: format!("cell-{run}"),
            cell_container: format!("cell-{run}"),
            acceptors: format!("acceptors-{run}"),
            bucket: dev_env("PARACELL_TEST_GCS_BUCKET")?,
            prefix: format!("{run}/"),
            moto: dev_env("PARACELL_DYNAMODB_ENDPOINT")?,
            gcs: dev_env("PARACELL_TEST_GCS_ENDPOINT")?,
            cosmos_endpoint: dev_env("PARACELL_COSMOS_ENDPOINT")?,
            topic: dev_env("PARACELL_TEST_EVENTGRID_ENDPOINT")?,
            topic_key: dev_env("PARACELL_TEST_EVENTGRID_KEY")?,
            lease_secs,
        })
    }

    fn cosmos_with(&self, container: &str) -> Result<CosmosConfig, String> {
        let container = container.to_owned();
        CosmosConfig::from_lookup(|n| {
            if n == "PARACELL_COSMOS_CONTAINER" {
                Some(container.clone())
            } else {
                std::env::var(n).ok()
            }
        })
    }

    /// `PARACELL_QUORUM`, the host's own cloud first.
    fn quorum(&self, first: Domain) -> String {
        let dynamo = format!("dynamodb:{}", self.acceptors);
        let cosmos = format!("cosmos:{}", self.acceptors);
        let gcs = format!("gcs:{}", self.bucket);
        let order = match first {
            Domain::Azure => [cosmos, dynamo, gcs],
            Domain::Gcp => [gcs, dynamo, cosmos],
            Domain::Aws | Domain::Client => [dynamo, cosmos, gcs],
        };
        order.join(",")
    }

    /// The variables every process of domain `from` needs to reach the quorum and the stores,
    /// through its own links.
    fn reach(&self, net: &Net, from: Domain) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = std::env::vars()
            .filter(|(n, _)| {
                n.starts_with("AWS_")
                    || n.starts_with("AZURE_COSMOS_")
                    || (n.starts_with("PARACELL_COSMOS_") && n != "PARACELL_COSMOS_CONTAINER")
            })
            .collect();
        env.extend(
            [
                ("PARACELL_QUORUM", self.quorum(from)),
                (
                    "PARACELL_DYNAMODB_ENDPOINT",
                    net.url(from, Endpoint::Dynamo),
                ),
                ("PARACELL_COSMOS_ENDPOINT", net.url(from, Endpoint::Cosmos)),
                ("PARACELL_GCS_ENDPOINT", net.url(from, Endpoint::Gcs)),
                ("PARACELL_GCS_PREFIX", self.prefix.clone()),
                ("PARACELL_GCS_AUTH", "none".to_owned()),
                ("PARACELL_LEASE_SECS", self.lease_secs.to_string()),
                ("RUST_LOG", "warn".to_owned()),
            ]
            .map(|(n, v)| (n.to_owned(), v)),
        );
        env
    }

    /// The quorum, reached directly (the operator's view, never cut).
    async fn quorum_registry(&self, proposer: u64) -> Result<Arc<QuorumRegistry>, String> {
        let dynamo_config = DynamoConfig::new(&self.acceptors).with_endpoint(&self.moto);
        let dynamo = DynamoStore::connect(&dynamo_config).await;
        let cosmos = CosmosStore::connect(&self.cosmos_with(&self.acceptors)?)
            .await
            .map_err(|e| e.to_string())?;
        let gcs = GcsSlots::new(
            GcsConfig::from_lookup(|n| match n {
                "PARACELL_GCS_BUCKET" => Some(self.bucket.clone()),
                "PARACELL_GCS_ENDPOINT" => Some(self.gcs.clone()),
                "PARACELL_GCS_PREFIX" => Some(self.prefix.clone()),
                _ => None,
            })
            .map_err(|e| e.to_string())?,
            GcsAuth::Anonymous,
            Arc::new(LoopbackHttp),
            "gcp",
        );
        let acceptors: Vec<Arc<dyn Acceptor>> = vec![
            Arc::new(CasAcceptor::new(DynamoSlots::new(
                dynamo.client().clone(),
                &self.acceptors,
                "aws",
            ))),
            Arc::new(CasAcceptor::new(CosmosSlots::new(cosmos, "azure"))),
            Arc::new(CasAcceptor::new(gcs)),
        ];
        QuorumRegistry::new(acceptors, proposer)
            .map(Arc::new)
            .map_err(|e| e.to_string())
    }

    /// Creates the acceptors' table, container and bucket, and places the tenant on `home`'s cell.
    async fn place(&self, home: Cloud, proposer: u64) -> Result<Arc<QuorumRegistry>, String> {
        DynamoRegistry::connect(&DynamoConfig::new(&self.acceptors).with_endpoint(&self.moto))
            .await
            .create_table()
            .await
            .map_err(|e| format!("acceptor table: {e}"))?;
        CosmosStore::provision(&self.cosmos_with(&self.acceptors)?)
            .await
            .map_err(|e| format!("acceptor container: {e}"))?;
        let quorum = self.quorum_registry(proposer).await?;
        let placement = Placement::new(
            tenant()?,
            cell_id(home.cell())?,
            1,
            vec![cell_id(home.other().cell())?],
        );
        quorum
            .put(None, &placement)
            .await
            .map_err(|e| format!("placing {TENANT}: {e}"))?;
        Ok(quorum)
    }
}

fn tenant() -> Result<TenantId, String> {
    TenantId::parse(TENANT).map_err(|e| e.to_string())
}

fn cell_id(name: &str) -> Result<CellId, String> {
    CellId::parse(name).map_err(|e| e.to_string())
}

/// One write's final answer, as the client saw it through the router.
#[derive(Debug, Clone)]
struct Acked {
    request: ClientRequest,
    status: u16,
    body: Vec<u8>,
    location: Option<String>,
    /// `X-Paracell-Cell`: who answered.
    cell: String,
    at: Instant,
}

#[derive(Default)]
struct Seen {
    /// key → its final answer (201 or 409), in the order acknowledged.
    acked: BTreeMap<String, Acked>,
    order: Vec<String>,
    /// When a write was answered with anything but its final answer (5xx, 421).
    refused: Vec<Instant>,
    unexpected: Vec<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The client: writes through the router without pause, retrying every `5xx` and `421` under the
/// same key until it is answered (it finishes the write in hand after `stop`, for at most a minute).
fn client(router: u16, stop: &AtomicBool, seed: u64, seen: &Mutex<Seen>, count: &AtomicUsize) {
    let mut rng = Rng::new(seed);
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let key = format!("k-{seed}-{i}");
        let account = ACCOUNTS[usize::try_from(rng.below(2)).unwrap_or(0)];
        let request = create_request(TENANT, &key, account, rng.chance(25), rng.below(20_000) + 1);
        let headers: Vec<(&str, &str)> = request
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let give_up = Instant::now() + Duration::from_secs(120);
        loop {
            if Instant::now() > give_up {
                lock(seen)
                    .unexpected
                    .push(format!("{key}: no final answer in 120 s"));
                break;
            }
            let reply = wire::send(
                router,
                "POST",
                "/v1/transactions",
                &headers,
                &request.body,
                false,
            );
            match reply {
                Ok(r) if r.status == 201 || r.status == 409 => {
                    let mut seen = lock(seen);
                    seen.acked.insert(
                        key.clone(),
                        Acked {
                            request: request.clone(),
                            status: r.status,
                            location: r.header("location").map(str::to_owned),
                            cell: r.header("x-paracell-cell").unwrap_or("?").to_owned(),
                            body: r.body,
                            at: Instant::now(),
                        },
                    );
                    seen.order.push(key.clone());
                    count.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(r) if r.status == 421 || r.status >= 500 => {
                    lock(seen).refused.push(Instant::now());
                    std::thread::sleep(Duration::from_millis(50));
                }
                Ok(r) => {
                    lock(seen).unexpected.push(format!(
                        "{key}: {} {}",
                        r.status,
                        String::from_utf8_lossy(&r.body)
                    ));
                    break;
                }
                // The router itself is never cut: a failed exchange with it is a finding.
                Err(e) => {
                    lock(seen).unexpected.push(format!("{key}: router: {e}"));
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
}

/// Runs the drill.
pub fn run(options: &BinariesOptions, workspace: &Path) -> (DrillReport, Vec<Row>) {
    let mut rows = Vec::new();
    let report = super::run_on_runtime(4, async |report: &mut DrillReport| {
        let binaries = tokio::task::block_in_place(|| Binaries::start(workspace.to_path_buf()))?;
        let mut n = 0u64;
        for scenario in &options.scenarios {
            let homes = match std::env::var("PARACELL_OUTAGE_HOME").as_deref() {
                Ok("aws") => vec![Cloud::Aws],
                Ok("azure") => vec![Cloud::Azure],
                _ => vec![Cloud::Aws, Cloud::Azure],
            };
            for home in homes {
                n += 1;
                let started = Instant::now();
                let row = match scenario_run(
                    &binaries,
                    workspace,
                    *scenario,
                    home,
                    options.seed + n,
                    options.lease_secs,
                )
                .await
                {
                    Ok(row) => row,
                    Err(e) => Row {
                        scenario: scenario.name().to_owned(),
                        home: home.name(),
                        checks: vec![Check {
                            name: "the scenario ran to the end".into(),
                            passed: false,
                            detail: e,
                        }],
                        rto_ms: None,
                        rpo_entries: None,
                        acknowledged: 0,
                        lost: 0,
                    },
                };
                report.figure(
                    &format!("{} at home on {}: elapsed", row.scenario, row.home),
                    format!("{:.1?}", started.elapsed()),
                );
                rows.push(row);
            }
        }
        super::outage::report_rows(report, &rows);
        Ok(())
    });
    (report, rows)
}

/// The processes of one run, stopped when dropped.
struct Processes {
    lambda: Arc<LambdaProcess>,
    _azure: Arc<AzureProcess>,
    _router: Running,
    router_port: u16,
    /// lambda-cell's Function URL: aborted at the end of the run, so nothing keeps the process.
    door_task: tokio::task::JoinHandle<()>,
    _watchers: Vec<Running>,
    watcher_logs: Vec<PathBuf>,
}

async fn start_processes(
    binaries: &Binaries,
    workspace: &Path,
    names: &Names,
    net: &mut Net,
    (home, control_bus): (Cloud, &str),
    seed: u64,
    logs: &Path,
) -> Result<Processes, String> {
    let door_listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| e.to_string())?;
    let door = door_listener.local_addr().map_err(|e| e.to_string())?;
    for from in [Domain::Aws, Domain::Azure, Domain::Gcp, Domain::Client] {
        net.add(from, Endpoint::Dynamo, addr_of(&names.moto)?)
            .await?;
        net.add(from, Endpoint::Cosmos, addr_of(&names.cosmos_endpoint)?)
            .await?;
        net.add(from, Endpoint::Gcs, addr_of(&names.gcs)?).await?;
        net.add(from, Endpoint::CellAws, door).await?;
        net.add(from, Endpoint::EventGrid, addr_of(&names.topic)?)
            .await?;
    }
    let common = |env: &mut Vec<(String, String)>| {
        env.extend(
            [
                ("PARACELL_DETERMINISTIC", "0"),
                ("PARACELL_PLACEMENT_SOURCE", "quorum"),
                ("PARACELL_STORE_PROVISION", "1"),
                ("PARACELL_RELAY_POLL_MS", "50"),
            ]
            .map(|(n, v)| (n.to_owned(), v.to_owned())),
        );
    };
    let mut azure_env = names.reach(net, Domain::Azure);
    common(&mut azure_env);
    azure_env.extend(
        [
            ("PARACELL_STORE", "cosmos".to_owned()),
            ("PARACELL_COSMOS_CONTAINER", names.cell_container.clone()),
            ("PARACELL_DEAD_LETTERS", "cosmos".to_owned()),
            (
                "PARACELL_PEERS",
                format!("cell-aws={}", net.url(Domain::Azure, Endpoint::CellAws)),
            ),
            ("PARACELL_PEER_SECRETS", format!("cell-aws={SECRET}")),
            // The router and the controllers reach it without the platform's sign-in in front.
            ("WEBSITE_AUTH_ENABLED", "false".to_owned()),
        ]
        .map(|(n, v)| (n.to_owned(), v)),
    );
    let azure_config =
        CellConfig::new("cell-azure", TenantScope::All).map_err(|e| e.to_string())?;
    let azure = Arc::new(tokio::task::block_in_place(|| {
        binaries.start_azure_with(&azure_config, "forwarding", &azure_env)
    })?);
    let azure_addr: SocketAddr = ([127, 0, 0, 1], azure.port()).into();
    for from in [Domain::Aws, Domain::Azure, Domain::Gcp, Domain::Client] {
        net.add(from, Endpoint::CellAzure, azure_addr).await?;
    }
    let mut lambda_env = names.reach(net, Domain::Aws);
    common(&mut lambda_env);
    lambda_env.extend(
        [
            ("PARACELL_STORE", "dynamodb".to_owned()),
            ("PARACELL_DYNAMODB_TABLE", names.cell_table.clone()),
            (
                "PARACELL_PEERS",
                format!(
                    "cell-azure={}/api",
                    net.url(Domain::Aws, Endpoint::CellAzure)
                ),
            ),
            ("PARACELL_PEER_SECRETS", format!("cell-azure={SECRET}")),
        ]
        .map(|(n, v)| (n.to_owned(), v)),
    );
    let lambda_config = CellConfig::new("cell-aws", TenantScope::All).map_err(|e| e.to_string())?;
    let lambda = Arc::new(tokio::task::block_in_place(|| {
        binaries.start_lambda_alone(&lambda_config, &lambda_env, 2)
    })?);
    let door_state = Arc::new(FrontDoor {
        lambda: lambda.clone(),
        rng: Mutex::new(Rng::new(seed)),
        held: Mutex::new(Vec::new()),
        disorder: Disorder::default(),
        signer: PeerSecret::parse(cell_id("cell-azure")?, SECRET).map_err(|e| e.to_string())?,
        disorder_percent: 0,
    });
    let door_task = tokio::spawn(serve_front_door(door_listener, door_state));

    let dir = bin_dir(workspace);
    let (router, router_port) = start_router(&dir, names, net)?;
    let (watchers, watcher_logs) = start_watchers(&dir, names, net, (home, control_bus), logs)?;
    Ok(Processes {
        lambda,
        _azure: azure,
        _router: router,
        router_port,
        door_task,
        _watchers: watchers,
        watcher_logs,
    })
}

/// The router: outside every cloud, reading the quorum (AWS's acceptor first), its route cache at
/// the default (30 s fresh): it learns a failover by asking the registry when the cell it routes to
/// is out of reach. Returns the process and its port.
fn start_router(dir: &Path, names: &Names, net: &Net) -> Result<(Running, u16), String> {
    let router_port = wire::free_port().map_err(|e| e.to_string())?;
    let mut router_env = names.reach(net, Domain::Client);
    router_env.extend(
        [
            ("PARACELL_REGISTRY", "quorum".to_owned()),
            (
                "PARACELL_EDGE_CELLS",
                format!(
                    "cell-aws=aws={},cell-azure=azure={}/api",
                    net.url(Domain::Client, Endpoint::CellAws),
                    net.url(Domain::Client, Endpoint::CellAzure)
                ),
            ),
            ("PARACELL_EDGE_BIND", "127.0.0.1".to_owned()),
            ("PORT", router_port.to_string()),
            ("PARACELL_EDGE_DEADLINE_MS", "3000".to_owned()),
            ("PARACELL_EDGE_PROBE_SECS", "1".to_owned()),
        ]
        .map(|(n, v)| (n.to_owned(), v)),
    );
    let router = spawn(
        &dir.join("edge-router"),
        &router_env,
        log_file("edge-router"),
        Stdio::null(),
    )?;
    wait_port(router_port, Duration::from_secs(30))?;

    Ok((router, router_port))
}

/// The controllers, one per failure domain, watching the home cell; their ticks go to
/// `logs/watch-<domain>.jsonl`, their decisions to their buses (AWS's to `control_bus` on
/// EventBridge, Azure's and the witness provider's to the Event Grid topic), each through its
/// domain's link.
fn start_watchers(
    dir: &Path,
    names: &Names,
    net: &Net,
    (home, control_bus): (Cloud, &str),
    logs: &Path,
) -> Result<(Vec<Running>, Vec<PathBuf>), String> {
    let mut watchers = Vec::new();
    let mut watcher_logs = Vec::new();
    for observer in [Domain::Aws, Domain::Azure, Domain::Gcp] {
        let mut env = names.reach(net, observer);
        if observer == Domain::Aws {
            env.push(("PARACELL_EVENTBRIDGE_BUS".into(), control_bus.to_owned()));
            env.push((
                "PARACELL_EVENTBRIDGE_ENDPOINT".into(),
                net.url(observer, Endpoint::Dynamo),
            ));
        } else {
            env.push((
                "PARACELL_EVENTGRID_ENDPOINT".into(),
                net.url(observer, Endpoint::EventGrid),
            ));
            env.push(("PARACELL_EVENTGRID_KEY".into(), names.topic_key.clone()));
        }
        env.push((
            "PARACELL_ADMIN_CELLS".into(),
            format!(
                "cell-aws=dynamodb:{},cell-azure=cosmos:{}",
                names.cell_table, names.cell_container
            ),
        ));
        let log = logs.join(format!("watch-{}.jsonl", observer.name()));
        let out = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let mut command = Command::new(dir.join("paracell-admin"));
        command
            .env_clear()
            .envs(env)
            .args([
                "watch",
                home.cell(),
                "--observer",
                observer.name(),
                "--cell-domain",
                home.name(),
                "--health",
                &format!("{}{}", net.url(observer, home.endpoint()), home.health()),
                "--standby",
                home.other().cell(),
                "--tenants",
                TENANT,
                "--every-ms",
                &EVERY_MS.to_string(),
            ])
            .stdout(out)
            .stderr(log_file(&format!("watch-{}", observer.name())));
        watchers.push(Running(command.spawn().map_err(|e| {
            format!("cannot start {}: {e}", dir.join("paracell-admin").display())
        })?));
        watcher_logs.push(log);
    }
    Ok((watchers, watcher_logs))
}

fn spawn(
    path: &Path,
    env: &[(String, String)],
    stderr: Stdio,
    stdout: Stdio,
) -> Result<Running, String> {
    Command::new(path)
        .env_clear()
        .envs(env.iter().cloned())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map(Running)
        .map_err(|e| format!("cannot start {}: {e}", path.display()))
}

fn wait_port(port: u16, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("nothing listens on 127.0.0.1:{port}"))
}

/// Lambda's event source mapping on lambda-cell's table stream: a failed batch is retried until it
/// succeeds (as the mapping does), and nothing is read while AWS is cut.
fn spawn_pump(
    lambda: Arc<LambdaProcess>,
    mut stream: StreamReader,
    stop: Arc<AtomicBool>,
    aws_down: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut pending: Vec<serde_json::Value> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if aws_down.load(Ordering::Relaxed) {
                continue;
            }
            if pending.is_empty() {
                match stream.poll().await {
                    Ok(records) => pending = records,
                    Err(_) => continue,
                }
            }
            if pending.is_empty() {
                continue;
            }
            let event = serde_json::json!({ "Records": pending });
            let lambda = lambda.clone();
            let out = tokio::task::spawn_blocking(move || lambda.invoke(&event)).await;
            if matches!(out, Ok(Ok(o)) if o["batchItemFailures"].as_array().is_some_and(Vec::is_empty))
            {
                pending.clear();
            } else {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    })
}

async fn wait_until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}

/// What the controllers printed about the failovers they made: (lost entries, promoted at seq).
fn controller_failovers(logs: &[PathBuf]) -> Vec<(Option<u64>, u64, String)> {
    let mut found = Vec::new();
    for log in logs {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        for line in text.lines() {
            let Ok(tick) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            for f in tick["failovers"].as_array().into_iter().flatten() {
                if f["to"].is_string() {
                    found.push((
                        f["lost_entries"].as_u64(),
                        f["promoted_at_seq"].as_u64().unwrap_or(0),
                        tick["observer"].as_str().unwrap_or("?").to_owned(),
                    ));
                }
            }
        }
    }
    found
}

fn check(row: &mut Row, name: &str, passed: bool, detail: impl ToString) {
    row.checks.push(Check {
        name: name.to_owned(),
        passed,
        detail: detail.to_string(),
    });
}

/// One run's world: its names on the stand-ins, the quorum, every link, every process, and the
/// operator's direct view of both cells' stores.
struct World {
    home: Cloud,
    quorum: Arc<QuorumRegistry>,
    net: Net,
    processes: Processes,
    aws_cell: CellHandle,
    azure_cell: CellHandle,
    moto: String,
    cell_table: String,
    lease_secs: u64,
    logs: PathBuf,
    /// The controllers' buses.
    decisions: DecisionBuses,
}

impl World {
    async fn start(
        binaries: &Binaries,
        workspace: &Path,
        scenario: Scenario,
        home: Cloud,
        seed: u64,
        lease_secs: u64,
    ) -> Result<Self, String> {
        let run = format!(
            "outage-{}-{}-{}",
            std::process::id(),
            scenario.number(),
            home.name()
        );
        let names = Names::new(&run, lease_secs)?;
        let logs = std::env::temp_dir().join(&run);
        std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
        let proposer = u64::from(std::process::id()) << 20 | seed;
        let quorum = names.place(home, proposer).await?;
        let decisions =
            DecisionBuses::create(&names.moto, &run, addr_of(&names.topic)?.port()).await?;
        let mut net = Net::default();
        let processes = start_processes(
            binaries,
            workspace,
            &names,
            &mut net,
            (home, &decisions.bus),
            seed,
            &logs,
        )
        .await?;
        let dynamo =
            DynamoStore::connect(&DynamoConfig::new(&names.cell_table).with_endpoint(&names.moto))
                .await;
        let cosmos = CosmosStore::connect(&names.cosmos_with(&names.cell_container)?)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Self {
            home,
            quorum,
            net,
            processes,
            aws_cell: CellHandle {
                id: cell_id("cell-aws")?,
                store: Arc::new(dynamo),
            },
            azure_cell: CellHandle {
                id: cell_id("cell-azure")?,
                store: Arc::new(cosmos),
            },
            moto: names.moto.clone(),
            cell_table: names.cell_table.clone(),
            lease_secs,
            logs,
            decisions,
        })
    }

    /// The home cell and the standby.
    fn cells(&self) -> (&CellHandle, &CellHandle) {
        match self.home {
            Cloud::Aws => (&self.aws_cell, &self.azure_cell),
            Cloud::Azure => (&self.azure_cell, &self.aws_cell),
        }
    }

    /// Stops every process and link; keeps the controllers' ticks when the row failed.
    fn finish(self, row: &Row) {
        self.processes.door_task.abort();
        drop(self.processes);
        drop(self.net);
        if row.passed() {
            let _ = std::fs::remove_dir_all(&self.logs);
        } else {
            eprintln!(
                "outage drill: {} at home on {} failed; the controllers' ticks are kept in {}",
                row.scenario,
                row.home,
                self.logs.display()
            );
        }
    }
}

/// The client that never stops, and Lambda's event source mapping on lambda-cell's stream.
struct Load {
    stop: Arc<AtomicBool>,
    aws_down: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    count: Arc<AtomicUsize>,
    client: std::thread::JoinHandle<()>,
    pump: tokio::task::JoinHandle<()>,
}

impl Load {
    /// Starts the client, waits for its first writes (the first one creates lambda-cell's table
    /// when it is home: then its stream can be read), starts the pump, and waits until 40 writes
    /// are acknowledged and the standby has had a second to catch up — so RPO measures the fault,
    /// not the start.
    async fn start(world: &World, seed: u64) -> Result<Self, String> {
        if wire::send(
            world.processes.router_port,
            "GET",
            "/health",
            &[],
            b"",
            false,
        )
        .is_err()
        {
            return Err("the edge router does not answer".into());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let count = Arc::new(AtomicUsize::new(0));
        let client = {
            let (stop, seen, count, port) = (
                stop.clone(),
                seen.clone(),
                count.clone(),
                world.processes.router_port,
            );
            std::thread::spawn(move || client(port, &stop, seed, &seen, &count))
        };
        let warmed = Self::wait_for(&count, 5, Duration::from_secs(60)).await;
        let conf = aws_config::from_env()
            .endpoint_url(&world.moto)
            .load()
            .await;
        let stream = StreamReader::new(
            aws_sdk_dynamodbstreams::Client::new(&conf),
            &world.cell_table,
        );
        let aws_down = Arc::new(AtomicBool::new(false));
        let pump = spawn_pump(
            world.processes.lambda.clone(),
            stream,
            stop.clone(),
            aws_down.clone(),
        );
        if warmed {
            Self::wait_for(&count, 40, Duration::from_secs(60)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(Self {
            stop,
            aws_down,
            seen,
            count,
            client,
            pump,
        })
    }

    async fn wait_for(count: &Arc<AtomicUsize>, n: usize, within: Duration) -> bool {
        let count = count.clone();
        wait_until(within, move || count.load(Ordering::Relaxed) >= n).await
    }

    fn acknowledged(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Stops the client (after the write in hand) and the pump; what the client saw.
    async fn stop(self) -> Result<Seen, String> {
        self.stop.store(true, Ordering::Relaxed);
        tokio::task::block_in_place(|| self.client.join()).map_err(|_| "the client panicked")?;
        self.pump.await.map_err(|e| e.to_string())?;
        Ok(std::mem::take(&mut *lock(&self.seen)))
    }
}

/// What happened while the fault was on.
struct Trial {
    faulted_at: Instant,
    /// Writes acknowledged from the fault to the end.
    acked_during: usize,
    /// The failovers the controllers logged: (lost entries, promoted at, observer).
    failovers: Vec<(Option<u64>, u64, String)>,
    reconciled: Option<ReconcileReport>,
}

/// Scenarios 1 and 5: the home cloud cut or black-holed, for every process in every domain, until
/// the new primary has acknowledged 20 writes; then healed, and the old primary's tail reconciled.
async fn fail_home(world: &World, load: &Load, fault: Fault) -> Result<Trial, String> {
    let faulted_at = Instant::now();
    let before = load.acknowledged();
    let home = world.home.domain();
    if world.home == Cloud::Aws {
        load.aws_down.store(true, Ordering::Relaxed);
    }
    world
        .net
        .set(|from, to| from == home || to.domain() == home, fault);
    let new_cell = world.home.other().cell();
    let seen = load.seen.clone();
    let promoted = wait_until(Duration::from_secs(90), move || {
        lock(&seen)
            .acked
            .values()
            .any(|a| a.cell == new_cell && a.at > faulted_at)
    })
    .await;
    if promoted {
        Load::wait_for(
            &load.count,
            load.acknowledged() + 20,
            Duration::from_secs(30),
        )
        .await;
    }
    // The controller logs its tick once the tick is over: after the promotion, it still counts
    // what the old primary kept (a black-holed store answers at its timeout).
    let logs = world.processes.watcher_logs.clone();
    wait_until(Duration::from_secs(20), move || {
        !controller_failovers(&logs).is_empty()
    })
    .await;
    let failovers = controller_failovers(&world.processes.watcher_logs);
    // Heal: the old primary comes back, refused by its revoked lease.
    world.net.heal();
    load.aws_down.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (old, new) = world.cells();
    let registry: &dyn PlacementRegistry = world.quorum.as_ref();
    let reconciled = reconcile(&tenant()?, old, new, registry)
        .await
        .map_err(|e| format!("reconcile: {e}"))?;
    Ok(Trial {
        faulted_at,
        acked_during: load.acknowledged() - before,
        failovers,
        reconciled: Some(reconciled),
    })
}

/// Scenario 4: AWS and Azure cut from each other (every link between their domains, both ways),
/// both still seeing the witness, for two leases and a bit; then healed.
async fn partition_clouds(world: &World, load: &Load) -> Trial {
    let faulted_at = Instant::now();
    let before = load.acknowledged();
    let (a, b) = (Domain::Aws, Domain::Azure);
    world.net.set(
        |from, to| (from == a && to.domain() == b) || (from == b && to.domain() == a),
        Fault::Cut,
    );
    tokio::time::sleep(Duration::from_secs(2 * world.lease_secs + 2)).await;
    let failovers = controller_failovers(&world.processes.watcher_logs);
    world.net.heal();
    tokio::time::sleep(Duration::from_secs(2)).await;
    Trial {
        faulted_at,
        acked_during: load.acknowledged() - before,
        failovers,
        reconciled: None,
    }
}

async fn scenario_run(
    binaries: &Binaries,
    workspace: &Path,
    scenario: Scenario,
    home: Cloud,
    seed: u64,
    lease_secs: u64,
) -> Result<Row, String> {
    let mut world = World::start(binaries, workspace, scenario, home, seed, lease_secs).await?;
    let load = Load::start(&world, seed).await?;
    let trial = match scenario {
        Scenario::HomeCut => fail_home(&world, &load, Fault::Cut).await?,
        Scenario::HomeBlackHoled => fail_home(&world, &load, Fault::BlackHole).await?,
        Scenario::CloudsPartitioned => partition_clouds(&world, &load).await,
    };
    let seen = load.stop().await?;
    let placement = world
        .quorum
        .get(&tenant()?)
        .await
        .map_err(|e| format!("reading the placement: {e}"))?
        .ok_or("the placement is gone")?;
    let failed_over = placement.primary.as_str() == home.other().cell();
    let mut row = Row {
        scenario: scenario.name().to_owned(),
        home: home.name(),
        checks: Vec::new(),
        rto_ms: None,
        rpo_entries: None,
        acknowledged: seen.acked.len(),
        lost: 0,
    };
    check(
        &mut row,
        "the client got a final answer (201 or 409) for every write, retrying 5xx under the same key",
        seen.unexpected.is_empty(),
        seen.unexpected.first().cloned().unwrap_or_default(),
    );
    let (home_cell, standby_cell) = world.cells();
    let final_cell = if scenario == Scenario::CloudsPartitioned {
        partition_checks(&mut row, home, &seen, &trial, &placement);
        home_cell
    } else {
        let placed = format!("{} at epoch {}", placement.primary, placement.epoch);
        check(
            &mut row,
            "the controllers failed the tenant over to the standby by themselves, at a higher epoch",
            failed_over && placement.epoch > 1 && !trial.failovers.is_empty(),
            format!(
                "placement: {placed}; failovers the controllers logged: {:?}",
                trial.failovers
            ),
        );
        failover_checks(&mut row, home, &seen, &trial, world.lease_secs);
        let status = straight_write(&world, seed).await?;
        check(
            &mut row,
            "healed, the old primary refuses a write sent straight to it (its lease is revoked, its head fenced)",
            status == 421 || status == 503,
            status,
        );
        standby_cell
    };
    money_checks(
        &mut row,
        &seen,
        final_cell,
        trial.reconciled.as_ref(),
        world.processes.router_port,
    )
    .await?;
    decision_checks(&mut row, &mut world.decisions, &trial.failovers).await?;
    world.finish(&row);
    Ok(row)
}

/// Every controller published its decisions to its bus, and every failover a controller logged
/// is on that bus with its report — once the links are healed at the latest (an event the bus did
/// not take is sent again on the controller's next tick).
async fn decision_checks(
    row: &mut Row,
    buses: &mut DecisionBuses,
    failovers: &[(Option<u64>, u64, String)],
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let all_in = |events: &[serde_json::Value]| {
        decision_events::publishers(events).len() == 3
            && failovers
                .iter()
                .all(|(_, seq, observer)| decision_events::published(events, observer, *seq))
    };
    while !all_in(buses.decisions().await?) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let events = buses.decisions().await?;
    let publishers = decision_events::publishers(events);
    check(
        row,
        "each controller published its decisions as CloudEvents on its bus (AWS's on EventBridge, the others' on Event Grid)",
        publishers.len() == 3,
        format!("{} events from {publishers:?}", events.len()),
    );
    let missing: Vec<&(Option<u64>, u64, String)> = failovers
        .iter()
        .filter(|(_, seq, observer)| !decision_events::published(events, observer, *seq))
        .collect();
    check(
        row,
        "every failover a controller made is on its bus, with its report (from, to, epoch, position, loss)",
        missing.is_empty(),
        format!("{} logged, not published: {missing:?}", failovers.len()),
    );
    Ok(())
}

/// RTO, RPO, one primary at a time, and the controller's loss against reconciliation's.
fn failover_checks(row: &mut Row, home: Cloud, seen: &Seen, trial: &Trial, lease_secs: u64) {
    let target = rto_target_ms(lease_secs);
    let new_cell = home.other().cell();
    let in_order = || seen.order.iter().filter_map(|k| seen.acked.get(k));
    // RTO: the first refused write after the fault → the first write the new primary acknowledged.
    let first_refused = seen.refused.iter().find(|t| **t >= trial.faulted_at);
    let first_new = in_order().find(|a| a.cell == new_cell && a.at > trial.faulted_at);
    if let (Some(r), Some(n)) = (first_refused, first_new) {
        row.rto_ms =
            Some(i64::try_from(n.at.saturating_duration_since(*r).as_millis()).unwrap_or(i64::MAX));
    }
    // RPO: the acknowledged entries the standby had not applied — the controller counts them when it
    // can still read the old primary's store; reconciliation counts them once it is back.
    let reported = trial.failovers.first().and_then(|f| f.0);
    let classified = trial.reconciled.as_ref().map(|r| r.entries.len() as u64);
    row.rpo_entries = reported.or(classified);
    let rto = row.rto_ms;
    check(
        row,
        "RTO (first refused write → first write acknowledged by the new primary) ≤ lease + 10 s",
        rto.is_some_and(|ms| ms <= target),
        format!("{rto:?} ms (target {target} ms)"),
    );
    // Once the new primary has acknowledged, the old one never does again.
    let overlap = in_order()
        .skip_while(|a| a.cell != new_cell)
        .find(|a| a.cell != new_cell)
        .map(|a| a.cell.clone());
    check(
        row,
        "one primary at a time: no write acknowledged by the old primary once the new one had acknowledged",
        overlap.is_none(),
        format!("{overlap:?}"),
    );
    check(
        row,
        "the loss the controller reported (when it could read the old primary) is what reconciliation classified",
        reported.is_none() || reported == classified,
        format!(
            "reported {}, classified {classified:?}",
            reported.map_or_else(
                || "unknown (the old primary's store was out of reach)".to_owned(),
                |n| n.to_string()
            ),
        ),
    );
}

/// A write sent straight to the old primary's front door, after the heal: its status.
async fn straight_write(world: &World, seed: u64) -> Result<u16, String> {
    let straight = create_request(TENANT, &format!("straight-{seed}"), ACCOUNTS[0], false, 100);
    let headers: Vec<(&str, &str)> = straight
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let path = match world.home {
        Cloud::Aws => "/v1/transactions",
        Cloud::Azure => "/api/v1/transactions",
    };
    let port = addr_of(&world.net.url(Domain::Client, world.home.endpoint()))?.port();
    let answer = tokio::task::block_in_place(|| {
        wire::send(port, "POST", path, &headers, &straight.body, false)
    });
    Ok(answer.map(|r| r.status).unwrap_or_default())
}

/// No failover, the home cell kept writing, and it alone.
fn partition_checks(row: &mut Row, home: Cloud, seen: &Seen, trial: &Trial, placement: &Placement) {
    check(
        row,
        "no failover: the tenant stays on its home cell at its epoch, no controller promoted",
        placement.primary.as_str() == home.cell()
            && placement.epoch == 1
            && trial.failovers.is_empty(),
        format!(
            "placement: {} at epoch {}; failovers logged: {:?}",
            placement.primary, placement.epoch, trial.failovers
        ),
    );
    check(
        row,
        "the home cell kept acknowledging writes during the partition (it renews at its own acceptor and the witness)",
        trial.acked_during > 10,
        format!("{} acknowledged during and after", trial.acked_during),
    );
    let others: Vec<&String> = seen
        .acked
        .values()
        .filter(|a| a.cell != home.cell())
        .map(|a| &a.cell)
        .collect();
    check(
        row,
        "one primary: every write was acknowledged by the home cell",
        others.is_empty(),
        format!(
            "{} acknowledged elsewhere: {:?}",
            others.len(),
            others.first()
        ),
    );
}

/// What a reconciliation report says about money, against what the client was finally told: the
/// keys the old primary kept aside, how many of them are lost bookings, and the signed cents the
/// client was told were booked that the new primary does not hold. Unlike the in-process drills'
/// `reconciled_money`, a retry the client saw answered by the *new* primary (the old one's answer
/// lost in a black hole) is not counted: the client was told what the new primary holds.
fn told_but_not_held(report: &ReconcileReport, seen: &Seen) -> (BTreeSet<String>, usize, i128) {
    use paracell_domain::placement::reconcile::TailClass;
    let moved = super::booked_cents;
    let mut keys = BTreeSet::new();
    let (mut lost, mut missing) = (0, 0);
    for entry in &report.entries {
        keys.insert(entry.key.clone());
        let told_old = seen
            .acked
            .get(&entry.key)
            .is_some_and(|a| a.body == entry.body.as_bytes());
        match entry.class {
            TailClass::Lost => {
                lost += 1;
                missing += moved(entry.status, &entry.body);
            }
            TailClass::RetriedOtherOutcome if told_old => {
                missing += moved(entry.status, &entry.body);
                if let Some((status, body)) = &entry.new_answer {
                    missing -= moved(*status, body);
                }
            }
            _ => {}
        }
    }
    (keys, lost, missing)
}

/// Money conserved, no negative balance, nothing applied twice, every acknowledged booking on the
/// final primary byte for byte or in the reconciliation report.
async fn money_checks(
    row: &mut Row,
    seen: &Seen,
    final_cell: &CellHandle,
    reconciled: Option<&ReconcileReport>,
    router: u16,
) -> Result<(), String> {
    let (tail_keys, lost, lost_cents) =
        reconciled.map_or((BTreeSet::new(), 0, 0), |r| told_but_not_held(r, seen));
    row.lost = lost;
    let tenant = tenant()?;
    let mut expected: i128 = 0;
    let mut missing = Vec::new();
    for (key, a) in &seen.acked {
        if a.status != 201 {
            continue;
        }
        let body: serde_json::Value =
            serde_json::from_slice(&a.request.body).map_err(|e| e.to_string())?;
        let amount = cents(body["amount"].as_str().unwrap_or("0"));
        expected += if body["type"] == "debit" {
            -amount
        } else {
            amount
        };
        if tail_keys.contains(key) {
            continue;
        }
        let Some(location) = &a.location else {
            missing.push(format!("{key}: no Location"));
            continue;
        };
        let got = tokio::task::block_in_place(|| {
            wire::send(
                router,
                "GET",
                location,
                &[("X-Tenant-ID", TENANT)],
                b"",
                false,
            )
        })
        .map_err(|e| format!("GET {location}: {e}"))?;
        if got.status != 200 || got.body != a.body {
            missing.push(format!(
                "{key}: GET {location} answered {} {}",
                got.status,
                String::from_utf8_lossy(&got.body)
            ));
        }
    }
    expected -= lost_cents;
    let store: &dyn TransactionStore = final_cell.store.as_ref();
    let mut held: i128 = 0;
    let mut negative = Vec::new();
    for account in ACCOUNTS {
        let account = AccountId::parse(account).map_err(|e| e.to_string())?;
        for b in store
            .balances(&tenant, &account)
            .await
            .map_err(|e| e.to_string())?
        {
            let cents = cents(&b.available.to_string());
            if cents < 0 {
                negative.push(format!("{account}: {}", b.available));
            }
            held += cents;
        }
    }
    let log = store
        .entries_after(&tenant, 0, 1_000_000)
        .await
        .map_err(|e| e.to_string())?;
    let keys: BTreeSet<String> = log.iter().map(|e| e.entry().key.to_string()).collect();
    let acked: BTreeSet<&String> = seen.acked.keys().collect();
    let phantom = keys.iter().find(|k| !acked.contains(k)).cloned();
    let absent = acked
        .iter()
        .find(|k| !tail_keys.contains(**k) && !keys.contains(**k))
        .map(|k| (*k).clone());
    check(
        row,
        "money conserved: balances on the final primary are the acknowledged sum minus what reconciliation lists as lost",
        held == expected,
        format!("held {held} cents, expected {expected} cents ({lost} lost bookings)"),
    );
    check(
        row,
        "no negative balance",
        negative.is_empty(),
        negative.join("; "),
    );
    check(
        row,
        "nothing applied twice: one log entry per acknowledged write, none unacknowledged",
        keys.len() == log.len() && phantom.is_none() && absent.is_none(),
        format!(
            "{} entries, {} keys, {} acknowledged; unacknowledged: {phantom:?}; missing: {absent:?}",
            log.len(),
            keys.len(),
            seen.acked.len()
        ),
    );
    check(
        row,
        "every acknowledged booking is on the final primary byte for byte, or in the reconciliation report",
        missing.is_empty(),
        missing.first().cloned().unwrap_or_default(),
    );
    Ok(())
}
