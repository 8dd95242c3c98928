//! The edge router: the thinnest layer in front of the cells. It reads a request's tenant with the
//! cells' own rules, looks the tenant's cell up in the placement registry, forwards the request
//! there and passes the cell's answer back untouched. It holds no business rule: the cell decides
//! everything about a transaction, the router only where it goes.
//!
//! | module | holds |
//! |---|---|
//! | [`routes`] | [`Route`], the [`RouteSource`] port, the registry file format, routes from the placement registry |
//! | [`cache`] | fresh for a while, last known forever while the registry is down, epochs never lowered |
//! | [`health`] | outlier ejection and active probes, which only turn a dead cell into a fast 503 |
//! | [`forward`] | what changes on the way through: hop-by-hop fields, `Via`, the routing epoch, diagnostics |
//!
//! The order of checks is the cell's, so a request the router answers itself gets the cell's bytes:
//! route and method (`404`, `405`, `OPTIONS`), body size (`413`), then the tenant (`400
//! missing-tenant` / `invalid-tenant`). `GET /health` without a tenant is the router's own health;
//! with one, it is forwarded to the tenant's cell. Replication deliveries go cell to cell, never
//! through the router.
//!
//! Retries are made only where they are safe and only within the request's deadline:
//!
//! | what happened | retried? |
//! |---|---|
//! | no connection (nothing was sent) | once, same cell |
//! | exchange broken after sending, or a platform gateway error (502–504 without a problem document) | once, same cell, only a `GET`/`HEAD`/`OPTIONS` or a request with an `Idempotency-Key` (the cell deduplicates it) |
//! | `421` from the cell (it is not the tenant's primary) | the route is refreshed from the registry; once, at the new route, if the cell or epoch changed |
//! | no answer within the deadline | never: `504 cell-timeout` (the client retries with the same key) |
//! | anything else the cell answered | never: passed through |
//!
//! A request is never sent to a *different* cell after it may have reached one: replication is
//! asynchronous, so another cell may not know the idempotency key yet.
//!
//! ```
//! use paracell_domain::edge::{Edge, EdgeConfig, EdgePorts, routes::RouteTable};
//! use paracell_domain::http::ApiRequest;
//! use paracell_domain::testing::block_on;
//! use std::sync::Arc;
//!
//! # struct NoCells;
//! # #[async_trait::async_trait]
//! # impl paracell_domain::ports::HttpClient for NoCells {
//! #     async fn send(&self, _: paracell_domain::ports::OutboundRequest)
//! #         -> Result<paracell_domain::ports::OutboundResponse, paracell_domain::ports::TransportError> {
//! #         Err(paracell_domain::ports::TransportError::Connect("refused".into()))
//! #     }
//! # }
//! let table = RouteTable::parse(br#"{"tenants": {"coop-1": {"cell": "cell-a", "cloud": "aws",
//!     "url": "http://127.0.0.1:9", "epoch": 1}}}"#).unwrap();
//! let edge = Edge::new(EdgeConfig::new("edge-1").unwrap(), EdgePorts::new(Arc::new(table), Arc::new(NoCells)));
//! let unknown = block_on(edge.handle(ApiRequest::new("GET", "/v1/accounts/ACC-1/balances").with_header("X-Tenant-ID", "coop-2")));
//! assert_eq!(unknown.status, 404);
//! let down = block_on(edge.handle(ApiRequest::new("GET", "/v1/accounts/ACC-1/balances").with_header("X-Tenant-ID", "coop-1")));
//! assert_eq!(down.status, 502);
//! ```

pub mod cache;
pub mod forward;
pub mod health;
pub mod routes;

use crate::CellId;
use crate::contract::json;
use crate::contract::tenant::requested_tenant;
use crate::http::router::{self, Route as HttpRoute};
use crate::http::{ApiRequest, ApiResponse, HttpService, Problem, ProblemType};
use crate::observability::trace::TraceContext;
use crate::ports::{Clock, HttpClient, OutboundRequest, Sleep, SystemClock, TransportError};
use crate::tenancy::TenantId;
use crate::time::Timestamp;
use cache::{CachePolicy, Lookup, RouteCache};
use health::{CellHealth, OutlierPolicy};
use routes::{Route, RouteSource};
use std::sync::Arc;
use std::time::Duration;

