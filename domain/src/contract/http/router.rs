//! Routing: which endpoint a method and raw path select. The table here is the single source the
//! OpenAPI document is checked against.

use super::{ApiRequest, ApiResponse, Problem, ProblemType};
use crate::transaction::{AccountId, TransactionId};

/// One endpoint of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// Path template as in the OpenAPI document.
    pub template: &'static str,
    /// The method that does the work (`GET` endpoints also answer `HEAD`).
    pub method: &'static str,
    /// The `Allow` header for this path.
    pub allow: &'static str,
    /// Every status this endpoint can answer with for its own method.
    pub statuses: &'static [u16],
}

/// `GET /health`.
pub const HEALTH: Endpoint = Endpoint {
    template: "/health",
    method: "GET",
    allow: "GET, HEAD, OPTIONS",
    statuses: &[200, 413, 500],
};
/// `POST /v1/transactions`.
pub const CREATE_TRANSACTION: Endpoint = Endpoint {
    template: "/v1/transactions",
    method: "POST",
    allow: "POST, OPTIONS",
    statuses: &[201, 400, 409, 413, 415, 421, 422, 500, 503],
};
/// `GET /v1/transactions/{transaction_id}`.
pub const GET_TRANSACTION: Endpoint = Endpoint {
    template: "/v1/transactions/{transaction_id}",
    method: "GET",
    allow: "GET, HEAD, OPTIONS",
    statuses: &[200, 400, 404, 413, 421, 500, 503],
};
/// `GET /v1/accounts/{account_id}/balances`.
pub const GET_BALANCES: Endpoint = Endpoint {
    template: "/v1/accounts/{account_id}/balances",
    method: "GET",
    allow: "GET, HEAD, OPTIONS",
    statuses: &[200, 400, 404, 413, 421, 500, 503],
};

/// `POST /v1/replication/entries`: deliveries from peer cells (signed; see
/// [`crate::replication::signature`]).
pub const REPLICATION_ENTRIES: Endpoint = Endpoint {
    template: "/v1/replication/entries",
    method: "POST",
    allow: "POST, OPTIONS",
    statuses: &[200, 400, 401, 409, 413, 415, 500, 503],
};

/// Every endpoint.
pub const ENDPOINTS: [Endpoint; 5] = [
    HEALTH,
    CREATE_TRANSACTION,
    GET_TRANSACTION,
    GET_BALANCES,
    REPLICATION_ENTRIES,
];

/// A matched route with its parsed path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/health`: answered without a tenant.
    Health,
    /// `/v1/replication/entries`: entries for many tenants, authenticated by signature.
    ReplicationEntries,
    /// A route that acts for a tenant.
    Tenant(TenantRoute),
}

/// The routes that need a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantRoute {
    /// `/v1/transactions`.
    CreateTransaction,
    /// `/v1/transactions/{transaction_id}`.
    GetTransaction(TransactionId),
    /// `/v1/accounts/{account_id}/balances`.
    GetBalances(AccountId),
}

impl Route {
    /// Its endpoint.
    pub fn endpoint(&self) -> &'static Endpoint {
        match self {
            Self::Health => &HEALTH,
            Self::ReplicationEntries => &REPLICATION_ENTRIES,
            Self::Tenant(TenantRoute::CreateTransaction) => &CREATE_TRANSACTION,
            Self::Tenant(TenantRoute::GetTransaction(_)) => &GET_TRANSACTION,
            Self::Tenant(TenantRoute::GetBalances(_)) => &GET_BALANCES,
        }
    }
}

