//! Running cases: every envelope gets a fresh cell, the same steps, and then three checks
//! (expectations, response parity, state parity).

use crate::binaries::{AzureProcess, Binaries, LambdaProcess};
use crate::case::{Case, CellSpec, Expect, Fault};
use crate::envelopes::{Envelope, Exchange, aws, azure};
use crate::facts::Fact;
use crate::matcher::{Captures, match_json, match_template};
use crate::request::{ClientRequest, ClientResponse};
use paracell_aws::LambdaHttp;
use paracell_azure::{AzureConfig, AzureHandler, Mode, RoutePrefix};
use paracell_domain::http::{ApiRequest, ApiResponse, HttpService};
use paracell_domain::memory::MemoryStore;
use paracell_domain::{Cell, CellConfig, TenantId, TenantScope};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Builds the cell an envelope runs against; return the store to have state parity checked.
pub type CellFactory = dyn Fn(CellConfig) -> (Cell, Option<Arc<MemoryStore>>) + Send + Sync;

/// Builds the workload an envelope runs against: a fresh service for every envelope of every case
/// (cases must not see each other's state). Any `tower::Service` over `http` types becomes one with
/// [`paracell_domain::http::Workload`].
pub type WorkloadFactory = dyn Fn() -> Arc<dyn HttpService> + Send + Sync;

/// Where the adapters run.
pub enum Backend {
    /// In this process, through each adapter's in-process entry point.
    InProcess(Arc<CellFactory>),
    /// The built binaries: `lambda-cell` under cargo-lambda's runtime emulator, `azure-cell` over
    /// loopback HTTP. `direct` stays in process as the reference.
    Binaries(Binaries),
    /// In process, every envelope's cell behind the edge router, each answer compared byte for byte
    /// with the same envelope's twin cell reached without the router ([`crate::edge`]).
    BehindEdge(Arc<CellFactory>),
    /// In this process, through each adapter's in-process entry point, around a workload that is
    /// not Paracell's ledger ([`Backend::workload`]). Expectations and response parity are checked;
    /// there is no store to compare, and a case that needs the ledger's cell (a store fault, seeded
    /// heads, a standby) is not applicable.
    Workload(Arc<WorkloadFactory>),
}

impl Backend {
    /// In process on deterministic in-memory cells (the default).
    pub fn in_process() -> Self {
        Self::InProcess(Arc::new(|config| {
            let (cell, store) = paracell_domain::memory::deterministic(config);
            (cell, Some(store))
        }))
    }

    /// Any workload in process: `factory` builds a fresh one for every envelope of every case.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::Full;
    /// use paracell_conformance::{Backend, Suite};
    /// use paracell_domain::http::Workload;
    /// use std::sync::Arc;
    ///
    /// // Any tower::Service over http types (in practice often an axum Router).
    /// let echo = tower::service_fn(|request: http::Request<Full<Bytes>>| async move {
    ///     let body = serde_json::json!({"path": request.uri().path()}).to_string();
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(body))))
    /// });
    /// let backend = Backend::workload(move || Arc::new(Workload::new("echo", echo.clone())));
    /// let case = r#"{"id": "ECHO-1", "title": "echoes the path", "requirements": [],
    ///   "steps": [{"request": {"method": "GET", "path": "/v1/x"},
    ///              "expect": {"status": 200, "body": {"path": "/v1/x"}}}]}"#;
    /// let suite = Suite::new(vec![paracell_conformance::Case::parse("ECHO-1.json", case).unwrap()]);
    /// let reports = suite.run(&backend);
    /// assert!(reports.iter().all(|r| r.passed()), "{:?}", reports[0].failures);
    /// ```
    pub fn workload(factory: impl Fn() -> Arc<dyn HttpService> + Send + Sync + 'static) -> Self {
        Self::Workload(Arc::new(factory))
    }

    /// In process, behind the edge router, on deterministic in-memory cells.
    pub fn behind_edge() -> Self {
        Self::BehindEdge(Arc::new(|config| {
            let (cell, store) = paracell_domain::memory::deterministic(config);
            (cell, Some(store))
        }))
    }
}

