//! The custom-handler HTTP server, and the in-process entry point that drives the same router.
//!
//! axum (rather than bare hyper) because it gives the whole server lifecycle in a few lines:
//! HTTP/1.1 with chunked request bodies, graceful shutdown, and a `tower::Service` we can call
//! in process with `oneshot`. All routing lives in the domain, so the axum router is one fallback.

use crate::config::{AzureConfig, Mode};
use crate::inbound::envelope::InvokeResponse;
use crate::inbound::forwarding;
use crate::inbound::payload::{envelope_from_response, request_from_envelope};
use crate::inbound::trigger;
use crate::logging;
use axum::body::Body;
use http_body_util::BodyExt as _;
use paracell_domain::Cell;
use paracell_domain::http::{ApiResponse, HttpService, catch_panic, untranslatable_request};
use paracell_domain::replication::relay::Relay;
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

struct State {
    service: Arc<dyn HttpService>,
    /// The cell, when the service is one (its store marks relayed entries).
    cell: Option<Cell>,
    config: AzureConfig,
    relay: Option<Relay>,
}

/// A cell (or any [`HttpService`], such as the edge router) behind the custom-handler protocol.
#[derive(Clone)]
pub struct AzureHandler {
    router: axum::Router,
    cell: Option<Cell>,
}

impl AzureHandler {
    /// Wraps a cell.
    pub fn new(cell: Cell, config: AzureConfig) -> Self {
        Self::build(State {
            service: Arc::new(cell.clone()),
            cell: Some(cell),
            config,
            relay: None,
        })
    }

    /// Serves any [`HttpService`] (the edge router, say): HTTP invocations only, no relay.
    pub fn for_service(service: Arc<dyn HttpService>, config: AzureConfig) -> Self {
        Self::build(State {
            service,
            cell: None,
            config,
            relay: None,
        })
    }

    /// Wraps a cell whose change-feed invocations are relayed with `relay`.
    pub fn with_relay(cell: Cell, config: AzureConfig, relay: Relay) -> Self {
        Self::build(State {
            service: Arc::new(cell.clone()),
            cell: Some(cell),
            config,
            relay: Some(relay),
        })
    }

    fn build(state: State) -> Self {
        let cell = state.cell.clone();
        let state = Arc::new(state);
        let router = axum::Router::new().fallback(move |request: http::Request<Body>| {
            let state = state.clone();
            async move { handle(&state, request).await }
        });
        Self { router, cell }
    }

    /// The cell, when it serves one.
    pub fn cell(&self) -> Option<&Cell> {
        self.cell.as_ref()
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

async fn handle(state: &State, request: http::Request<Body>) -> http::Response<Body> {
    // The host's readiness probe and health ping: answer at once, whatever the mode.
    if request.method() == http::Method::GET && request.uri().path() == "/" {
        return http::Response::new(Body::empty());
    }
    let started = Instant::now();
    let invocation_id = request
        .headers()
        .get("x-azure-functions-invocationid")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let method = request.method().as_str().to_owned();
    if request.method() == http::Method::POST
        && request.uri().path().strip_prefix('/') == Some(state.config.relay_function.as_str())
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

/// A Cosmos DB trigger invocation: relays the pending entries among the changed documents and marks
/// them relayed. A relay that could not deliver nor dead-letter an entry fails the invocation (HTTP
/// 500), so the function's retry policy runs it again.
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
    let documents = serde_json::from_slice::<serde_json::Value>(&envelope)
        .map_err(|e| e.to_string())
        .and_then(|v| trigger::changed_documents(&v["Data"]));
    let documents = match documents {
        Ok(Some(documents)) => documents,
        Ok(None) => Vec::new(),
        Err(e) => {
            let line = logging::relay_problem(invocation_id, "unreadable trigger envelope", &e);
            return reply(500, vec![line]);
        }
    };
    let mut logs = Vec::new();
    let mut entries = Vec::new();
    let mut unreadable = false;
    for document in documents {
        match document.entry {
            Ok(Some(entry)) => entries.push(entry),
            Ok(None) => {}
            Err(reason) => {
                unreadable = true;
                logs.push(logging::relay_problem(
                    invocation_id,
                    &format!("unreadable entry document {}", document.id),
                    &reason,
                ));
            }
        }
    }
    let report = relay.relay(&entries).await;
    if let Err(e) = cell.ports().store.mark_relayed(&report.relayed).await {
        logs.push(logging::relay_problem(
            invocation_id,
            "mark_relayed failed (the entries will be relayed again)",
            &e.to_string(),
        ));
    }
    logs.push(logging::relay_done(invocation_id, &report));
    logging::metrics(&paracell_domain::observability::metrics::relay_samples(
        cell.config().cell_id.as_str(),
        &report,
    ));
    let status = if report.failed.is_empty() && !unreadable {
        200
    } else {
        500
    };
    reply(status, logs)
}

async fn forwarded(state: &State, request: http::Request<Body>) -> ApiResponse {
    let (parts, body) = request.into_parts();
    // One byte past the limit is enough for the domain to answer 413; the rest is never read.
    let cap = state.service.max_body_bytes() + 1;
    let body = match read_capped(body, cap).await {
        Ok((body, _)) => body,
        Err(()) => return untranslatable_request("The request body could not be read."),
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
        Err(()) => return untranslatable_request("The Functions host envelope could not be read."),
    };
    match request_from_envelope(&envelope, &state.config) {
        Ok(request) => state.service.handle(request).await,
        Err(e) => untranslatable_request(e.to_string()),
    }
}

/// Reads at most `cap` bytes; `true` when the body was longer (the rest is left unread).
async fn read_capped(mut body: Body, cap: usize) -> Result<(Vec<u8>, bool), ()> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ())?;
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

/// Serves until `shutdown` completes, then finishes in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    handler: AzureHandler,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, handler.router())
        .with_graceful_shutdown(shutdown)
        .await
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

/// Everything a custom-handler binary does: logs, configuration from the environment and
/// `host.json`, bind `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT` (never `localhost`), serve until SIGTERM.
/// `make` builds the cell from its configuration (choose the store there) and, when the cell has
/// peers, the relay its change-feed function drives.
pub async fn run(
    make: impl AsyncFnOnce(paracell_domain::CellConfig) -> Result<(Cell, Option<Relay>), String>,
) -> Result<(), StartError> {
    crate::logging::init();
    let (cell, relay) = make(paracell_domain::CellConfig::from_env()?)
        .await
        .map_err(StartError::Setup)?;
    let config = AzureConfig::from_env()?;
    let port = port_from_env().map_err(StartError::Port)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tracing::info!(port, mode = ?config.mode, cell = cell.config().cell_id.as_str(), relay = relay.is_some(), "listening");
    let handler = match relay {
        Some(relay) => AzureHandler::with_relay(cell, config, relay),
        None => AzureHandler::new(cell, config),
    };
    serve(listener, handler, shutdown_signal()).await?;
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
