//! The edge router under test: the transparency lane (the whole corpus through the router, every
//! envelope's cell behind it, compared byte for byte with the same envelope without it) and the
//! routing vectors (`conformance/edge/vectors.json`: tenant, registry, cell behaviour → the answer
//! and the attempts), run through every host the router has.

use crate::envelopes::{Envelope, Exchange, aws, azure};
use crate::facts::Fact;
use crate::request::{ClientRequest, ClientResponse};
use crate::runner::{Driver, difference};
use paracell_aws::LambdaHttp;
use paracell_azure::{AzureConfig, AzureHandler, Mode, RoutePrefix};
use paracell_domain::edge::forward::{CELL_HEADER, CLOUD_HEADER};
use paracell_domain::edge::routes::{BaseUrl, Cloud, Route, RouteSource};
use paracell_domain::edge::{Edge, EdgeConfig, EdgePorts};
use paracell_domain::http::{ApiResponse, HttpService};
use paracell_domain::ports::{
    HttpClient, OutboundRequest, OutboundResponse, StoreError, TransactionStore, TransportError,
};
use paracell_domain::{CellId, TenantId};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// Where the lane's cells pretend to listen; never dialled (the upstream is in process).
const CELL_URL: &str = "http://cell.invalid/base";

/// The router's own name in the lanes and vectors.
pub const EDGE_ID: &str = "edge-1";

/// Routes every tenant to the lane's one cell, at the epoch the cell itself holds for it (1 for a
/// tenant it has no head for): the registry agrees with the cell, as after a completed move.
struct CellRoutes {
    cell: CellId,
    cloud: Cloud,
    store: Arc<dyn TransactionStore>,
}

#[async_trait::async_trait]
impl RouteSource for CellRoutes {
    async fn route(&self, tenant: &TenantId) -> Result<Option<Route>, StoreError> {
        let epoch = self.store.head(tenant).await?.map_or(1, |h| h.epoch);
        Ok(Some(Route {
            cell: self.cell.clone(),
            cloud: self.cloud,
            url: BaseUrl::parse(CELL_URL).map_err(|e| StoreError::Failed(e.to_string()))?,
            epoch,
        }))
    }
}

/// The router's upstream in the lane: the request it forwards becomes a client request to the
/// envelope's cell (the platform in front of that cell re-authenticates the caller: the client's
/// authenticated tenant is carried over).
struct EnvelopeUpstream {
    envelope: Envelope,
    driver: tokio::sync::Mutex<Driver>,
    client: Mutex<(Option<String>, usize)>,
    attempts: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl HttpClient for EnvelopeUpstream {
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, TransportError> {
        self.attempts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let target = request
            .url
            .strip_prefix(CELL_URL)
            .ok_or_else(|| TransportError::Connect(format!("no cell at {}", request.url)))?;
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let (authenticated_tenant, step) = self
            .client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let forwarded = ClientRequest {
            method: request.method,
            path: path.to_owned(),
            query: query.to_owned(),
            headers: request.headers,
            body: request.body,
            chunked: false,
            authenticated_tenant,
        };
        let mut driver = self.driver.lock().await;
        driver
            .exchange(self.envelope, &forwarded, step)
            .await
            .into_outbound()
    }
}

/// One envelope's lane behind the router: the router (whose upstream is the envelope's cell) and a
/// twin of that cell reached without the router, which every answer is compared with.
pub(crate) struct EdgeLane {
    edge: Edge,
    upstream: Arc<EnvelopeUpstream>,
    twin: Box<Driver>,
    /// Whether a platform fact has met one of the case's requests on this envelope. Like the
    /// other lanes' facts, it is cumulative: a fact can change what a step wrote (on ALB, the
    /// router reads a repeated header whole while the cell alone reads its last value), so every
    /// later step may differ from the cell alone too, and is no longer compared with it.
    fact_met: bool,
}

impl EdgeLane {
    /// The router in front of `inner`, compared with `twin` (an identical, identically seeded cell).
    /// The registry reads `registry` (the cell's store without injected faults: the registry is
    /// not the cell's database), or the cell's own store.
    pub(crate) fn new(
        envelope: Envelope,
        inner: Driver,
        twin: Driver,
        registry: Option<Arc<dyn TransactionStore>>,
    ) -> Result<Self, String> {
        let cell = inner.cell().ok_or("the edge lane needs in-process cells")?;
        let max_body_bytes = cell.config().limits.max_body_bytes;
        let routes = CellRoutes {
            cell: cell.config().cell_id.clone(),
            cloud: if envelope.is_aws() {
                Cloud::Aws
            } else {
                Cloud::Azure
            },
            store: registry.unwrap_or_else(|| cell.ports().store.clone()),
        };
        let upstream = Arc::new(EnvelopeUpstream {
            envelope,
            driver: tokio::sync::Mutex::new(inner),
            client: Mutex::new((None, 0)),
            attempts: std::sync::atomic::AtomicUsize::new(0),
        });
        let mut config = EdgeConfig::new(EDGE_ID).map_err(|e| format!("edge id: {e}"))?;
        // The registry is the cell's own view: ask it every time.
        config.cache.fresh_for = std::time::Duration::ZERO;
        // The fleet's body limit is the cell's.
        config.max_body_bytes = max_body_bytes;
        let edge = Edge::new(
            config,
            EdgePorts::new(Arc::new(routes), upstream.clone() as Arc<dyn HttpClient>),
        );
        Ok(Self {
            edge,
            upstream,
            twin: Box::new(twin),
            fact_met: false,
        })
    }