/// How the router behaves. Every field has a production default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeConfig {
    /// The router's name, in its `/health` answer and its `Via` entry (a token, like a cell id).
    pub edge_id: CellId,
    /// Each request's whole budget, retries included (default 5 s).
    pub deadline: Duration,
    /// Whether the cell's answer carries `X-Paracell-Cell` and `X-Paracell-Cloud`, and the router's
    /// own failures a `cell_id` (default on; they expose topology).
    pub diagnostics: bool,
    /// The largest body forwarded: the fleet's cell limit (`PARACELL_MAX_BODY_BYTES`, the cells'
    /// variable and default), so a body over it gets the cell's own `413` before the tenant is
    /// read, exactly as a cell orders its checks.
    pub max_body_bytes: usize,
    /// Route freshness.
    pub cache: CachePolicy,
    /// Cell ejection.
    pub outliers: OutlierPolicy,
    /// Each active probe's timeout (default 2 s).
    pub probe_timeout: Duration,
}

impl EdgeConfig {
    /// The defaults, with this router's name.
    pub fn new(edge_id: &str) -> Result<Self, crate::tenancy::IdentifierError> {
        Ok(Self {
            edge_id: CellId::parse(edge_id)?,
            deadline: Duration::from_secs(5),
            diagnostics: true,
            max_body_bytes: crate::Limits::DEFAULT_MAX_BODY_BYTES,
            cache: CachePolicy::default(),
            outliers: OutlierPolicy::default(),
            probe_timeout: Duration::from_secs(2),
        })
    }

    /// From the environment:
    ///
    /// | variable | meaning | default |
    /// |---|---|---|
    /// | `PARACELL_EDGE_ID` | the router's name | `edge` |
    /// | `PARACELL_EDGE_DEADLINE_MS` | each request's budget, retries included | 5000 |
    /// | `PARACELL_EDGE_DIAGNOSTICS` | `0` hides `X-Paracell-Cell`/`-Cloud` and `cell_id` | `1` |
    /// | `PARACELL_EDGE_FRESH_SECS` | how long a route is used without asking the registry | 30 |
    /// | `PARACELL_MAX_BODY_BYTES` | the fleet's body limit, as the cells read it | 262144 |
    ///
    /// ```
    /// use paracell_domain::edge::EdgeConfig;
    /// let config = EdgeConfig::from_lookup(|n| (n == "PARACELL_EDGE_DEADLINE_MS").then(|| "800".into())).unwrap();
    /// assert_eq!(config.deadline.as_millis(), 800);
    /// assert!(EdgeConfig::from_lookup(|n| (n == "PARACELL_EDGE_DIAGNOSTICS").then(|| "maybe".into())).is_err());
    /// ```
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, crate::ConfigError> {
        let edge_id = lookup("PARACELL_EDGE_ID").unwrap_or_else(|| "edge".into());
        let mut config = Self::new(&edge_id).map_err(|e| crate::ConfigError::Invalid {
            name: "PARACELL_EDGE_ID",
            value: edge_id.clone(),
            expected: format!("a valid id ({e})"),
        })?;
        let number =
            |name: &'static str, min: u64, max: u64| -> Result<Option<u64>, crate::ConfigError> {
                lookup(name)
                    .map(|raw| {
                        raw.parse::<u64>()
                            .ok()
                            .filter(|n| (min..=max).contains(n))
                            .ok_or_else(|| crate::ConfigError::Invalid {
                                name,
                                expected: format!("an integer from {min} to {max}"),
                                value: raw,
                            })
                    })
                    .transpose()
            };
        if let Some(ms) = number("PARACELL_EDGE_DEADLINE_MS", 1, 900_000)? {
            config.deadline = Duration::from_millis(ms);
        }
        let ceiling = crate::Limits::MAX_BODY_BYTES_CEILING as u64;
        if let Some(bytes) = number("PARACELL_MAX_BODY_BYTES", 1, ceiling)? {
            config.max_body_bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
        }
        if let Some(secs) = number("PARACELL_EDGE_FRESH_SECS", 0, 86_400)? {
            config.cache.fresh_for = Duration::from_secs(secs);
        }
        match lookup("PARACELL_EDGE_DIAGNOSTICS").as_deref() {
            None | Some("1") => {}
            Some("0") => config.diagnostics = false,
            Some(other) => {
                return Err(crate::ConfigError::Invalid {
                    name: "PARACELL_EDGE_DIAGNOSTICS",
                    value: other.to_owned(),
                    expected: "0 or 1".into(),
                });
            }
        }
        Ok(config)
    }
}

