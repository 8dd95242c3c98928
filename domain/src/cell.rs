//! The cell: the one entry point both adapters call. It routes a request, resolves its tenant, and
//! hands a parsed command to a use case ([`crate::ledger`]); [`crate::contract::seam`] turns the
//! result into the response.

use crate::config::CellConfig;
use crate::contract::seam;
use crate::contract::tenant::requested_tenant;
use crate::http::router::{self, Route};
use crate::http::{ApiRequest, ApiResponse, Problem, ProblemType, require_media_type};
use crate::ledger::{create, read};
use crate::observability::store_requests::CountedStore;
use crate::observability::trace::TraceContext;
use crate::ports::{Clock, IdGenerator, TransactionStore};
use crate::replication::signature::{self, ReplayGuard};
use crate::replication::{apply, batch};
use crate::tenancy::TenantId;
use std::sync::Arc;

pub use crate::ledger::create::MAX_BALANCE_ATTEMPTS;

/// The ports a cell runs on.
#[derive(Clone)]
pub struct CellPorts {
    /// Where state lives.
    pub store: Arc<dyn TransactionStore>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Ids.
    pub ids: Arc<dyn IdGenerator>,
}

/// A cell: configuration plus ports. Cheap to clone and share across requests.
///
/// ```
/// use paracell_domain::{Cell, CellConfig, TenantScope, http::ApiRequest, testing::block_on};
/// let cell = Cell::in_memory(CellConfig::new("cell-a", TenantScope::All).unwrap());
/// let response = block_on(cell.handle(ApiRequest::new("GET", "/health")));
/// assert_eq!(response.status, 200);
/// assert_eq!(response.body, br#"{"status":"ok","cell":"cell-a"}"#);
/// ```
#[derive(Clone)]
pub struct Cell {
    config: Arc<CellConfig>,
    ports: CellPorts,
    replays: Arc<ReplayGuard>,
    ownership: Option<Arc<crate::placement::lease::Ownership>>,
    lease_gate: Option<Arc<crate::placement::quorum::LeaseGate>>,
    retry_pause: Option<Arc<dyn crate::ports::Sleep>>,
}

impl Cell {
    /// A cell on the given ports.
    pub fn new(config: CellConfig, ports: CellPorts) -> Self {
        Self {
            config: Arc::new(config),
            ports,
            replays: Arc::new(ReplayGuard::default()),
            ownership: None,
            lease_gate: None,
            retry_pause: None,
        }
    }

    /// Puts the cell under primary leases: it books for a registered tenant only while its lease,
    /// confirmed from `ownership.source`, holds ([`crate::placement::lease`]).
    #[must_use]
    pub fn with_ownership(mut self, ownership: crate::placement::lease::Ownership) -> Self {
        self.ownership = Some(Arc::new(ownership));
        self
    }

    /// Puts the cell under its cell lease from the placement quorum: it books only while the lease
    /// holds and the tenant's placement is confirmed in the lease's tenure, and acknowledges only
    /// commits that returned before the lease's deadline ([`crate::placement::quorum::LeaseGate`]).
    #[must_use]
    pub fn with_lease_gate(mut self, gate: Arc<crate::placement::quorum::LeaseGate>) -> Self {
        self.lease_gate = Some(gate);
        self
    }

    /// Waits with `sleep` between the attempts of a create that lost a race (a random pause that
    /// grows with the attempts, see [`create::create`]), so writers of one tenant that keep
    /// colliding spread out instead of queueing behind the winners. Hosts with a timer set it;
    /// without it, attempts follow each other at once (deterministic tests, the conformance suite).
    #[must_use]
    pub fn with_retry_pause(mut self, sleep: Arc<dyn crate::ports::Sleep>) -> Self {
        self.retry_pause = Some(sleep);
        self
    }

    /// A cell on an in-memory store, the system clock and UUIDv7 ids.
    #[cfg(feature = "memory")]
    pub fn in_memory(config: CellConfig) -> Self {
        Self::new(
            config,
            CellPorts {
                store: Arc::new(crate::memory::MemoryStore::new()),
                clock: Arc::new(crate::ports::SystemClock),
                ids: Arc::new(crate::ports::UuidV7),
            },
        )
    }

    /// The configuration.
    pub fn config(&self) -> &CellConfig {
        &self.config
    }

    /// The ports.
    pub fn ports(&self) -> &CellPorts {
        &self.ports
    }

    /// Where the cell checks placements (its lease source), when it runs under leases.
    pub(crate) fn placement_source(&self) -> Option<&crate::placement::lease::PlacementSource> {
        self.ownership.as_deref().map(|o| &o.source)
    }

    /// Answers one request. Every outcome, errors included, is a response.
    pub async fn handle(&self, request: ApiRequest) -> ApiResponse {
        let trace = TraceContext::for_request(&request.headers);
        let mut response = self.route(&request, &trace).await;
        if request.method == "HEAD" {
            // A HEAD answer never has content (RFC 9110 §9.3.2), whatever its status; platforms strip
            // it anyway, so the cell must not depend on them.
            response.body.clear();
        }
        response.telemetry.method = Some(request.method);
        response.telemetry.trace = Some(trace);
        response
    }

