//! The cloud-neutral HTTP contract: a neutral request in, a neutral response out.
//!
//! Adapters translate a platform's envelope into an [`ApiRequest`] and an [`ApiResponse`] back into
//! the platform's reply shape. Everything in between (routing, status codes, headers, problem bodies)
//! is decided here and nowhere else.

mod media_type;
mod panic;
pub mod percent;
mod problem;
mod request;
mod response;
pub mod router;
pub mod service;
mod workload;

pub use media_type::{
    MediaTypeError, essence, require_json, require_media_type, with_utf8_charset,
};
pub use panic::{CatchPanic, catch_panic};
pub use problem::{Problem, ProblemType};
pub use request::{ApiRequest, Headers};
pub use response::{ApiResponse, JSON, PROBLEM_JSON, Telemetry};
pub use service::HttpService;
pub use workload::{AuthenticatedTenant, Workload};

/// The answer when a platform delivered a request its adapter cannot translate into an
/// [`ApiRequest`] (an invalid base64 body, a malformed Functions-host envelope): `400 malformed-request`.
/// Adapters call this instead of inventing their own error, so the answer is the same on every cloud.
///
/// ```
/// let r = paracell_domain::http::untranslatable_request("the body is not valid base64");
/// assert_eq!(r.status, 400);
/// ```
pub fn untranslatable_request(detail: impl Into<String>) -> ApiResponse {
    let mut response = Problem::new(ProblemType::MalformedRequest)
        .detail(detail)
        .into_response();
    response.telemetry.route = "untranslatable";
    response
}

/// The answer to a request whose body did not arrive within a server's body deadlines: `408
/// request-timeout`, and the connection is closed (the rest of the body is never read). Servers that
/// read bodies from a socket use it; platforms that buffer bodies (Lambda) never need it.
///
/// ```
/// let r = paracell_domain::http::request_timeout();
/// assert_eq!(r.status, 408);
/// assert_eq!(r.header("connection"), Some("close"));
/// ```
pub fn request_timeout() -> ApiResponse {
    let mut response = Problem::new(ProblemType::RequestTimeout)
        .into_response()
        .with_header("connection", "close");
    response.telemetry.route = "untranslatable";
    response
}