    /// Seeds both cells' heads.
    pub(crate) fn seed<'a>(
        &'a self,
        spec: &'a crate::case::CellSpec,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            crate::runner::seed_heads(&self.twin, spec).await?;
            let inner = self.upstream.driver.lock().await;
            crate::runner::seed_heads(&inner, spec).await
        })
    }

    /// One client request through the router, checked against the twin.
    pub(crate) fn exchange<'a>(
        &'a mut self,
        envelope: Envelope,
        request: &'a ClientRequest,
        step: usize,
    ) -> Pin<Box<dyn Future<Output = Exchange> + Send + 'a>> {
        Box::pin(async move {
            *self
                .upstream
                .client
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = (request.authenticated_tenant.clone(), step);
            self.upstream
                .attempts
                .store(0, std::sync::atomic::Ordering::Relaxed);
            let twin = self.twin.exchange(envelope, request, step).await;
            // Every host catches panics at its boundary; so does the lane's.
            let routed = paracell_domain::http::catch_panic(
                self.edge.handle(crate::runner::reference_request(request)),
            )
            .await;
            let Exchange::Response(reference) = twin else {
                return twin;
            };
            if let Some(own) = own_answer(request) {
                // The router answered itself (its /health, or a replication delivery, which goes
                // cell to cell): check that answer, then let the cell behind it see the request too
                // so both cells stay in step, and continue the case with the cell's answer.
                let same_as_cell = unmask(routed.clone(), false)
                    .is_ok_and(|seen| difference(&reference, &seen).is_none());
                if !same_as_cell && let Err(e) = own(&routed) {
                    return Exchange::Failed(format!("through the edge router: {e}"));
                }
                let mut inner = self.upstream.driver.lock().await;
                let _ = inner.exchange(envelope, request, step).await;
                return Exchange::Response(reference);
            }
            let forwarded = self
                .upstream
                .attempts
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0;
            let seen = match unmask(routed, forwarded) {
                Ok(seen) => seen,
                Err(e) => return Exchange::Failed(format!("through the edge router: {e}")),
            };
            self.fact_met |= !Fact::for_request(envelope, request).is_empty();
            if !self.fact_met
                && let Some(diff) = difference(&reference, &seen)
            {
                return Exchange::Failed(format!(
                    "through the edge router, differs from the cell alone on {diff}"
                ));
            }
            Exchange::Response(seen)
        })
    }
}

type OwnCheck = fn(&ApiResponse) -> Result<(), String>;

/// The requests the router answers itself, with the check of its answer.
fn own_answer(request: &ClientRequest) -> Option<OwnCheck> {
    let has_tenant = request.authenticated_tenant.is_some()
        || request
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("x-tenant-id"));
    match (request.method.as_str(), request.path.as_str()) {
        ("GET" | "HEAD", "/health") if !has_tenant => Some(|r| {
            let expected: &[u8] = if r.telemetry.method.as_deref() == Some("HEAD") {
                b""
            } else {
                br#"{"status":"ok","edge":"edge-1"}"#
            };
            (r.status == 200 && r.body == expected)
                .then_some(())
                .ok_or_else(|| {
                    format!(
                        "its own /health answered {} {:?}",
                        r.status,
                        String::from_utf8_lossy(&r.body)
                    )
                })
        }),
        ("POST", "/v1/replication/entries") => Some(|r| {
            (r.status == 404)
                .then_some(())
                .ok_or_else(|| format!("a replication delivery got {}, not 404", r.status))
        }),
        _ => None,
    }
}