/// How one envelope did on one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Expectations met, same responses and state as its parity group.
    Pass,
    /// Something failed: see the case's `failures`.
    Fail,
    /// The envelope cannot express the case (with the reason).
    NotApplicable(&'static str),
}

/// The result of one case.
#[derive(Debug, Clone)]
pub struct CaseReport {
    /// Case id.
    pub id: String,
    /// Case title.
    pub title: String,
    /// Requirements it covers.
    pub requirements: Vec<String>,
    /// Per envelope.
    pub outcomes: BTreeMap<Envelope, Outcome>,
    /// Readable failures: expectations missed and the first divergence of each envelope.
    pub failures: Vec<String>,
    /// Platform facts met, with the envelopes they affected.
    pub facts: Vec<(Fact, Vec<Envelope>)>,
}

impl CaseReport {
    /// Whether the case passed on every envelope it applies to.
    pub fn passed(&self) -> bool {
        self.failures.is_empty() && !self.outcomes.values().any(|o| *o == Outcome::Fail)
    }
}

/// What an in-process driver serves: any service, and the ledger's cell when it is one (seeding
/// heads, the edge lane and the drills need the cell itself).
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) service: Arc<dyn HttpService>,
    pub(crate) cell: Option<Cell>,
}

impl Target {
    pub(crate) fn cell(cell: Cell) -> Self {
        Self {
            service: Arc::new(cell.clone()),
            cell: Some(cell),
        }
    }
}

pub(crate) enum Driver {
    Direct(Target),
    Lambda(LambdaHttp, Arc<Recorder>),
    Azure(AzureHandler, Arc<Recorder>),
    LambdaProcess(LambdaProcess),
    AzureProcess(AzureProcess),
    Edge(Box<crate::edge::EdgeLane>),
}

impl Driver {
    /// The in-process cell behind this driver, if there is one.
    pub(crate) fn cell(&self) -> Option<&Cell> {
        match self {
            Self::Direct(target) => target.cell.as_ref(),
            Self::Lambda(_, recorder) | Self::Azure(_, recorder) => recorder.target.cell.as_ref(),
            Self::LambdaProcess(_) | Self::AzureProcess(_) | Self::Edge(_) => None,
        }
    }

    /// For an adapter in this process: how the neutral request it produced differs from the
    /// reference, or the client's decoded response from the domain's ([`crate::seam`]).
    pub(crate) fn seam_difference(
        &self,
        envelope: Envelope,
        request: &ClientRequest,
        client: &ClientResponse,
    ) -> Option<String> {
        let (Self::Lambda(_, recorder) | Self::Azure(_, recorder)) = self else {
            return None;
        };
        let Some((seen, answered)) = recorder.take() else {
            // The adapter answered without the domain (an envelope it could not translate): the
            // client-visible comparison covers it.
            return None;
        };
        let limit = recorder.target.service.max_body_bytes();
        crate::seam::request_difference(envelope, &reference_request(request), &seen, limit)
            .map(|d| format!("the neutral request differs from the direct one: {d}"))
            .or_else(|| {
                crate::seam::response_difference(&answered, client)
                    .map(|d| format!("the client's response differs from the domain's: {d}"))
            })
    }

