//! Routing vectors: `conformance/edge/vectors.json`, one table of (registry, cell behaviour, request)
//! → (answer, attempts) that every host of the router must pass — the core, a Lambda behind a
//! Function URL, the Azure custom handler in both modes — and that a router written for another
//! edge runtime can be held to.
//!
//! Cells are real in-memory cells behind a scripted transport: per attempt, a cell answers, refuses
//! the connection, answers and then loses the connection before the reply, times out, or stands
//! behind a platform that answers a gateway error or a scripted problem.

use super::{EDGE_ID, Host};
use crate::case::RequestSpec;
use crate::matcher::Captures;
use crate::request::ClientRequest;
use paracell_domain::edge::routes::{Route, RouteSource, RouteTable};
use paracell_domain::edge::{Edge, EdgeConfig, EdgePorts};
use paracell_domain::http::ApiRequest;
use paracell_domain::memory::ManualClock;
use paracell_domain::ports::{
    Clock, HttpClient, OutboundRequest, OutboundResponse, Sleep, StoreError, TransportError,
};
use paracell_domain::{Cell, CellConfig, TenantId, TenantScope};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The vectors file, embedded when this crate was built.
pub const VECTORS: &str = include_str!("../../edge/vectors.json");

/// The vectors file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorFile {
    /// Format version (1).
    pub format: u32,
    /// The vectors.
    pub vectors: Vec<Vector>,
}

/// One routing vector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vector {
    /// Stable id (`EDGE-001`).
    pub id: String,
    /// What it shows.
    pub title: String,
    /// The `docs/api.md` requirements it covers.
    pub requirements: Vec<String>,
    /// The registry at the start: tenant → route (`url` is derived from the cell: `http://<cell>.test`).
    pub registry: BTreeMap<String, RouteSpec>,
    /// Each cell's behaviour per attempt (the last one repeats). Cells not listed answer.
    #[serde(default)]
    pub cells: BTreeMap<String, Vec<Behaviour>>,
    /// Heads seeded before the first step: cell → tenant → the epoch it is primary at (a cell
    /// promoted by a failover holds the new epoch).
    #[serde(default)]
    pub heads: BTreeMap<String, BTreeMap<String, u64>>,
    /// The steps.
    pub steps: Vec<Step>,
}

/// A registry entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// The cell.
    pub cell: String,
    /// `aws` or `azure`.
    pub cloud: String,
    /// The placement epoch.
    pub epoch: u64,
}

/// What a cell does with one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Behaviour {
    /// The cell answers.
    Answer,
    /// No connection: nothing is sent.
    Refuse,
    /// The cell processes the request, then the connection drops before the reply.
    AnswerThenReset,
    /// No answer within the time left: the clock moves past the deadline.
    Timeout,
    /// A platform in front of the cell answers `502` with a plain-text body (the cell saw nothing).
    Gateway502,
    /// The cell answers `503 store-unavailable` with `Retry-After: 7` (its own answer).
    StoreUnavailable,
    /// The cell answers `421 tenant-moved` (it is fenced: the tenant moved).
    Moved,
}

/// One request of a vector, with what happens before it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Before sending: the registry becomes unreachable (`"unreachable"`) or holds these entries.
    #[serde(default)]
    pub registry: Option<RegistryChange>,
    /// Before sending: the clock moves forward this many seconds.
    #[serde(default)]
    pub advance_secs: u64,
    /// After the first attempt reaches a cell, the registry holds these entries (a move completing
    /// while the request is in flight).
    #[serde(default)]
    pub registry_after_first_attempt: Option<BTreeMap<String, RouteSpec>>,
    /// Send the request this many times (expectations apply to the last).
    #[serde(default = "one")]
    pub repeat: usize,
    /// The request.
    pub request: RequestSpec,
    /// What the client must see.
    pub expect: Expectation,
}

fn one() -> usize {
    1
}

/// A registry change before a step.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RegistryChange {
    /// `"unreachable"`.
    Unreachable(String),
    /// New entries.
    Entries(BTreeMap<String, RouteSpec>),
}

