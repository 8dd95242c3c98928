//! Any `tower::Service` over `http` types as an [`HttpService`]: the front door for a team's own
//! workload. An axum `Router`, a `tower` stack or a hand-written service is served by the same
//! envelope translations as Paracell's ledger (every API Gateway source and ALB on AWS, both
//! custom-handler modes on Azure), so what its clients see cannot depend on the cloud.
//!
//! The translation happens once, here: the neutral request becomes an `http::Request` whose body is
//! the whole request body (`Full<Bytes>`: the adapters have already read it, within the limit),
//! the platform-vouched tenant travels as an [`AuthenticatedTenant`] extension, and the
//! `http::Response` is collected back into the neutral response.
//!
//! ## What every cloud can carry
//!
//! The Azure Functions host in payload mode (`docs/conformance.md`, platform facts) sends every
//! response body as UTF-8 text, appends `; charset=utf-8` to every `Content-Type` (and sends
//! `text/plain; charset=utf-8` when there is none), and keeps one value per header name. A response
//! that differs from what the host would send would reach clients differently on Azure than on AWS,
//! so the response is made portable here, for every cloud alike:
//!
//! - `Content-Type` states `charset=utf-8` (appended, or replacing another charset), and a response
//!   without one gets `text/plain; charset=utf-8`;
//! - repeated header lines become one line, their values joined with `, ` (RFC 9110 §5.3);
//! - framing and connection headers (`Content-Length`, `Transfer-Encoding`, `Connection` and the
//!   other hop-by-hop fields of RFC 9110 §7.6.1) are dropped: each platform frames the body itself;
//! - a body that is not UTF-8, or more than one `Set-Cookie` (which cannot be joined), cannot be
//!   carried alike: the answer is `500`, with the reason in the logs, on every cloud — never a
//!   silently different response on one of them.

use super::{ApiRequest, ApiResponse, HttpService, PROBLEM_JSON, Problem, ProblemType};
use crate::config::Limits;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::fmt::Display;
use std::sync::Mutex;

/// The tenant the platform's authentication vouched for (an API Gateway authorizer's `tenant_id`
/// claim, App Service authentication's principal), in the request's extensions. Never set from a
/// client header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedTenant(pub String);

/// A `tower::Service` served as an [`HttpService`]: any `S: tower::Service<http::Request<Full<Bytes>>,
/// Response = http::Response<B>> + Clone + Send + 'static` whose future is `Send` and whose error
/// displays, with a response body `B: http_body::Body + Send` (its data `Send`, its error displays).
/// An axum `Router` is one. The front doors (`paracell_aws::run`, `paracell_azure::serve`) accept
/// exactly the services for which `Workload<S>` is an `HttpService`.
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use paracell_domain::http::{ApiRequest, HttpService, Workload};
///
/// // Any tower::Service over http types; here a closure, in practice often an axum Router.
/// let hello = tower::service_fn(|request: http::Request<Full<Bytes>>| async move {
///     let body = format!("hello from {}", request.uri().path());
///     Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(body))))
/// });
/// let workload = Workload::new("hello", hello);
/// let answer = paracell_domain::testing::block_on(workload.handle(ApiRequest::new("GET", "/v1/hi")));
/// assert_eq!((answer.status, answer.body.as_slice()), (200, b"hello from /v1/hi".as_slice()));
/// ```
pub struct Workload<S> {
    name: String,
    max_body_bytes: usize,
    // `tower::Service::call` takes `&mut self`; each request calls a clone (the tower convention
    // for shared services), so the lock is held only to clone.
    service: Mutex<S>,
}

impl<S> Workload<S> {
    /// Serves `service` as `name` (in logs and metrics), accepting request bodies up to
    /// [`Limits::DEFAULT_MAX_BODY_BYTES`].
    pub fn new(name: impl Into<String>, service: S) -> Self {
        Self {
            name: name.into(),
            max_body_bytes: Limits::DEFAULT_MAX_BODY_BYTES,
            service: Mutex::new(service),
        }
    }

    /// Accepts request bodies up to `bytes` (at most [`Limits::MAX_BODY_BYTES_CEILING`], which
    /// keeps the contract's `413` ahead of Lambda's own payload limit); a larger body is answered
    /// `413 payload-too-large` by the adapter before the service sees it.
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes.clamp(1, Limits::MAX_BODY_BYTES_CEILING);
        self
    }
}

