//! The custom-handler HTTP server, and the in-process entry point that drives the same router.
//!
//! axum (rather than bare hyper) because it gives the whole server lifecycle in a few lines:
//! HTTP/1.1 with chunked request bodies, graceful shutdown, and a `tower::Service` we can call
//! in process with `oneshot`. All routing lives in the domain, so the axum router is one fallback.

use crate::config::{AzureConfig, Mode};
use crate::forwarding;
use crate::logging;
use crate::payload::{envelope_from_response, request_from_envelope};
use axum::body::Body;
use http_body_util::BodyExt as _;
use paracell_domain::Cell;
use paracell_domain::http::{ApiResponse, catch_panic, untranslatable_request};
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
    cell: Cell,
    config: AzureConfig,
}

/// A cell behind the custom-handler protocol.
#[derive(Clone)]
pub struct AzureHandler {
    router: axum::Router,
}

impl AzureHandler {
    /// Wraps a cell.
    pub fn new(cell: Cell, config: AzureConfig) -> Self {
        let state = Arc::new(State { cell, config });
        let router = axum::Router::new().fallback(move |request: http::Request<Body>| {
            let state = state.clone();
            async move { handle(&state, request).await }
        });
        Self { router }
    }

    /// The axum router the server runs.
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// In process: one host request through the same router the server uses.
    pub async fn invoke(&self, request: HostRequest) -> HandlerReply {
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
        let response = match self.router.clone().oneshot(http_request).await {
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
    match state.config.mode {
        Mode::Forwarding => {
            let response = catch_panic(forwarded(state, request)).await;
            logging::request_done(
                invocation_id.as_deref(),
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

async fn forwarded(state: &State, request: http::Request<Body>) -> ApiResponse {
    let (parts, body) = request.into_parts();
    // One byte past the limit is enough for the domain to answer 413; the rest is never read.
    let cap = state.cell.config().limits.max_body_bytes + 1;
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
    state.cell.handle(request).await
}

async fn payload(state: &State, request: http::Request<Body>) -> ApiResponse {
    let limit = state.cell.config().limits.max_body_bytes;
    // The envelope repeats the body (Data.req.Body and Metadata), base64 inflates it by a third:
    // an envelope past this cap can only carry a body over the limit.
    let cap = limit.saturating_mul(4).saturating_add(1 << 20);
    let envelope = match read_capped(request.into_body(), cap).await {
        Ok((bytes, false)) => bytes,
        Ok((_, true)) => return state.cell.oversized_request(),
        Err(()) => return untranslatable_request("The Functions host envelope could not be read."),
    };
    match request_from_envelope(&envelope, &state.config) {
        Ok(request) => state.cell.handle(request).await,
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
    /// The socket.
    #[error("cannot serve on 127.0.0.1: {0}")]
    Io(#[from] std::io::Error),
}

/// Everything a custom-handler binary does: logs, configuration from the environment and
/// `host.json`, bind `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT` (never `localhost`), serve until SIGTERM.
/// `make_cell` builds the cell from its configuration (choose the store there).
pub async fn run(
    make_cell: impl FnOnce(paracell_domain::CellConfig) -> Cell,
) -> Result<(), StartError> {
    crate::logging::init();
    let cell = make_cell(paracell_domain::CellConfig::from_env()?);
    let config = AzureConfig::from_env()?;
    let port = port_from_env().map_err(StartError::Port)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tracing::info!(port, mode = ?config.mode, cell = cell.config().cell_id.as_str(), "listening");
    serve(listener, AzureHandler::new(cell, config), shutdown_signal()).await?;
    Ok(())
}