    pub(crate) async fn exchange(
        &mut self,
        envelope: Envelope,
        request: &ClientRequest,
        step: usize,
    ) -> Exchange {
        match self {
            Self::Direct(target) => {
                // Every adapter wraps the domain in catch_panic at its boundary; so does the reference.
                let r = paracell_domain::http::catch_panic(
                    target.service.handle(reference_request(request)),
                )
                .await;
                Exchange::Response(ClientResponse::new(r.status, r.headers, r.body))
            }
            Self::Lambda(lambda, _) => {
                let event = aws::event(envelope, request);
                match lambda
                    .invoke(&serde_json::to_vec(&event).unwrap_or_default())
                    .await
                {
                    Ok(bytes) => match serde_json::from_slice(&bytes) {
                        Ok(json) => {
                            into_exchange(aws::client_view(envelope, &request.method, &json))
                        }
                        Err(e) => {
                            Exchange::Failed(format!("the function's response is not JSON: {e}"))
                        }
                    },
                    Err(e) => Exchange::Failed(format!(
                        "the invocation failed (the gateway would answer 502): {e}"
                    )),
                }
            }
            Self::Azure(handler, _) => {
                let host = azure::host_request(envelope, request, &format!("inv-{step}"));
                let reply = handler.invoke(host).await;
                Exchange::Response(azure::client_view(envelope, &request.method, &reply))
            }
            Self::LambdaProcess(process) => process.exchange(envelope, request),
            Self::AzureProcess(process) => process.exchange(envelope, request, step),
            Self::Edge(lane) => lane.exchange(envelope, request, step).await,
        }
    }
}

fn into_exchange(result: Result<ClientResponse, String>) -> Exchange {
    match result {
        Ok(r) => Exchange::Response(r),
        Err(e) => Exchange::Failed(e),
    }
}

/// The cell configuration of a case.
pub fn cell_config(spec: &CellSpec) -> Result<CellConfig, String> {
    let tenants = if spec.tenants.iter().any(|t| t == "*") {
        TenantScope::All
    } else {
        TenantScope::Set(
            spec.tenants
                .iter()
                .map(|t| TenantId::parse(t).map_err(|e| format!("cell.tenants: {t:?} {e}")))
                .collect::<Result<_, _>>()?,
        )
    };
    let mut config = CellConfig::new(&spec.cell_id, tenants).map_err(|e| format!("cell: {e}"))?;
    if let Some(limit) = spec.max_body_bytes {
        config.limits.max_body_bytes = limit;
    }
    Ok(config)
}

struct Lane {
    envelope: Envelope,
    store: Option<Arc<MemoryStore>>,
    captures: Captures,
    /// The facts met so far, after each step (cumulative: a fact's effect on state persists).
    facts: Vec<BTreeSet<Fact>>,
    not_applicable: Option<&'static str>,
    responses: Vec<Option<ClientResponse>>,
    failures: Vec<String>,
}

/// The function app's `host.json`, as shipped: the Azure lanes read their mode and route prefix from
/// it exactly as a deployed cell does (`AzureConfig::from_parts`), so the suite proves the shipped
/// configuration, not a hand-built one.
const SHIPPED_HOST_JSON: &str = include_str!("../../examples/azure/app/host.json");

/// The custom handler's configuration for the payload or forwarding lane: the shipped `host.json`
/// (forwarding switched on with `customHandler.enableForwardingHttpRequest`, as an app would), App
/// Service authentication on (principals trusted).
pub(crate) fn azure_config(forwarding: bool) -> AzureConfig {
    let host_json = if forwarding {
        SHIPPED_HOST_JSON.replace(
            r#""enableForwardingHttpRequest": false"#,
            r#""enableForwardingHttpRequest": true"#,
        )
    } else {
        SHIPPED_HOST_JSON.to_owned()
    };
    let env = |name: &str| (name == "WEBSITE_AUTH_ENABLED").then(|| "true".to_owned());
    let config = AzureConfig::from_parts(Some(&host_json), "examples/azure/app/host.json", env)
        .unwrap_or_else(|e| panic!("the shipped host.json: {e}"));
    // The suite's host model puts client paths under `azure::ROUTE_PREFIX`: the two must agree.
    assert_eq!(config.route_prefix, RoutePrefix::new(azure::ROUTE_PREFIX));
    assert_eq!(config.mode == Mode::Forwarding, forwarding, "host.json");
    config
}