    async fn route(&self, request: &ApiRequest, trace: &TraceContext) -> ApiResponse {
        // HEAD bodies are removed in `handle`, for every outcome.
        match router::dispatchable(request) {
            router::Dispatch::Route(route) => {
                let template = route.endpoint().template;
                with_route(self.dispatch(route, request, trace).await, template)
            }
            router::Dispatch::Answered(answered) => answered,
        }
    }

    /// The `413 payload-too-large` answer. Adapters use it only when a platform envelope is too large
    /// to even parse (it can then only carry a body over the limit); the size is not repeated because
    /// adapters stop reading a streamed body one byte past the limit.
    pub fn oversized_request(&self) -> ApiResponse {
        let limit = self.config.limits.max_body_bytes;
        Problem::new(ProblemType::PayloadTooLarge)
            .detail(format!(
                "The request body is larger than this cell accepts (at most {limit} bytes)."
            ))
            .into_response()
    }

    async fn dispatch(
        &self,
        route: Route,
        request: &ApiRequest,
        trace: &TraceContext,
    ) -> ApiResponse {
        if request.body.len() > self.config.limits.max_body_bytes {
            return self.oversized_request();
        }
        // /health needs no tenant (load balancers and Traffic Manager probe it); every other route does.
        if matches!(route, Route::Health) {
            return seam::health(&self.config.cell_id);
        }
        // Every store operation of this request is counted (the `store_requests` metric).
        let store = Arc::new(CountedStore::new(self.ports.store.clone()));
        let ports = CellPorts {
            store: store.clone(),
            ..self.ports.clone()
        };
        let mut response = match route {
            Route::Health => seam::health(&self.config.cell_id),
            Route::ReplicationEntries => self.replication_entries(request, store.as_ref()).await,
            Route::Tenant(route) => self.tenant_route(route, request, trace, &ports).await,
        };
        response.telemetry.store_requests = Some(store.calls());
        response
    }

    async fn tenant_route(
        &self,
        route: router::TenantRoute,
        request: &ApiRequest,
        trace: &TraceContext,
        ports: &CellPorts,
    ) -> ApiResponse {
        let tenant = match self.served_tenant(request) {
            Ok(tenant) => tenant,
            Err(problem) => return problem.into_response(),
        };
        let mut response = match route {
            router::TenantRoute::CreateTransaction => {
                match seam::create_command(tenant.clone(), request, trace) {
                    Ok(command) => {
                        let outcome = create::create(
                            &self.config,
                            ports,
                            self.ownership.as_deref(),
                            self.lease_gate.as_deref(),
                            self.retry_pause.as_deref(),
                            command,
                        )
                        .await;
                        seam::created(&self.config.cell_id, outcome)
                    }
                    Err(problem) => problem.into_response(),
                }
            }
            router::TenantRoute::GetTransaction(id) => {
                seam::transaction(read::transaction(ports, &tenant, id).await)
            }
            router::TenantRoute::GetBalances(account) => {
                seam::balances(&account, read::balances(ports, &tenant, &account).await)
            }
        };
        response.telemetry.tenant = Some(tenant.to_string());
        response
    }

    /// A delivery from a peer cell: authenticated first (nothing unauthenticated is parsed), then
    /// its entries received and applied.
    async fn replication_entries(
        &self,
        request: &ApiRequest,
        store: &dyn TransactionStore,
    ) -> ApiResponse {
        let now_secs = self.ports.clock.now().unix_millis().div_euclid(1000);
        let secrets = &self.config.replication.secrets;
        let verified = signature::verify(secrets, &request.headers, &request.body, now_secs)
            .and_then(|(peer, headers)| {
                self.replays.admit(peer, &headers, now_secs)?;
                Ok(peer.clone())
            });
        let sender = match verified {
            Ok(sender) => sender,
            Err(e) => return seam::replication_unauthorized(&e),
        };
        let content_type = request.headers.get("content-type");
        if require_media_type(
            content_type.as_deref(),
            "application/cloudevents-batch+json",
        )
        .is_err()
        {
            return Problem::new(ProblemType::UnsupportedMediaType)
                .detail("Content-Type must be application/cloudevents-batch+json (charset utf-8, if given).")
                .into_response();
        }
        let incoming = match batch::parse(&request.body) {
            Ok(incoming) => incoming,
            Err(unreadable) => {
                // The detail as it always read (clients and peers may log it).
                return Problem::new(ProblemType::MalformedRequest)
                    .detail(unreadable.detail)
                    .into_response();
            }
        };
        let placement = self.placement_source();
        match apply::receive(&self.config, store, &sender, placement, incoming).await {
            Ok(results) => seam::replication_results(&results),
            Err(e) => seam::store_failure(&e),
        }
    }

    /// The request's tenant, if this cell serves it.
    fn served_tenant(&self, request: &ApiRequest) -> Result<TenantId, Problem> {
        let tenant = requested_tenant(request)?;
        if !self.config.tenants.serves(&tenant) {
            return Err(Problem::new(ProblemType::TenantNotInCell)
                .detail(format!(
                    "Cell {} does not serve this tenant; route the request to the tenant's cell.",
                    self.config.cell_id
                ))
                .cell(self.config.cell_id.as_str()));
        }
        Ok(tenant)
    }
}

fn with_route(mut response: ApiResponse, route: &'static str) -> ApiResponse {
    response.telemetry.route = route;
    response
}
