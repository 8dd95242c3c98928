//! The custom-handler HTTP server, and the in-process entry point that drives the same router.
//!
//! The handler is an axum router (a `tower::Service` we can also call in process with `oneshot`)
//! with one fallback: all routing lives in the domain. What reaches it is decided here, once:
//!
//! - the readiness probe (`GET /` without an invocation id) and trigger invocations
//!   (`POST /{relay function}`) exist only behind the Functions host ([`Front::FunctionsHost`]), and
//!   a trigger route only where no client request can take its path
//!   ([`AzureConfig::trigger_route_is_private`]); everything else is the service's, so a client's
//!   `POST /Relay` or `GET /` is the domain's `404` problem;
//! - a trigger invocation is only a hint that the store changed: the relay reads the entries it
//!   relays from the cell's own store, never from the invocation's documents;
//! - request bodies are read under the body deadlines of [`ServerLimits`] (`408` past them).
//!
//! The connections themselves (cap, header and idle timeouts) are [`crate::listener`]'s.

use crate::config::{AzureConfig, Front, Mode};
use crate::inbound::envelope::InvokeResponse;
use crate::inbound::forwarding;
use crate::inbound::payload::{envelope_from_response, request_from_envelope};
use crate::inbound::trigger;
use crate::listener::ServerLimits;
use crate::logging;
use axum::body::Body;
use http_body_util::BodyExt as _;
use paracell_domain::Cell;
use paracell_domain::http::{
    ApiResponse, HttpService, catch_panic, request_timeout, untranslatable_request,
};
use paracell_domain::replication::relay::{Relay, relay_pending};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use tower::ServiceExt as _;

/// A request as the Functions host sends it to the handler.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostRequest {
    /// Method.
    pub method: String,
    /// Path and query (`/ValidateTransaction` in payload mode, `/api/…?…` in forwarding mode).
    pub path: String,
    /// Header lines.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl HostRequest {
    /// A request without headers or body.
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.into(),
            path: path.into(),
            ..Self::default()
        }
    }

    /// Adds a header line.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
}

/// The handler's HTTP reply to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerReply {
    /// Status.
    pub status: u16,
    /// Header lines, names lower-case.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl HandlerReply {
    /// A header's first value (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
struct State {
    service: Arc<dyn HttpService>,
    /// The cell, when the service is one (its store is what the relay reads).
    cell: Option<Cell>,
    config: AzureConfig,
    relay: Option<Relay>,
    limits: ServerLimits,
}

/// A cell (or any [`HttpService`], such as the edge router) behind the custom-handler protocol.
#[derive(Clone)]
pub struct AzureHandler {
    router: axum::Router,
    state: Arc<State>,
}

impl AzureHandler {
    /// Wraps a cell.
    pub fn new(cell: Cell, config: AzureConfig) -> Self {
        Self::build(State {
            service: Arc::new(cell.clone()),
            cell: Some(cell),
            limits: default_limits(&config),
            config,
            relay: None,
        })
    }

    /// Serves any [`HttpService`] (the edge router, say): HTTP invocations only, no relay.
    pub fn for_service(service: Arc<dyn HttpService>, config: AzureConfig) -> Self {
        Self::build(State {
            service,
            cell: None,
            limits: default_limits(&config),
            config,
            relay: None,
        })
    }

    /// Wraps a cell whose change-feed invocations are relayed with `relay`. The trigger route
    /// exists only where clients cannot reach it ([`AzureConfig::trigger_route_is_private`];
    /// [`run`] refuses to start otherwise).
    pub fn with_relay(cell: Cell, config: AzureConfig, relay: Relay) -> Self {
        if !config.trigger_route_is_private() {
            tracing::error!(
                function = config.relay_function.as_str(),
                "the trigger route is not served: clients could reach it in this configuration"
            );
        }
        Self::build(State {
            service: Arc::new(cell.clone()),
            cell: Some(cell),
            limits: default_limits(&config),
            config,
            relay: Some(relay),
        })
    }

    /// Replaces the server limits (the body deadlines apply here; the rest in [`serve`]).
    #[must_use]
    pub fn with_limits(self, limits: ServerLimits) -> Self {
        let mut state = (*self.state).clone();
        state.limits = limits;
        Self::build(state)
    }

    /// The server limits.
    pub fn limits(&self) -> ServerLimits {
        self.state.limits
    }