/// The in-process driver of `envelope` around `cell`.
pub(crate) fn driver(envelope: Envelope, cell: Cell) -> Driver {
    driver_for(envelope, Target::cell(cell))
}

/// The in-process driver of `envelope` around any service.
pub(crate) fn driver_for(envelope: Envelope, target: Target) -> Driver {
    let azure_config = |mode| azure_config(mode == Mode::Forwarding);
    if envelope == Envelope::Direct {
        return Driver::Direct(target);
    }
    let recorder = Arc::new(Recorder {
        target,
        seen: std::sync::Mutex::new(None),
    });
    let service: Arc<dyn HttpService> = recorder.clone();
    match envelope {
        Envelope::AzurePayload => Driver::Azure(
            AzureHandler::for_service(service, azure_config(Mode::Payload)),
            recorder,
        ),
        Envelope::AzureForwarding => Driver::Azure(
            AzureHandler::for_service(service, azure_config(Mode::Forwarding)),
            recorder,
        ),
        _ => Driver::Lambda(LambdaHttp::new(service), recorder),
    }
}

/// The neutral request a client request is when no platform stands between: the direct envelope's,
/// and the reference every adapter's translation is compared with ([`crate::seam`]).
pub(crate) fn reference_request(request: &ClientRequest) -> ApiRequest {
    ApiRequest {
        method: request.method.clone(),
        path: request.path.clone(),
        query: request.query.clone(),
        headers: request.headers.iter().cloned().collect(),
        body: request.body.clone(),
        authenticated_tenant: request.authenticated_tenant.clone(),
    }
}

/// The cell behind an adapter, remembering the last neutral request the adapter handed it and the
/// neutral response it gave, for the comparison at the seam.
pub(crate) struct Recorder {
    pub(crate) target: Target,
    seen: std::sync::Mutex<Option<(ApiRequest, ApiResponse)>>,
}

impl Recorder {
    /// The last exchange at the seam (taken: each is compared once).
    pub(crate) fn take(&self) -> Option<(ApiRequest, ApiResponse)> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

#[async_trait::async_trait]
impl HttpService for Recorder {
    async fn handle(&self, request: ApiRequest) -> ApiResponse {
        let response = self.target.service.handle(request.clone()).await;
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some((request, response.clone()));
        response
    }

    fn max_body_bytes(&self) -> usize {
        self.target.service.max_body_bytes()
    }

    fn oversized_request(&self) -> ApiResponse {
        self.target.service.oversized_request()
    }