/// What a method and path resolve to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Do the endpoint's work (`HEAD` on a `GET` endpoint matches too; `Cell::handle` drops
    /// every `HEAD` answer's body).
    Matched(Route),
    /// `OPTIONS` on a known path.
    Options(&'static Endpoint),
    /// Known path, other method.
    MethodNotAllowed(&'static Endpoint),
    /// Unknown path.
    NotFound,
}

/// Resolves a method and a raw path (percent-encoding intact).
///
/// Segments are percent-decoded after splitting on `/`, so an encoded slash stays inside its
/// segment. Paths are matched exactly: a trailing slash, an empty segment or invalid percent-encoding
/// is a different (unknown) path. Path parameters are typed: a segment that is not a valid
/// transaction or account id does not match, so routing alone decides `404 not-found`, before any
/// header or body is looked at (platforms that decode paths differently then still agree).
///
/// ```
/// use paracell_domain::{AccountId, http::router::{resolve, Resolution, Route, TenantRoute}};
/// assert_eq!(
///     resolve("GET", "/v1/accounts/ACC%2D1/balances"),
///     Resolution::Matched(Route::Tenant(TenantRoute::GetBalances(AccountId::parse("ACC-1").unwrap())))
/// );
/// assert_eq!(resolve("GET", "/v1/transactions/"), Resolution::NotFound);
/// assert_eq!(resolve("GET", "/v1/transactions/not-a-uuid"), Resolution::NotFound);
/// ```
pub fn resolve(method: &str, raw_path: &str) -> Resolution {
    let Some(rest) = raw_path.strip_prefix('/') else {
        return Resolution::NotFound;
    };
    let Some(segments) = rest
        .split('/')
        .map(percent_decode)
        .collect::<Option<Vec<_>>>()
    else {
        return Resolution::NotFound;
    };
    let route = match segments
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["health"] => Route::Health,
        ["v1", "replication", "entries"] => Route::ReplicationEntries,
        ["v1", "transactions"] => Route::Tenant(TenantRoute::CreateTransaction),
        ["v1", "transactions", id] => match TransactionId::parse(id) {
            Some(id) => Route::Tenant(TenantRoute::GetTransaction(id)),
            None => return Resolution::NotFound,
        },
        ["v1", "accounts", id, "balances"] => match AccountId::parse(id) {
            Ok(id) => Route::Tenant(TenantRoute::GetBalances(id)),
            Err(_) => return Resolution::NotFound,
        },
        _ => return Resolution::NotFound,
    };
    let endpoint = route.endpoint();
    match method {
        m if m == endpoint.method => Resolution::Matched(route),
        "HEAD" if endpoint.method == "GET" => Resolution::Matched(route),
        "OPTIONS" => Resolution::Options(endpoint),
        _ => Resolution::MethodNotAllowed(endpoint),
    }
}

/// Decodes a segment; `None` on a malformed escape or a result that is not UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    String::from_utf8(super::percent::decode_strict(segment)?).ok()
}

/// What [`dispatchable`] decided.
#[derive(Debug)]
pub enum Dispatch {
    /// A route that does the work.
    Route(Route),
    /// Answered already (404, 405, `OPTIONS`).
    Answered(ApiResponse),
}

/// Resolves `request` to the route that does the work, or answers it when no route does: `404
/// not-found` for an unknown path, `405 method-not-allowed` with `Allow`, `OPTIONS` with `204` and
/// `Allow` (or the CloudEvents webhook handshake on the replication route). Cells and the edge router
/// both call it, so a request neither can route gets the same bytes from both.
///
/// ```
/// use paracell_domain::http::{ApiRequest, router::{dispatchable, Dispatch, Route}};
/// assert!(matches!(dispatchable(&ApiRequest::new("GET", "/health")), Dispatch::Route(Route::Health)));
/// let Dispatch::Answered(answered) = dispatchable(&ApiRequest::new("DELETE", "/health")) else { panic!() };
/// assert_eq!((answered.status, answered.header("allow")), (405, Some("GET, HEAD, OPTIONS")));
/// ```
pub fn dispatchable(request: &ApiRequest) -> Dispatch {
    let (mut response, endpoint) = match resolve(&request.method, &request.path) {
        Resolution::Matched(route) => return Dispatch::Route(route),
        Resolution::NotFound => {
            let mut response = Problem::new(ProblemType::NotFound).into_response();
            response.telemetry.route = "unmatched";
            return Dispatch::Answered(response);
        }
        Resolution::MethodNotAllowed(endpoint) => (
            Problem::new(ProblemType::MethodNotAllowed)
                .detail(format!(
                    "{} is not supported here; allowed: {}.",
                    printable(&request.method),
                    endpoint.allow
                ))
                .into_response()
                .with_header("allow", endpoint.allow),
            endpoint,
        ),
        Resolution::Options(endpoint) => (options(endpoint, request), endpoint),
    };
    response.telemetry.route = endpoint.template;
    Dispatch::Answered(response)
}