/// What the client must see, and what the router must have done.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// Status.
    pub status: u16,
    /// The problem slug, for problem answers.
    #[serde(default, rename = "type")]
    pub problem: Option<String>,
    /// Headers that must have these values (`null`: absent).
    #[serde(default)]
    pub headers: BTreeMap<String, Option<String>>,
    /// The cells the router sent the request to, in order (of the last repetition).
    pub attempts: Vec<String>,
    /// Distinct transactions each cell booked during the whole vector.
    #[serde(default)]
    pub booked: BTreeMap<String, usize>,
}

/// The built-in vectors.
pub fn built_in() -> Result<Vec<Vector>, String> {
    let file: VectorFile =
        serde_json::from_str(VECTORS).map_err(|e| format!("edge/vectors.json: {e}"))?;
    if file.format != 1 {
        return Err(format!(
            "edge/vectors.json: format {} is not 1",
            file.format
        ));
    }
    let mut ids = BTreeSet::new();
    for v in &file.vectors {
        if !ids.insert(v.id.clone()) {
            return Err(format!("edge/vectors.json: duplicate id {}", v.id));
        }
    }
    Ok(file.vectors)
}

fn table(entries: &BTreeMap<String, RouteSpec>) -> Result<RouteTable, String> {
    let tenants: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(tenant, r)| {
            (
                tenant.clone(),
                serde_json::json!({"cell": r.cell, "cloud": r.cloud, "url": format!("http://{}.test", r.cell), "epoch": r.epoch}),
            )
        })
        .collect();
    RouteTable::parse(
        &serde_json::to_vec(&serde_json::json!({ "tenants": tenants })).unwrap_or_default(),
    )
    .map_err(|e| e.to_string())
}

/// The registry of a vector: a table, or unreachable.
#[derive(Default)]
struct Registry(Mutex<Option<RouteTable>>);

#[async_trait::async_trait]
impl RouteSource for Registry {
    async fn route(&self, tenant: &TenantId) -> Result<Option<Route>, StoreError> {
        match &*self.0.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(table) => Ok(table.get(tenant).cloned()),
            None => Err(StoreError::Unavailable {
                retry_after_secs: 1,
                detail: "registry unreachable (vector)".into(),
            }),
        }
    }
}

/// The scripted transport in front of real cells.
struct Cells {
    cells: BTreeMap<String, Cell>,
    scripts: BTreeMap<String, Vec<Behaviour>>,
    attempts: Mutex<Vec<String>>,
    per_cell: Mutex<BTreeMap<String, usize>>,
    booked: Mutex<BTreeMap<String, BTreeSet<String>>>,
    clock: Arc<ManualClock>,
    registry: Arc<Registry>,
    after_first: Mutex<Option<RouteTable>>,
}