    fn name(&self) -> &str {
        self.target.service.name()
    }
}

pub(crate) fn start(
    backend: &Backend,
    envelope: Envelope,
    config: &CellConfig,
    fault: Option<Fault>,
    seeded: bool,
) -> Result<(Driver, Option<Arc<MemoryStore>>), String> {
    let in_process = |factory: &CellFactory| match fault {
        None => factory(config.clone()),
        Some(fault) => {
            // Faults wrap the deterministic in-memory store, whatever the factory builds.
            let (reference, store) = paracell_domain::memory::deterministic(config.clone());
            let ports = paracell_domain::CellPorts {
                store: Arc::new(crate::faults::faulty(store.clone(), fault)),
                ..reference.ports().clone()
            };
            (Cell::new(config.clone(), ports), Some(store))
        }
    };
    match backend {
        Backend::InProcess(factory) => {
            let (cell, store) = in_process(factory.as_ref());
            Ok((driver(envelope, cell), store))
        }
        Backend::BehindEdge(factory) => {
            let (cell, store) = in_process(factory.as_ref());
            let (twin, _) = in_process(factory.as_ref());
            let registry = store
                .clone()
                .map(|s| s as Arc<dyn paracell_domain::ports::TransactionStore>);
            let lane = crate::edge::EdgeLane::new(
                envelope,
                driver(envelope, cell),
                driver(envelope, twin),
                registry,
            )?;
            Ok((Driver::Edge(Box::new(lane)), store))
        }
        Backend::Workload(_) if fault.is_some() || seeded => Err(NOT_INJECTABLE.into()),
        Backend::Workload(factory) => {
            let target = Target {
                service: factory(),
                cell: None,
            };
            Ok((driver_for(envelope, target), None))
        }
        Backend::Binaries(_) if (fault.is_some() || seeded) && envelope != Envelope::Direct => {
            Err(NOT_INJECTABLE.into())
        }
        Backend::Binaries(binaries) => match envelope {
            Envelope::Direct => start(&Backend::in_process(), envelope, config, fault, seeded),
            Envelope::AzurePayload => binaries
                .start_azure(config, "payload")
                .map(|p| (Driver::AzureProcess(p), None)),
            Envelope::AzureForwarding => binaries
                .start_azure(config, "forwarding")
                .map(|p| (Driver::AzureProcess(p), None)),
            _ => binaries
                .start_lambda(config)
                .map(|p| (Driver::LambdaProcess(p), None)),
        },
    }
}

const PAIR_BEHIND_EDGE: &str =
    "a two-cell replication case: deliveries go cell to cell, never through the edge router";

const PAIR_NEEDS_LEDGER: &str =
    "a two-cell replication case: it needs Paracell's ledger cells, not a workload";

pub(crate) const NOT_INJECTABLE: &str =
    "store faults and seeded heads can only be injected in process";

/// What the Functions host does before it invokes a custom handler: `GET /` until it answers (notes:
/// the host's readiness probe). An in-process Azure lane must answer it `200` with nothing in it, in
/// either mode, or the host would never send it a request.
pub(crate) async fn host_probe(driver: &Driver) -> Result<(), String> {
    if let Driver::Azure(handler, _) = driver {
        let reply = handler
            .invoke(paracell_azure::HostRequest::new("GET", "/"))
            .await;
        if reply.status != 200 || !reply.body.is_empty() {
            return Err(format!(
                "the handler did not answer the host's readiness probe (GET / → {})",
                reply.status
            ));
        }
    }
    Ok(())
}

/// Writes a cell spec's seeded heads through the cell's own store port.
pub(crate) async fn seed_heads(driver: &Driver, spec: &CellSpec) -> Result<(), String> {
    if spec.heads.is_empty() {
        return Ok(());
    }
    if let Driver::Edge(lane) = driver {
        return lane.seed(spec).await;
    }
    let cell = driver
        .cell()
        .ok_or("seeded heads need an in-process cell")?;
    for h in &spec.heads {
        let tenant = TenantId::parse(&h.tenant).map_err(|e| format!("heads: tenant {e}"))?;
        let role = paracell_domain::placement::TenantRole::parse(&h.role)
            .ok_or_else(|| format!("heads: role {:?}", h.role))?;
        let primary = match &h.primary {
            Some(p) => {
                paracell_domain::CellId::parse(p).map_err(|e| format!("heads: primary {e}"))?
            }
            None => cell.config().cell_id.clone(),
        };
        let lease_until = match &h.lease_until {
            None => None,
            Some(t) => Some(
                paracell_domain::Timestamp::parse_rfc3339(t)
                    .ok_or_else(|| format!("heads: lease_until {t:?}"))?,
            ),
        };
        let head = paracell_domain::placement::TenantHead {
            role,
            epoch: h.epoch,
            primary,
            lease_until,
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
    Ok(())
}

/// Runs one case on the given envelopes.
pub async fn run_case(case: &Case, envelopes: &[Envelope], backend: &Backend) -> CaseReport {
    if case.standby.is_some() {
        let not_applicable = |reason| CaseReport {
            id: case.id.clone(),
            title: case.title.clone(),
            requirements: case.requirements.clone(),
            outcomes: envelopes
                .iter()
                .map(|e| (*e, Outcome::NotApplicable(reason)))
                .collect(),
            failures: Vec::new(),
            facts: Vec::new(),
        };
        match backend {
            Backend::Workload(_) => return not_applicable(PAIR_NEEDS_LEDGER),
            // Replication goes cell to cell; the router is not on that path.
            Backend::BehindEdge(_) => return not_applicable(PAIR_BEHIND_EDGE),
            _ => {}
        }
        return crate::pairs::run_pair_case(case, envelopes, backend).await;
    }
    let mut report = CaseReport {
        id: case.id.clone(),
        title: case.title.clone(),
        requirements: case.requirements.clone(),
        outcomes: BTreeMap::new(),
        failures: Vec::new(),
        facts: Vec::new(),
    };
    let config = match cell_config(&case.cell) {
        Ok(c) => c,
        Err(e) => {
            report.failures.push(e);
            report.outcomes = envelopes.iter().map(|e| (*e, Outcome::Fail)).collect();
            return report;
        }
    };
    // Each lane runs to completion before the next starts: in binaries mode only one process per
    // platform is alive at a time (every lambda-cell polls the same emulator function).
    let mut lanes: Vec<Lane> = Vec::new();
    for &envelope in envelopes {
        let mut lane = Lane {
            envelope,
            store: None,
            captures: Captures::default(),
            facts: Vec::new(),
            not_applicable: None,
            responses: Vec::new(),
            failures: Vec::new(),
        };
        match start(
            backend,
            envelope,
            &config,
            case.cell.fault,
            !case.cell.heads.is_empty(),
        ) {
            Ok((mut driver, store)) => match async {
                host_probe(&driver).await?;
                seed_heads(&driver, &case.cell).await
            }
            .await
            {
                Ok(()) => {
                    lane.store = store;
                    run_lane(case, &mut lane, &mut driver).await;
                }
                Err(e) => lane.failures.push(e),
            },
            Err(e) if e == NOT_INJECTABLE => lane.not_applicable = Some(NOT_INJECTABLE),
            Err(e) => lane.failures.push(format!("could not start: {e}")),
        }
        lanes.push(lane);
    }

    // Parity, step by step, within each group of envelopes affected by the same platform facts.
    for index in 0..case.steps.len() {
        for members in groups(&lanes, index).values() {
            let Some((&first, rest)) = members.split_first() else {
                continue;
            };
            for &other in rest {
                let (a, b) = (&lanes[first], &lanes[other]);
                if let (Some(Some(x)), Some(Some(y))) =
                    (a.responses.get(index), b.responses.get(index))
                    && let Some(diff) = difference(x, y)
                    && lanes[other]
                        .failures
                        .iter()
                        .all(|f| !f.contains("differs from"))
                {
                    let message = format!(
                        "step {}: differs from {} on {diff}",
                        index + 1,
                        a.envelope.name()
                    );
                    lanes[other].failures.push(message);
                }
            }
        }
    }

    // State parity at the end.
    for members in groups(&lanes, case.steps.len().saturating_sub(1)).values() {
        let Some((&first, rest)) = members.split_first() else {
            continue;
        };
        let Some(reference) = lanes[first].store.as_ref().map(|s| s.snapshot()) else {
            continue;
        };
        for &other in rest {
            if let Some(state) = lanes[other].store.as_ref().map(|s| s.snapshot())
                && state != reference
            {
                let message = format!(
                    "final state differs from {}'s (transactions, balances, idempotency records or outbox)",
                    lanes[first].envelope.name()
                );
                lanes[other].failures.push(message);
            }
        }
    }

    // Bus parity: what each cloud's relay would publish (EventBridge `Detail`s on AWS, Event Grid
    // batch elements on Azure) is the same documents, byte for byte.
    for members in groups(&lanes, case.steps.len().saturating_sub(1)).values() {
        let mut reference: Option<(usize, Vec<String>)> = None;
        for &member in members {
            let Some(store) = lanes[member].store.clone() else {
                continue;
            };
            let published =
                match crate::buses::published(&store, lanes[member].envelope.is_aws()).await {
                    Ok(published) => published,
                    Err(e) => {
                        lanes[member].failures.push(format!("event bus: {e}"));
                        continue;
                    }
                };
            match &reference {
                None => reference = Some((member, published)),
                Some((first, expected)) if *expected != published => {
                    let message = format!(
                        "its event bus would carry other CloudEvents than {}'s ({} vs {} documents, or different bytes)",
                        lanes[*first].envelope.name(),
                        published.len(),
                        expected.len()
                    );
                    lanes[member].failures.push(message);
                }
                Some(_) => {}
            }
        }
    }

    // Expected outbox events, read from the reference envelope's store.
    if let Some(expected) = &case.expect_outbox
        && let Some(lane) = lanes
            .iter()
            .find(|l| l.not_applicable.is_none() && l.facts.is_empty() && l.store.is_some())
        && let Some(store) = &lane.store
    {
        let events: Vec<serde_json::Value> = store.snapshot()["outbox"]
            .as_array()
            .map(|a| a.iter().map(|e| e["event"].clone()).collect())
            .unwrap_or_default();
        let mut captures = lane.captures.clone();
        if let Err(m) = match_json(
            expected,
            &serde_json::Value::Array(events),
            &mut captures,
            "/outbox",
        ) {
            report.failures.push(format!(
                "{}: outbox {}: {}",
                lane.envelope.name(),
                m.at,
                m.message
            ));
        }
    }

    let mut facts: BTreeMap<Fact, Vec<Envelope>> = BTreeMap::new();
    for lane in &lanes {
        for fact in lane.facts.last().into_iter().flatten() {
            facts.entry(*fact).or_default().push(lane.envelope);
        }
        let outcome = match (lane.not_applicable, lane.failures.is_empty()) {
            (Some(reason), _) => Outcome::NotApplicable(reason),
            (None, true) => Outcome::Pass,
            (None, false) => Outcome::Fail,
        };
        for failure in &lane.failures {
            report
                .failures
                .push(format!("{}: {failure}", lane.envelope.name()));
        }
        report.outcomes.insert(lane.envelope, outcome);
    }
    report.facts = facts.into_iter().collect();
    report
}

fn groups(lanes: &[Lane], step: usize) -> BTreeMap<Vec<Fact>, Vec<usize>> {
    let mut groups: BTreeMap<Vec<Fact>, Vec<usize>> = BTreeMap::new();
    for (i, lane) in lanes
        .iter()
        .enumerate()
        .filter(|(_, l)| l.not_applicable.is_none())
    {
        let facts = lane
            .facts
            .get(step)
            .or(lane.facts.last())
            .map(|f| f.iter().copied().collect())
            .unwrap_or_default();
        groups.entry(facts).or_default().push(i);
    }
    groups
}

/// Runs every step of a case through one lane's driver.
async fn run_lane(case: &Case, lane: &mut Lane, driver: &mut Driver) {
    let mut facts = BTreeSet::new();
    for (index, step) in case.steps.iter().enumerate() {
        let n = index + 1;
        // Single-cell cases have only requests (`Case::parse` checks it).
        let Some(spec) = &step.request else {
            continue;
        };
        let request = ClientRequest::from_spec(spec, &lane.captures);
        if let Some(reason) = lane.envelope.not_applicable(&request) {
            lane.not_applicable = Some(reason);
            return;
        }
        facts.extend(Fact::for_request(lane.envelope, &request));
        lane.facts.push(facts.clone());
        match driver.exchange(lane.envelope, &request, n).await {
            Exchange::Response(response) => {
                if let Some(expect) = &step.expect
                    && let Err(e) = check(expect, &response, &mut lane.captures)
                    && facts.is_empty()
                {
                    lane.failures.push(format!("step {n}: {e}"));
                }
                if let Some(difference) = driver.seam_difference(lane.envelope, &request, &response)
                    && Fact::for_request(lane.envelope, &request).is_empty()
                {
                    lane.failures
                        .push(format!("step {n}: at the seam, {difference}"));
                }
                lane.responses.push(Some(response));
            }
            Exchange::NotApplicable(reason) => {
                lane.not_applicable = Some(reason);
                return;
            }
            Exchange::Failed(e) => {
                lane.failures.push(format!("step {n}: {e}"));
                lane.responses.push(None);
            }
        }
    }
}

/// The first difference between two responses, described.
pub fn difference(a: &ClientResponse, b: &ClientResponse) -> Option<String> {
    if a.status != b.status {
        return Some(format!("status: {} vs {}", a.status, b.status));
    }
    if a.headers != b.headers {
        let names: BTreeSet<&str> = a
            .headers
            .iter()
            .chain(&b.headers)
            .map(|(n, _)| n.as_str())
            .collect();
        for name in names {
            let (x, y) = (a.header_values(name), b.header_values(name));
            if x != y {
                return Some(format!("header {name}: {x:?} vs {y:?}"));
            }
        }
    }
    if a.body != b.body {
        let show = |body: &[u8]| {
            let text = String::from_utf8_lossy(body);
            if text.chars().count() > 300 {
                format!("{}…", text.chars().take(300).collect::<String>())
            } else {
                text.into_owned()
            }
        };
        return Some(format!("body: {:?} vs {:?}", show(&a.body), show(&b.body)));
    }
    None
}

/// Checks a response against a step's expectations, capturing `${name}` values.
pub fn check(
    expect: &Expect,
    response: &ClientResponse,
    captures: &mut Captures,
) -> Result<(), String> {
    if let Some(status) = expect.status
        && status != response.status
    {
        return Err(format!(
            "expected status {status}, got {} ({})",
            response.status,
            String::from_utf8_lossy(&response.body)
        ));
    }
    for (name, expected) in &expect.headers {
        let values = response.header_values(name);
        match expected {
            serde_json::Value::Null if values.is_empty() => {}
            serde_json::Value::Null => {
                return Err(format!("header {name} should be absent, got {values:?}"));
            }
            serde_json::Value::String(template) => match values.as_slice() {
                [value] => match_template(template, value, captures)
                    .map_err(|e| format!("header {name}: {e}"))?,
                other => {
                    return Err(format!(
                        "header {name}: expected one value matching {template:?}, got {other:?}"
                    ));
                }
            },
            other => {
                return Err(format!(
                    "header {name}: expectations must be strings or null, not {other}"
                ));
            }
        }
    }
    if let Some(body) = &expect.body {
        if body.as_str() == Some("") {
            if !response.body.is_empty() {
                return Err(format!(
                    "expected an empty body, got {:?}",
                    String::from_utf8_lossy(&response.body)
                ));
            }
        } else {
            let actual: serde_json::Value =
                serde_json::from_slice(&response.body).map_err(|e| {
                    format!(
                        "body is not JSON ({e}): {:?}",
                        String::from_utf8_lossy(&response.body)
                    )
                })?;
            match_json(body, &actual, captures, "").map_err(|m| {
                format!(
                    "body {}: {}",
                    if m.at.is_empty() { "/" } else { &m.at },
                    m.message
                )
            })?;
        }
    }
    Ok(())
}

/// Runs cases one after another (each envelope gets its own fresh cell per case).
pub async fn run_cases(
    cases: &[Case],
    envelopes: &[Envelope],
    backend: &Backend,
) -> Vec<CaseReport> {
    let mut reports = Vec::with_capacity(cases.len());
    let progress = crate::progress::Progress::new(cases.len() as u64, "cases");
    for case in cases {
        progress.note(format!("· {} on {} envelopes", case.id, envelopes.len()));
        let report = run_case(case, envelopes, backend).await;
        progress.step(!report.passed());
        reports.push(report);
    }
    progress.finish();
    reports
}