/// The client's view of a routed answer with the diagnostic headers checked and removed: an answer
/// from a cell must name it and its cloud; an answer the router gave without forwarding must not.
fn unmask(routed: ApiResponse, forwarded: bool) -> Result<ClientResponse, String> {
    let named = (
        routed.header(CELL_HEADER).is_some(),
        routed.header(CLOUD_HEADER).is_some(),
    );
    match (forwarded, named) {
        (true, (true, true)) | (false, (false, false)) => {}
        (true, _) => {
            return Err(format!(
                "the cell's answer ({}) does not name the cell and cloud that answered",
                routed.status
            ));
        }
        (false, _) => {
            return Err(format!(
                "the router's own answer ({}) names a cell",
                routed.status
            ));
        }
    }
    let headers = routed.headers.into_iter().filter(|(n, _)| {
        !n.eq_ignore_ascii_case(CELL_HEADER) && !n.eq_ignore_ascii_case(CLOUD_HEADER)
    });
    Ok(ClientResponse::new(routed.status, headers, routed.body))
}

/// The router hosted by each adapter: `direct` (the core), a Lambda behind a Function URL, and the
/// Azure custom handler in both modes. Routing vectors run through every one.
#[derive(Clone)]
pub enum Host {
    /// [`Edge::handle`] in process.
    Direct(Edge),
    /// [`LambdaHttp`] answering a Function URL event.
    Lambda(LambdaHttp),
    /// [`AzureHandler::for_service`] in forwarding mode.
    AzureForwarding(AzureHandler),
    /// [`AzureHandler::for_service`] in payload mode.
    AzurePayload(AzureHandler),
}

impl Host {
    /// Every host of `edge`.
    pub fn all(edge: &Edge) -> Vec<(&'static str, Host)> {
        let service: Arc<dyn HttpService> = Arc::new(edge.clone());
        let azure = |mode| {
            AzureHandler::for_service(
                service.clone(),
                AzureConfig {
                    mode,
                    route_prefix: RoutePrefix::new(azure::ROUTE_PREFIX),
                    trust_client_principal: true,
                    ..AzureConfig::default()
                },
            )
        };
        vec![
            ("direct", Host::Direct(edge.clone())),
            (
                "aws-function-url",
                Host::Lambda(LambdaHttp::new(service.clone())),
            ),
            (
                "azure-forwarding",
                Host::AzureForwarding(azure(Mode::Forwarding)),
            ),
            ("azure-payload", Host::AzurePayload(azure(Mode::Payload))),
        ]
    }

    /// One client request through this host.
    pub async fn exchange(&self, request: &ClientRequest) -> Result<ClientResponse, String> {
        match self {
            Self::Direct(edge) => {
                let r = paracell_domain::http::catch_panic(
                    edge.handle(crate::runner::reference_request(request)),
                )
                .await;
                Ok(ClientResponse::new(r.status, r.headers, r.body))
            }
            Self::Lambda(lambda) => {
                let envelope = Envelope::AwsFunctionUrl;
                let event = aws::event(envelope, request);
                let bytes = lambda
                    .invoke(&serde_json::to_vec(&event).unwrap_or_default())
                    .await
                    .map_err(|e| format!("the invocation failed: {e}"))?;
                let json = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
                aws::client_view(envelope, &request.method, &json)
            }
            Self::AzureForwarding(handler) | Self::AzurePayload(handler) => {
                let envelope = if matches!(self, Self::AzurePayload(_)) {
                    Envelope::AzurePayload
                } else {
                    Envelope::AzureForwarding
                };
                let host = azure::host_request(envelope, request, "inv-edge");
                let reply = handler.invoke(host).await;
                Ok(azure::client_view(envelope, &request.method, &reply))
            }
        }
    }
}

pub mod vectors;