    fn build(state: State) -> Self {
        let state = Arc::new(state);
        let shared = state.clone();
        let router = axum::Router::new().fallback(move |request: http::Request<Body>| {
            let state = shared.clone();
            async move { handle(&state, request).await }
        });
        Self { router, state }
    }

    /// The cell, when it serves one.
    pub fn cell(&self) -> Option<&Cell> {
        self.state.cell.as_ref()
    }

    /// The axum router the server runs.
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// In process: one host request through the same router the server uses.
    pub async fn invoke(&self, request: HostRequest) -> HandlerReply {
        invoke_router(self.router.clone(), request).await
    }
}

/// In process: one host request through `router` (a handler's, or a trigger router's from
/// [`crate::functions::trigger_router`]), answered as the server would answer it.
pub async fn invoke_router(router: axum::Router, request: HostRequest) -> HandlerReply {
    let mut builder = http::Request::builder()
        .method(request.method.as_str())
        .uri(request.path.as_str());
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let Ok(http_request) = builder.body(Body::from(request.body)) else {
        return HandlerReply {
            status: 400,
            headers: Vec::new(),
            body: b"not a valid HTTP request".to_vec(),
        };
    };
    let response = match router.oneshot(http_request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    HandlerReply {
        status: parts.status.as_u16(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    }
}

/// The limits a handler starts with: those of its front.
fn default_limits(config: &AzureConfig) -> ServerLimits {
    match config.front {
        Front::FunctionsHost => ServerLimits::behind_functions_host(),
        Front::Direct => ServerLimits::default(),
    }
}

async fn handle(state: &State, request: http::Request<Body>) -> http::Response<Body> {
    let started = Instant::now();
    let invocation_id = request
        .headers()
        .get("x-azure-functions-invocationid")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let from_host = state.config.front == Front::FunctionsHost;
    // The host's readiness probe and health ping carry no invocation id (every invocation does):
    // answer at once, whatever the mode. Anyone else's `GET /` is an unknown path.
    if from_host
        && invocation_id.is_none()
        && request.method() == http::Method::GET
        && request.uri().path() == "/"
    {
        return http::Response::new(Body::empty());
    }
    let method = request.method().as_str().to_owned();
    if request.method() == http::Method::POST
        && request.uri().path().strip_prefix('/') == Some(state.config.relay_function.as_str())
        && state.config.trigger_route_is_private()
    {
        // A change-feed invocation: an envelope in both modes (forwarding applies to HTTP only).
        return relay_invocation(state, request, invocation_id.as_deref()).await;
    }
    match state.config.mode {
        Mode::Forwarding => {
            let response = catch_panic(forwarded(state, request)).await;
            logging::request_done(
                invocation_id.as_deref(),
                state.service.name(),
                &method,
                &response,
                started.elapsed(),
            );
            forwarding::http_response(response)
        }
        Mode::Payload => {
            let single_segment = {
                let path = request.uri().path();
                path.len() > 1 && !path[1..].contains('/')
            };
            if method != "POST" || !single_segment {
                // Not something the host sends in payload mode.
                let response = paracell_domain::http::Problem::new(
                    paracell_domain::http::ProblemType::NotFound,
                )
                .detail("Payload mode: the Functions host invokes POST /{FunctionName}.")
                .into_response();
                return forwarding::http_response(response);
            }
            let response = catch_panic(payload(state, request)).await;
            let line = logging::request_done(
                invocation_id.as_deref(),
                state.service.name(),
                &method,
                &response,
                started.elapsed(),
            );
            let envelope = envelope_from_response(&response, vec![line]);
            let body = serde_json::to_vec(&envelope).unwrap_or_default();
            let mut reply = http::Response::new(Body::from(body));
            reply.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            reply
        }
    }
}

/// A Cosmos DB trigger invocation: a hint that the cell's container changed. The relay reads the
/// pending entries from the cell's own store and relays those (and marks them relayed); the
/// invocation's documents are never relayed themselves, so nothing that reaches this route can make
/// the cell sign an entry it did not commit. A relay that could not deliver nor dead-letter an entry
/// fails the invocation (HTTP 500), so the function's retry policy runs it again.
async fn relay_invocation(
    state: &State,
    request: http::Request<Body>,
    invocation_id: Option<&str>,
) -> http::Response<Body> {
    let reply = |status: u16, logs: Vec<String>| {
        let envelope = InvokeResponse {
            outputs: Default::default(),
            logs,
            return_value: None,
        };
        let body = serde_json::to_vec(&envelope).unwrap_or_default();
        let mut reply = http::Response::new(Body::from(body));
        *reply.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
        reply.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        reply
    };
    let (Some(relay), Some(cell)) = (&state.relay, &state.cell) else {
        let line = logging::relay_problem(
            invocation_id,
            "a change-feed invocation reached a handler without a relay (set PARACELL_PEERS)",
            "",
        );
        return reply(500, vec![line]);
    };
    let envelope = match read_capped(request.into_body(), 64 << 20).await {
        Ok((bytes, false)) => bytes,
        _ => {
            let line =
                logging::relay_problem(invocation_id, "the trigger envelope could not be read", "");
            return reply(500, vec![line]);
        }
    };
    // Only the shape is checked: an invocation the host could not have sent fails (and is retried).
    let hinted = serde_json::from_slice::<serde_json::Value>(&envelope)
        .map_err(|e| e.to_string())
        .and_then(|v| trigger::changed_documents(&v["Data"]));
    if let Err(e) = hinted {
        let line = logging::relay_problem(invocation_id, "unreadable trigger envelope", &e);
        return reply(500, vec![line]);
    }
    let report = match relay_pending(cell.ports().store.as_ref(), relay, 100).await {
        Ok(report) => report,
        Err(e) => {
            let line = logging::relay_problem(
                invocation_id,
                "the store failed (the entries will be relayed again)",
                &e.to_string(),
            );
            return reply(500, vec![line]);
        }
    };
    let logs = vec![logging::relay_done(invocation_id, &report)];
    logging::metrics(&paracell_domain::observability::metrics::relay_samples(
        cell.config().cell_id.as_str(),
        &report,
    ));
    let status = if report.failed.is_empty() { 200 } else { 500 };
    reply(status, logs)
}

async fn forwarded(state: &State, request: http::Request<Body>) -> ApiResponse {
    let (parts, body) = request.into_parts();
    // One byte past the limit is enough for the domain to answer 413; the rest is never read.
    let cap = state.service.max_body_bytes() + 1;
    let body = match read_capped(body, cap).await {
        Ok((body, _)) => body,
        Err(BodyError::TimedOut) => return request_timeout(),
        Err(BodyError::Broken) => {
            return untranslatable_request("The request body could not be read.");
        }
    };
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let request = forwarding::request_from_parts(
        parts.method.as_str(),
        path,
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        body,
        &state.config,
    );
    state.service.handle(request).await
}

async fn payload(state: &State, request: http::Request<Body>) -> ApiResponse {
    let limit = state.service.max_body_bytes();
    // The envelope repeats the body (Data.req.Body and Metadata), base64 inflates it by a third:
    // an envelope past this cap can only carry a body over the limit.
    let cap = limit.saturating_mul(4).saturating_add(1 << 20);
    let envelope = match read_capped(request.into_body(), cap).await {
        Ok((bytes, false)) => bytes,
        Ok((_, true)) => return state.service.oversized_request(),
        Err(BodyError::TimedOut) => return request_timeout(),
        Err(BodyError::Broken) => {
            return untranslatable_request("The Functions host envelope could not be read.");
        }
    };
    match request_from_envelope(&envelope, &state.config) {
        Ok(request) => state.service.handle(request).await,
        Err(e) => untranslatable_request(e.to_string()),
    }
}

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyError {
    /// The connection broke, or the framing was invalid.
    Broken,
    /// A gap between two frames outlasted the body-idle limit, or the body the body deadline.
    TimedOut,
}

/// Reads at most `cap` bytes; `true` when the body was longer (the rest is left unread). A body that
/// came through [`crate::listener`] fails with [`BodyError::TimedOut`] once it outlasts the body
/// deadlines of [`ServerLimits`] (the timers live there, on the socket's body: an in-process
/// invocation has its whole body already and needs no timer).
async fn read_capped(mut body: Body, cap: usize) -> Result<(Vec<u8>, bool), BodyError> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            if crate::listener::is_body_timeout(&e) {
                BodyError::TimedOut
            } else {
                BodyError::Broken
            }
        })?;
        if let Ok(data) = frame.into_data() {
            let room = cap - out.len();
            if data.len() > room {
                out.extend_from_slice(&data[..room]);
                return Ok((out, true));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok((out, false))
}

/// Serves until `shutdown` completes, then finishes in-flight requests, under the handler's
/// [`ServerLimits`] ([`crate::listener`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    handler: AzureHandler,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = handler.limits();
    crate::listener::serve(listener, handler.router(), limits, shutdown).await
}