/// The ports the router runs on: where routes come from, how it reaches cells, time.
#[derive(Clone)]
pub struct EdgePorts {
    /// The placement registry (a file, DynamoDB, the Cosmos DB replica).
    pub routes: Arc<dyn RouteSource>,
    /// How requests reach cells.
    pub upstream: Arc<dyn HttpClient>,
    /// Time (deadlines, cache freshness, ejections).
    pub clock: Arc<dyn Clock>,
    /// Back-off before a retry.
    pub sleep: Arc<dyn Sleep>,
}

impl EdgePorts {
    /// The system clock and no back-off wait (a host with a timer passes its own [`Sleep`]).
    pub fn new(routes: Arc<dyn RouteSource>, upstream: Arc<dyn HttpClient>) -> Self {
        Self {
            routes,
            upstream,
            clock: Arc::new(SystemClock),
            sleep: Arc::new(NoSleep),
        }
    }
}

struct NoSleep;

#[async_trait::async_trait]
impl Sleep for NoSleep {
    async fn sleep(&self, _: Duration) {}
}

/// The edge router. Cheap to clone and share across requests.
#[derive(Clone)]
pub struct Edge {
    config: Arc<EdgeConfig>,
    ports: EdgePorts,
    cache: Arc<RouteCache>,
    health: Arc<CellHealth>,
}

/// Why a forward ended without an answer from the cell.
enum Failure {
    Unreachable(String),
    Timeout,
}

