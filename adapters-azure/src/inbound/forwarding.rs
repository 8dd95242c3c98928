//! Forwarding mode (`enableForwardingHttpRequest`): the host replays the caller's request as plain
//! HTTP at its original path (route prefix included), and passes our response through unchanged.

use crate::config::AzureConfig;
use paracell_domain::http::{ApiRequest, ApiResponse, Headers};

/// Translates a forwarded request's parts. `body` is what was read (see [`crate::server`]: at most one
/// byte past the cell's limit, which is enough for the domain to answer 413).
///
/// ```
/// use paracell_azure::{inbound::forwarding::request_from_parts, AzureConfig};
/// let req = request_from_parts("GET", "/api/health?x=1", [("Host", "localhost:7071")], Vec::new(), &AzureConfig::default());
/// assert_eq!((req.path.as_str(), req.query.as_str()), ("/health", "x=1"));
/// ```
pub fn request_from_parts<'a>(
    method: &str,
    path_and_query: &str,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    body: Vec<u8>,
    config: &AzureConfig,
) -> ApiRequest {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let headers: Headers = headers
        .into_iter()
        .filter_map(|(name, value)| {
            if name.eq_ignore_ascii_case("user-agent") {
                callers_user_agent(value).map(|v| (name, v))
            } else {
                Some((name, value))
            }
        })
        .collect();
    let authenticated_tenant = crate::inbound::payload::authenticated_tenant(&headers, config);
    ApiRequest {
        method: method.to_owned(),
        path: config.route_prefix.strip(path).to_owned(),
        query: query.to_owned(),
        headers,
        body,
        authenticated_tenant,
    }
}

/// The caller's `User-Agent`: the Functions host appends `Azure-Functions-Host/<version>` to it in
/// forwarding mode, and sends that token alone when the caller sent none. The domain sees what the
/// caller sent (or nothing), as on every other envelope.
///
/// ```
/// use paracell_azure::inbound::forwarding::callers_user_agent;
/// assert_eq!(callers_user_agent("curl/8.5 Azure-Functions-Host/4.1040.300.0"), Some("curl/8.5"));
/// assert_eq!(callers_user_agent("Azure-Functions-Host/4.1040.300.0"), None);
/// assert_eq!(callers_user_agent("curl/8.5"), Some("curl/8.5"));
/// assert_eq!(callers_user_agent("Mozilla/5.0 (X11; Linux)"), Some("Mozilla/5.0 (X11; Linux)"));
/// ```
pub fn callers_user_agent(value: &str) -> Option<&str> {
    let caller = match value.rsplit_once(' ') {
        Some((caller, host)) if host.starts_with("Azure-Functions-Host/") => caller,
        None if value.starts_with("Azure-Functions-Host/") => "",
        _ => value,
    };
    let caller = caller.trim_end();
    (!caller.is_empty()).then_some(caller)
}

/// The HTTP response for a neutral response: status, headers and body as they are.
pub fn http_response(response: ApiResponse) -> http::Response<axum::body::Body> {
    let mut builder = http::Response::builder().status(response.status);
    for (name, value) in &response.headers {
        builder = builder.header(name, value);
    }
    builder
        .body(axum::body::Body::from(response.body))
        .unwrap_or_else(|_| internal_error_response())
}

/// A bare 500 for the impossible case of a domain response that is not valid HTTP.
pub(crate) fn internal_error_response() -> http::Response<axum::body::Body> {
    let problem = paracell_domain::http::Problem::new(paracell_domain::http::ProblemType::Internal)
        .into_response();
    let mut response = http::Response::new(axum::body::Body::from(problem.body));
    *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
    for (name, value) in problem.headers {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::try_from(name),
            http::HeaderValue::try_from(value),
        ) {
            response.headers_mut().insert(n, v);
        }
    }
    response
}