/// Why a neutral request cannot become an `http::Request` (a method, path or header the `http`
/// crate cannot represent). The platforms refuse most such requests before any adapter runs.
fn unrepresentable(what: &str) -> ApiResponse {
    let body = serde_json::json!({
        "type": "urn:paracell:problem:unrepresentable-request",
        "title": "Unrepresentable request",
        "status": 400,
        "detail": format!("The request's {what} cannot be represented as an HTTP request."),
    });
    let mut response = ApiResponse::new(400, PROBLEM_JSON, body.to_string().into_bytes());
    response.telemetry.problem = Some("unrepresentable-request");
    response
}

/// The `http::Request` a neutral request is, or which part of it cannot be one.
fn to_http(request: ApiRequest) -> Result<http::Request<Full<Bytes>>, &'static str> {
    let method = http::Method::from_bytes(request.method.as_bytes()).map_err(|_| "method")?;
    let uri = if request.query.is_empty() {
        request.path
    } else {
        format!("{}?{}", request.path, request.query)
    };
    let uri = http::Uri::try_from(uri).map_err(|_| "path or query")?;
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (name, value) in request.headers.iter() {
        let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| "header name")?;
        let value = http::HeaderValue::from_bytes(value.as_bytes()).map_err(|_| "header value")?;
        builder = builder.header(name, value);
    }
    if let Some(tenant) = request.authenticated_tenant {
        builder = builder.extension(AuthenticatedTenant(tenant));
    }
    builder
        .body(Full::new(Bytes::from(request.body)))
        .map_err(|_| "head")
}

/// A failure of the service itself (not an answer it gave): `500`, with the cause for the logs.
fn failed(cause: String) -> ApiResponse {
    let mut response = Problem::new(ProblemType::Internal).into_response();
    response.telemetry.cause = Some(cause);
    response
}

/// Fields that describe one connection or the message's framing, which each platform sets itself
/// (RFC 9110 §7.6.1, plus `content-length`): never copied from a workload's response.
const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "content-length",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The response every cloud carries alike (see the module docs), or why there is none.
fn portable(
    status: http::StatusCode,
    headers: &http::HeaderMap,
    body: Vec<u8>,
) -> Result<ApiResponse, String> {
    if std::str::from_utf8(&body).is_err() {
        return Err(
            "body is not UTF-8 text, which the Functions host's payload mode cannot carry".into(),
        );
    }
    if headers.get_all(http::header::SET_COOKIE).iter().count() > 1 {
        return Err(
            "sets more than one cookie, which the Functions host's payload mode cannot carry"
                .into(),
        );
    }
    let mut lines: Vec<(String, String)> = Vec::new();
    for name in headers
        .keys()
        .filter(|name| !HOP_BY_HOP.contains(&name.as_str()))
    {
        let mut values = Vec::new();
        for value in headers.get_all(name) {
            let value = value
                .to_str()
                .map_err(|_| format!("header {name} is not visible ASCII"))?;
            values.push(value);
        }
        let mut value = values.join(", ");
        if name == http::header::CONTENT_TYPE {
            value = super::with_utf8_charset(&value);
        }
        lines.push((name.as_str().to_owned(), value));
    }
    if !headers.contains_key(http::header::CONTENT_TYPE) {
        lines.push(("content-type".into(), "text/plain; charset=utf-8".into()));
    }
    Ok(ApiResponse {
        status: status.as_u16(),
        headers: lines,
        body,
        telemetry: Default::default(),
    })
}

#[async_trait::async_trait]
impl<S, B> HttpService for Workload<S>
where
    S: tower_service::Service<http::Request<Full<Bytes>>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    S::Error: Display,
    B: http_body::Body + Send,
    B::Data: Send,
    B::Error: Display,
{
    async fn handle(&self, request: ApiRequest) -> ApiResponse {
        let method = request.method.clone();
        let request = match to_http(request) {
            Ok(request) => request,
            Err(part) => return unrepresentable(part),
        };
        let mut service = self
            .service
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        if let Err(e) = std::future::poll_fn(|cx| service.poll_ready(cx)).await {
            return failed(format!("the workload is not ready: {e}"));
        }
        let response = match service.call(request).await {
            Ok(response) => response,
            Err(e) => return failed(format!("the workload failed: {e}")),
        };
        let (parts, body) = response.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes().to_vec(),
            Err(e) => return failed(format!("the workload's response body failed: {e}")),
        };
        let mut answer = match portable(parts.status, &parts.headers, body) {
            Ok(answer) => answer,
            Err(why) => return failed(format!("the workload's response {why}")),
        };
        answer.telemetry.method = Some(method);
        answer
    }

    fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    fn oversized_request(&self) -> ApiResponse {
        let limit = self.max_body_bytes;
        Problem::new(ProblemType::PayloadTooLarge)
            .detail(format!(
                "The request body is larger than this service accepts (at most {limit} bytes)."
            ))
            .into_response()
    }

    fn name(&self) -> &str {
        &self.name
    }
}