#[async_trait::async_trait]
impl HttpClient for Cells {
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, TransportError> {
        let rest = request
            .url
            .strip_prefix("http://")
            .ok_or_else(|| TransportError::Connect("not http".into()))?;
        let (host, target) = rest.split_once('/').unwrap_or((rest, ""));
        let name = host.strip_suffix(".test").unwrap_or(host).to_owned();
        let Some(cell) = self.cells.get(&name) else {
            return Err(TransportError::Connect(format!("no cell {name}")));
        };
        let n = {
            let mut per_cell = self.per_cell.lock().unwrap_or_else(|e| e.into_inner());
            let n = per_cell.entry(name.clone()).or_default();
            *n += 1;
            *n - 1
        };
        self.attempts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(name.clone());
        if let Some(moved) = self
            .after_first
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            *self.registry.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(moved);
        }
        let behaviour = self
            .scripts
            .get(&name)
            .and_then(|s| s.get(n).or(s.last()))
            .copied()
            .unwrap_or(Behaviour::Answer);
        let problem = |status: u16, slug: &str, extra: &[(&str, &str)]| {
            let mut headers = vec![(
                "content-type".to_owned(),
                "application/problem+json; charset=utf-8".to_owned(),
            )];
            headers.extend(
                extra
                    .iter()
                    .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
            );
            OutboundResponse {
                status,
                headers,
                body: format!(r#"{{"type":"urn:paracell:problem:{slug}","status":{status}}}"#)
                    .into_bytes(),
            }
        };
        match behaviour {
            Behaviour::Refuse => Err(TransportError::Connect("connection refused".into())),
            Behaviour::Timeout => {
                self.clock.advance(request.timeout);
                Err(TransportError::Timeout)
            }
            Behaviour::Gateway502 => Ok(OutboundResponse {
                status: 502,
                headers: vec![("content-type".into(), "text/plain".into())],
                body: b"Bad Gateway".to_vec(),
            }),
            Behaviour::StoreUnavailable => {
                Ok(problem(503, "store-unavailable", &[("retry-after", "7")]))
            }
            Behaviour::Moved => Ok(problem(421, "tenant-moved", &[])),
            Behaviour::Answer | Behaviour::AnswerThenReset => {
                let (path, query) = target.split_once('?').unwrap_or((target, ""));
                let api = ApiRequest {
                    method: request.method.clone(),
                    path: format!("/{path}"),
                    query: query.to_owned(),
                    headers: request.headers.iter().cloned().collect(),
                    body: request.body.clone(),
                    authenticated_tenant: None,
                };
                let answer = cell.handle(api).await;
                if answer.status == 201
                    && let Ok(body) = serde_json::from_slice::<serde_json::Value>(&answer.body)
                    && let Some(id) = body["transaction_id"].as_str()
                {
                    self.booked
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(name.clone())
                        .or_default()
                        .insert(id.to_owned());
                }
                if behaviour == Behaviour::AnswerThenReset {
                    return Err(TransportError::Broken("connection reset by peer".into()));
                }
                Ok(OutboundResponse {
                    status: answer.status,
                    headers: answer.headers,
                    body: answer.body,
                })
            }
        }
    }
}

struct NoWait;

#[async_trait::async_trait]
impl Sleep for NoWait {
    async fn sleep(&self, _: Duration) {}
}

/// A vector's result on one host.
#[derive(Debug, Clone)]
pub struct VectorReport {
    /// The vector.
    pub id: String,
    /// The host.
    pub host: &'static str,
    /// What failed (empty: passed).
    pub failures: Vec<String>,
}

/// Runs every vector on every host.
pub async fn run_all(vectors: &[Vector]) -> Vec<VectorReport> {
    let mut reports = Vec::new();
    for vector in vectors {
        for host in [
            "direct",
            "aws-function-url",
            "azure-forwarding",
            "azure-payload",
        ] {
            reports.push(run(vector, host).await);
        }
    }
    reports
}

/// Runs one vector on one host, in a fresh world.
pub async fn run(vector: &Vector, host_name: &'static str) -> VectorReport {
    let mut report = VectorReport {
        id: vector.id.clone(),
        host: host_name,
        failures: Vec::new(),
    };
    if let Err(e) = run_steps(vector, host_name, &mut report.failures).await {
        report.failures.push(e);
    }
    report
}