/// Resolves on SIGTERM (what the host and App Service send) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

/// The port the host chose: `FUNCTIONS_CUSTOMHANDLER_PORT` (or the legacy `FUNCTIONS_HTTPWORKER_PORT`).
pub fn port_from_env() -> Result<u16, String> {
    let raw = std::env::var("FUNCTIONS_CUSTOMHANDLER_PORT")
        .or_else(|_| std::env::var("FUNCTIONS_HTTPWORKER_PORT"))
        .map_err(|_| {
            "FUNCTIONS_CUSTOMHANDLER_PORT is not set (the Functions host sets it)".to_owned()
        })?;
    raw.parse()
        .map_err(|_| format!("FUNCTIONS_CUSTOMHANDLER_PORT {raw:?} is not a port number"))
}

/// Why the handler could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad cell configuration.
    #[error(transparent)]
    Cell(#[from] paracell_domain::ConfigError),
    /// Bad adapter configuration.
    #[error(transparent)]
    Adapter(#[from] crate::config::ConfigError),
    /// A server limit that cannot be used.
    #[error(transparent)]
    Limits(#[from] crate::listener::LimitError),
    /// No usable port.
    #[error("{0}")]
    Port(String),
    /// The cell's ports or relay could not be set up.
    #[error("{0}")]
    Setup(String),
    /// The socket.
    #[error("cannot serve on 127.0.0.1: {0}")]
    Io(#[from] std::io::Error),
}

/// Everything a custom-handler binary does (install a log subscriber first, e.g.
/// [`crate::logging::subscriber`]: this library installs none): configuration from the environment and
/// `host.json`, bind `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT` (never `localhost`), serve until SIGTERM.
/// `make` builds the cell from its configuration (choose the store there) and, when the cell has
/// peers, the relay its change-feed function drives.
pub async fn run(
    make: impl AsyncFnOnce(paracell_domain::CellConfig) -> Result<(Cell, Option<Relay>), String>,
) -> Result<(), StartError> {
    let (cell, relay) = make(paracell_domain::CellConfig::from_env()?)
        .await
        .map_err(StartError::Setup)?;
    let config = AzureConfig::from_env()?;
    if relay.is_some() {
        config.check_trigger_route()?;
    }
    tracing::info!(mode = ?config.mode, cell = cell.config().cell_id.as_str(), relay = relay.is_some(), "starting");
    let handler = match relay {
        Some(relay) => AzureHandler::with_relay(cell, config, relay),
        None => AzureHandler::new(cell, config),
    };
    serve_behind_host(handler).await
}

/// What every custom-handler binary does once its handler is built: the server limits from the
/// environment ([`ServerLimits::behind_functions_host`] by default), bind
/// `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT` (never `localhost`), serve until SIGTERM.
pub(crate) async fn serve_behind_host(handler: AzureHandler) -> Result<(), StartError> {
    let limits = ServerLimits::from_lookup(ServerLimits::behind_functions_host(), |k| {
        std::env::var(k).ok()
    })?;
    let port = port_from_env().map_err(StartError::Port)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tracing::info!(port, "listening");
    serve(listener, handler.with_limits(limits), shutdown_signal()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body arriving in frames of the given sizes.
    fn framed(sizes: &[usize]) -> Body {
        let frames: Vec<Result<Vec<u8>, std::io::Error>> =
            sizes.iter().map(|n| Ok(vec![b'x'; *n])).collect();
        Body::from_stream(futures::stream::iter(frames))
    }

    #[test]
    fn a_body_is_read_up_to_its_cap_and_no_further() {
        paracell_domain::testing::block_on(async {
            // Under the cap, and exactly at it: all of it, not "longer".
            assert_eq!(
                read_capped(framed(&[3, 4]), 10).await,
                Ok((vec![b'x'; 7], false))
            );
            assert_eq!(
                read_capped(framed(&[4, 6]), 10).await,
                Ok((vec![b'x'; 10], false))
            );
            // Over it, whichever frame crosses it: the first `cap` bytes, and "longer".
            assert_eq!(
                read_capped(framed(&[4, 7]), 10).await,
                Ok((vec![b'x'; 10], true))
            );
            assert_eq!(
                read_capped(framed(&[11]), 10).await,
                Ok((vec![b'x'; 10], true))
            );
            assert_eq!(
                read_capped(framed(&[10, 1]), 10).await,
                Ok((vec![b'x'; 10], true))
            );
        });
    }
}