impl Edge {
    /// A router on these ports.
    pub fn new(config: EdgeConfig, ports: EdgePorts) -> Self {
        Self {
            cache: Arc::new(RouteCache::new(config.cache)),
            health: Arc::new(CellHealth::new(config.outliers)),
            config: Arc::new(config),
            ports,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EdgeConfig {
        &self.config
    }

    /// Answers one request: the cell's answer, or the router's own. Every outcome is a response.
    pub async fn handle(&self, request: ApiRequest) -> ApiResponse {
        let head = request.method == "HEAD";
        let method = request.method.clone();
        let trace = TraceContext::for_request(&request.headers);
        let mut response = self.route(request, &trace).await;
        if head {
            response.body.clear();
        }
        response.telemetry.method = Some(method);
        response.telemetry.trace = Some(trace);
        response
    }

    async fn route(&self, mut request: ApiRequest, trace: &TraceContext) -> ApiResponse {
        let route = match router::dispatchable(&request) {
            router::Dispatch::Route(route) => route,
            router::Dispatch::Answered(answered) => return answered,
        };
        let template = route.endpoint().template;
        if request.body.len() > self.config.max_body_bytes {
            return self.oversized_request();
        }
        request.headers = forward::end_to_end(&request.headers);
        let has_tenant =
            request.authenticated_tenant.is_some() || request.headers.get("x-tenant-id").is_some();
        match route {
            HttpRoute::Health if !has_tenant => return self.own_health(),
            HttpRoute::ReplicationEntries => {
                return Problem::new(ProblemType::NotFound)
                    .detail(
                        "Replication deliveries go from cell to cell, not through the edge router.",
                    )
                    .into_response();
            }
            _ => {}
        }
        let tenant = match requested_tenant(&request) {
            Ok(tenant) => tenant,
            Err(problem) => return problem.into_response(),
        };
        if forward::is_loop(&request.headers, self.config.edge_id.as_str()) {
            return self.failure(
                ProblemType::CellUnreachable,
                Some("The request already passed through this router: forwarding it again would loop."),
                None,
            )
            .with_cause("a forwarding loop: Via already names this router");
        }
        let started = self.ports.clock.now();
        let mut response = match self
            .cache
            .lookup(self.ports.routes.as_ref(), &tenant, started)
            .await
        {
            Lookup::Route { route, .. } => {
                self.forward(&request, &tenant, route, started, trace)
                    .await
            }
            Lookup::Absent => Problem::new(ProblemType::TenantNotAllocated).into_response(),
            Lookup::Unavailable(cause) => self.failure(
                ProblemType::CellUnavailable,
                Some("The placement registry cannot be read and this router has not routed the tenant before; retry after the indicated delay."),
                None,
            )
            .with_header("retry-after", "1")
            .with_cause(format!("placement registry: {cause}")),
        };
        response.telemetry.route = template;
        response.telemetry.tenant = Some(tenant.to_string());
        response
    }

    async fn forward(
        &self,
        request: &ApiRequest,
        tenant: &TenantId,
        mut route: Route,
        started: Timestamp,
        trace: &TraceContext,
    ) -> ApiResponse {
        let deadline = started.plus_millis(millis(self.config.deadline));
        // Safe to send twice: reads, and writes the cell deduplicates by key.
        let repeatable = matches!(request.method.as_str(), "GET" | "HEAD" | "OPTIONS")
            || request.headers.get("idempotency-key").is_some();
        let mut retried = false;
        let mut refreshed = false;
        loop {
            let now = self.ports.clock.now();
            if let Err(wait) = self.health.admits(route.cell.as_str(), now) {
                // Taken out of rotation: the registry may name a successor by now (asked once).
                if !refreshed {
                    refreshed = true;
                    if let Some(newer) = self.successor(tenant, &route).await {
                        route = newer;
                        continue;
                    }
                }
                return self
                    .failure(
                        ProblemType::CellUnavailable,
                        Some("The tenant's cell is failing and was taken out of rotation for a while; retry after the indicated delay."),
                        Some(&route),
                    )
                    .with_header("retry-after", wait.to_string())
                    .with_cause(format!(
                        "cell {} is ejected after consecutive transport failures or failed probes",
                        route.cell
                    ));
            }
            let remaining = deadline.unix_millis() - now.unix_millis();
            if remaining <= 0 {
                return self.timeout(&route);
            }
            let timeout = Duration::from_millis(u64::try_from(remaining).unwrap_or(0));
            let outbound: OutboundRequest = forward::to_cell(
                request,
                &route,
                self.config.edge_id.as_str(),
                timeout,
                trace,
            );
            let failure = match self.ports.upstream.send(outbound).await {
                Ok(answer) if forward::is_gateway_error(&answer) => {
                    self.health.transport_failure(route.cell.as_str(), now);
                    if repeatable && !retried && self.back_off(deadline).await {
                        retried = true;
                        continue;
                    }
                    let status = answer.status;
                    return forward::from_cell(answer, &route, self.config.diagnostics)
                        .with_cause(format!(
                            "cell {}: the platform in front of it answered {status} (a gateway error, not the cell's)",
                            route.cell
                        ));
                }
                Ok(answer) => {
                    self.health.success(route.cell.as_str());
                    if answer.status == 421 && !refreshed {
                        refreshed = true;
                        if let Some(newer) = self.successor(tenant, &route).await {
                            route = newer;
                            continue;
                        }
                    }
                    let status = answer.status;
                    let response = forward::from_cell(answer, &route, self.config.diagnostics);
                    return if status >= 500 {
                        // The cell's own failure: its logs hold the cause; this says where to look.
                        response.with_cause(format!("cell {} answered {status}", route.cell))
                    } else {
                        response
                    };
                }
                Err(TransportError::Connect(e)) => {
                    self.health.transport_failure(route.cell.as_str(), now);
                    // Nothing was sent: any request may go again.
                    if !retried {
                        retried = true;
                        continue;
                    }
                    Failure::Unreachable(e)
                }
                Err(TransportError::Broken(e)) => {
                    self.health.transport_failure(route.cell.as_str(), now);
                    if repeatable && !retried && self.back_off(deadline).await {
                        retried = true;
                        continue;
                    }
                    Failure::Unreachable(e)
                }
                Err(TransportError::Timeout) => {
                    self.health.transport_failure(route.cell.as_str(), now);
                    Failure::Timeout
                }
            };
            // The cell is out of reach: after a failover the registry names its successor, which no
            // 421 will ever announce. Asked once per request, like after a 421; nothing new → the
            // failure stands.
            if !refreshed {
                refreshed = true;
                // On a timeout no time is left to try the successor, but the next request will: a
                // cell that swallows requests (a black-holed link) never answers 421 either.
                let newer = self.successor(tenant, &route).await;
                if let (Some(newer), Failure::Unreachable(_)) = (newer, &failure) {
                    route = newer;
                    retried = false;
                    continue;
                }
            }
            return match failure {
                Failure::Unreachable(cause) => {
                    let mut response =
                        self.failure(ProblemType::CellUnreachable, None, Some(&route));
                    response.telemetry.cause = Some(format!("cell {}: {cause}", route.cell));
                    response
                }
                Failure::Timeout => self.timeout(&route),
            };
        }
    }

    /// Asks the registry for the tenant's route again (the cache keeps the answer): the route, if
    /// it names another cell or a newer epoch than `route`.
    async fn successor(&self, tenant: &TenantId, route: &Route) -> Option<Route> {
        let now = self.ports.clock.now();
        match self
            .cache
            .refresh(self.ports.routes.as_ref(), tenant, now)
            .await
        {
            Lookup::Route { route: newer, .. }
                if newer.cell != route.cell || newer.epoch > route.epoch =>
            {
                Some(newer)
            }
            _ => None,
        }
    }

    /// Waits 25–250 ms before a retry after an ambiguous failure, if the deadline leaves room for
    /// the wait and an attempt; `false` when it does not.
    async fn back_off(&self, deadline: Timestamp) -> bool {
        let now = self.ports.clock.now();
        // Jitter from the clock: enough to spread retries, no random source needed.
        let wait = 25 + now.unix_millis().rem_euclid(226);
        if deadline.unix_millis() - now.unix_millis() <= wait * 2 {
            return false;
        }
        self.ports
            .sleep
            .sleep(Duration::from_millis(u64::try_from(wait).unwrap_or(25)))
            .await;
        true
    }

    fn timeout(&self, route: &Route) -> ApiResponse {
        self.failure(ProblemType::CellTimeout, None, Some(route))
            .with_cause(format!(
                "cell {}: no answer within the {} ms deadline",
                route.cell,
                self.config.deadline.as_millis()
            ))
    }

    fn failure(
        &self,
        kind: ProblemType,
        detail: Option<&str>,
        route: Option<&Route>,
    ) -> ApiResponse {
        let mut problem = Problem::new(kind);
        if let Some(detail) = detail {
            problem = problem.detail(detail);
        }
        if let (Some(route), true) = (route, self.config.diagnostics) {
            problem = problem.cell(route.cell.as_str());
        }
        problem.into_response()
    }

    fn own_health(&self) -> ApiResponse {
        let mut body = String::with_capacity(40);
        body.push_str(r#"{"status":"ok","edge":"#);
        json::push_str(&mut body, self.config.edge_id.as_str());
        body.push('}');
        ApiResponse::json(200, body.into_bytes())
    }

    /// The `413 payload-too-large` answer for a body over [`EdgeConfig::max_body_bytes`].
    pub fn oversized_request(&self) -> ApiResponse {
        Problem::new(ProblemType::PayloadTooLarge)
            .detail(format!(
                "The request body is larger than this cell accepts (at most {} bytes).",
                self.config.max_body_bytes
            ))
            .into_response()
    }

    /// Probes `/health` of every cell the router has routed to, once, and records the results;
    /// long-lived hosts call it every few seconds. Returns each cell with whether it answered 200.
    pub async fn probe(&self) -> Vec<(CellId, bool)> {
        let mut results = Vec::new();
        for route in self.cache.routes() {
            let probe = OutboundRequest {
                method: "GET".into(),
                url: format!("{}/health", route.url.as_str()),
                headers: vec![("via".into(), forward::via(self.config.edge_id.as_str()))],
                body: Vec::new(),
                timeout: self.config.probe_timeout,
            };
            let healthy = matches!(self.ports.upstream.send(probe).await, Ok(r) if r.status == 200);
            self.health.probed(route.cell.as_str(), healthy);
            results.push((route.cell, healthy));
        }
        results
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait::async_trait]
impl HttpService for Edge {
    async fn handle(&self, request: ApiRequest) -> ApiResponse {
        Edge::handle(self, request).await
    }

    fn max_body_bytes(&self) -> usize {
        self.config.max_body_bytes
    }

    fn oversized_request(&self) -> ApiResponse {
        Edge::oversized_request(self)
    }

    fn name(&self) -> &str {
        self.config.edge_id.as_str()
    }
}