async fn run_steps(
    vector: &Vector,
    host_name: &'static str,
    failures: &mut Vec<String>,
) -> Result<(), String> {
    let clock = Arc::new(ManualClock::default());
    let registry = Arc::new(Registry(Mutex::new(Some(table(&vector.registry)?))));
    let mut names: BTreeSet<String> = vector.registry.values().map(|r| r.cell.clone()).collect();
    names.extend(vector.cells.keys().cloned());
    for step in &vector.steps {
        if let Some(RegistryChange::Entries(e)) = &step.registry {
            names.extend(e.values().map(|r| r.cell.clone()));
        }
        if let Some(e) = &step.registry_after_first_attempt {
            names.extend(e.values().map(|r| r.cell.clone()));
        }
    }
    let mut cells = BTreeMap::new();
    for name in names {
        let config = CellConfig::new(&name, TenantScope::All).map_err(|e| e.to_string())?;
        cells.insert(name, paracell_domain::memory::deterministic(config).0);
    }
    for (name, tenants) in &vector.heads {
        let cell = cells
            .get(name)
            .ok_or_else(|| format!("heads: no cell {name}"))?;
        for (tenant, epoch) in tenants {
            let tenant = TenantId::parse(tenant).map_err(|e| format!("heads: {e}"))?;
            let head = paracell_domain::placement::TenantHead {
                epoch: *epoch,
                ..paracell_domain::placement::TenantHead::first_primary(
                    tenant,
                    cell.config().cell_id.clone(),
                )
            };
            cell.ports()
                .store
                .put_head(paracell_domain::placement::Fence::Absent, head)
                .await
                .map_err(|e| format!("heads: {e}"))?;
        }
    }
    let transport = Arc::new(Cells {
        cells,
        scripts: vector.cells.clone(),
        attempts: Mutex::default(),
        per_cell: Mutex::default(),
        booked: Mutex::default(),
        clock: clock.clone(),
        registry: registry.clone(),
        after_first: Mutex::default(),
    });
    let edge = Edge::new(
        EdgeConfig::new(EDGE_ID).map_err(|e| format!("edge id: {e}"))?,
        EdgePorts {
            routes: registry.clone(),
            upstream: transport.clone(),
            clock: clock.clone() as Arc<dyn Clock>,
            sleep: Arc::new(NoWait),
        },
    );
    let host = Host::all(&edge)
        .into_iter()
        .find(|(name, _)| *name == host_name)
        .map(|(_, h)| h)
        .ok_or_else(|| format!("no host {host_name}"))?;
    for (index, step) in vector.steps.iter().enumerate() {
        let n = index + 1;
        match &step.registry {
            Some(RegistryChange::Unreachable(word)) if word == "unreachable" => {
                *registry.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
            }
            Some(RegistryChange::Unreachable(other)) => {
                return Err(format!(
                    "step {n}: registry {other:?} is not \"unreachable\""
                ));
            }
            Some(RegistryChange::Entries(entries)) => {
                *registry.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(table(entries)?);
            }
            None => {}
        }
        clock.advance(Duration::from_secs(step.advance_secs));
        let request = ClientRequest::from_spec(&step.request, &Captures::default());
        let mut seen = None;
        for _ in 0..step.repeat.max(1) {
            transport
                .attempts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
            if let Some(entries) = &step.registry_after_first_attempt {
                *transport
                    .after_first
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(table(entries)?);
            }
            seen = Some(host.exchange(&request).await?);
        }
        let Some(response) = seen else { continue };
        let expect = &step.expect;
        if response.status != expect.status {
            failures.push(format!(
                "step {n}: status {} (expected {}): {}",
                response.status,
                expect.status,
                String::from_utf8_lossy(&response.body)
            ));
        }
        if let Some(slug) = &expect.problem {
            let body: serde_json::Value =
                serde_json::from_slice(&response.body).unwrap_or_default();
            let expected = format!("urn:paracell:problem:{slug}");
            if body["type"].as_str() != Some(expected.as_str()) {
                failures.push(format!(
                    "step {n}: type {} (expected {expected})",
                    body["type"]
                ));
            }
        }
        for (name, value) in &expect.headers {
            if response.header(name) != value.as_deref() {
                failures.push(format!(
                    "step {n}: header {name} is {:?} (expected {value:?})",
                    response.header(name)
                ));
            }
        }
        let attempts = transport
            .attempts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if attempts != expect.attempts {
            failures.push(format!(
                "step {n}: attempts {attempts:?} (expected {:?})",
                expect.attempts
            ));
        }
        let booked = transport
            .booked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for (cell, count) in &expect.booked {
            let actual = booked.get(cell).map_or(0, BTreeSet::len);
            if actual != *count {
                failures.push(format!(
                    "step {n}: cell {cell} booked {actual} transactions (expected {count})"
                ));
            }
        }
    }
    Ok(())
}