/// `OPTIONS` on a known path: `204` with `Allow`. On the replication route, a CloudEvents webhook
/// validation handshake (`WebHook-Request-Origin`, as Event Grid sends it) is answered `200` with
/// `WebHook-Allowed-Origin`, so an Event Grid subscription can deliver there.
fn options(endpoint: &'static Endpoint, request: &ApiRequest) -> ApiResponse {
    let origin = request.headers.get("webhook-request-origin");
    match origin {
        Some(origin) if endpoint.template == REPLICATION_ENTRIES.template => {
            let origin = if origin.len() <= 255 && origin.bytes().all(|b| b.is_ascii_graphic()) {
                origin.into_owned()
            } else {
                "*".to_owned()
            };
            ApiResponse::json(200, Vec::new())
                .with_header("allow", endpoint.allow)
                .with_header("webhook-allowed-origin", origin)
                .with_header("webhook-allowed-rate", "*")
        }
        _ => ApiResponse::json(204, Vec::new()).with_header("allow", endpoint.allow),
    }
}

/// A method name safe to echo in a detail: methods are tokens, anything else is not repeated back.
fn printable(method: &str) -> &str {
    if !method.is_empty()
        && method.len() <= 32
        && method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    {
        method
    } else {
        "This method"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_per_path() {
        assert_eq!(
            resolve("GET", "/health"),
            Resolution::Matched(Route::Health)
        );
        assert_eq!(
            resolve("HEAD", "/health"),
            Resolution::Matched(Route::Health)
        );
        assert_eq!(
            resolve("OPTIONS", "/v1/transactions"),
            Resolution::Options(&CREATE_TRANSACTION)
        );
        assert_eq!(
            resolve("GET", "/v1/transactions"),
            Resolution::MethodNotAllowed(&CREATE_TRANSACTION)
        );
        assert_eq!(
            resolve("HEAD", "/v1/transactions"),
            Resolution::MethodNotAllowed(&CREATE_TRANSACTION)
        );
        assert_eq!(
            resolve("get", "/health"),
            Resolution::MethodNotAllowed(&HEALTH)
        );
        assert_eq!(
            resolve(
                "DELETE",
                "/v1/transactions/01900000-0000-7000-8000-000000000001"
            ),
            Resolution::MethodNotAllowed(&GET_TRANSACTION)
        );
        assert_eq!(
            resolve("DELETE", "/v1/transactions/x"),
            Resolution::NotFound
        );
    }

    #[test]
    fn exact_paths_only() {
        for path in [
            "",
            "health",
            "/health/",
            "//health",
            "/v1/transactions//",
            "/v1/accounts//balances",
            "/v1/%zz",
            "/v1/%C3",
            "/V1/transactions",
            "/health%",
        ] {
            assert_eq!(resolve("GET", path), Resolution::NotFound, "{path:?}");
        }
        for invalid in [
            "/v1/transactions/a%2Fb",
            "/v1/accounts/caf%C3%A9/balances",
            "/v1/transactions/%80",
            "/v1/accounts/a%20b/balances",
        ] {
            assert_eq!(resolve("GET", invalid), Resolution::NotFound, "{invalid}");
        }
        assert_eq!(
            resolve("GET", "/v1/accounts/ACC%3A1/balances"),
            Resolution::Matched(Route::Tenant(TenantRoute::GetBalances(
                AccountId::parse("ACC:1").unwrap()
            )))
        );
    }
}
