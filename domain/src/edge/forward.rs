//! What the router changes on the way through, and nothing more (RFC 9110 §7.6): hop-by-hop fields
//! are dropped both ways, a `Via` is added, the routing epoch is passed to the cell, and the cell's
//! answer gets the diagnostic headers. Path, query, body and every end-to-end header reach the cell
//! as received; status, body and end-to-end headers reach the client as the cell sent them.

use super::routes::Route;
use crate::contract::seam::EXPECTED_EPOCH_HEADER;
use crate::http::{ApiRequest, ApiResponse, Headers};
use crate::observability::trace::TraceContext;
use crate::ports::{OutboundRequest, OutboundResponse};
use std::time::Duration;

/// The header naming the cell that answered (diagnostics; off with `PARACELL_EDGE_DIAGNOSTICS=0`).
pub const CELL_HEADER: &str = "x-paracell-cell";
/// The header naming that cell's cloud (diagnostics, like [`CELL_HEADER`]).
pub const CLOUD_HEADER: &str = "x-paracell-cloud";

/// Fields that describe one connection, never forwarded (RFC 9110 §7.6.1, the same nine Go's
/// `httputil.ReverseProxy` removes). Fields a `Connection` header names are removed too.
pub const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "transfer-encoding",
    "upgrade",
    "trailer",
    "proxy-authenticate",
    "proxy-authorization",
];

/// Header names that are framing, which every host recomputes for the body it sends.
const FRAMING: [&str; 2] = ["content-length", "host"];

/// Whether a field is dropped: hop-by-hop, framing, or named by one of the `Connection` values.
fn dropped(name: &str, connection: &[&str]) -> bool {
    HOP_BY_HOP
        .iter()
        .chain(FRAMING.iter())
        .any(|h| h.eq_ignore_ascii_case(name))
        || connection.iter().any(|value| {
            value
                .split(',')
                .any(|token| token.trim().eq_ignore_ascii_case(name))
        })
}

fn connection_values<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<&'a str> {
    // Almost every message has no `Connection` field: no allocation then.
    pairs
        .filter(|(name, _)| name.eq_ignore_ascii_case("connection"))
        .map(|(_, value)| value)
        .collect()
}

/// The request's end-to-end headers: hop-by-hop ones, those its `Connection` header names, and the
/// framing (`Host`, `Content-Length`) removed. Applied before the tenant is read, so `Connection:
/// X-Tenant-ID` leaves the request without a tenant, exactly as a cell behind a proxy would see it.
///
/// ```
/// use paracell_domain::edge::forward::end_to_end;
/// use paracell_domain::http::ApiRequest;
/// let request = ApiRequest::new("GET", "/")
///     .with_header("Connection", "keep-alive, X-Tenant-ID")
///     .with_header("X-Tenant-ID", "coop-1")
///     .with_header("Keep-Alive", "timeout=5")
///     .with_header("Accept", "application/json");
/// let kept: Vec<_> = end_to_end(&request.headers).iter().map(|(n, _)| n.to_owned()).collect();
/// assert_eq!(kept, ["Accept"]);
/// ```
pub fn end_to_end(headers: &Headers) -> Headers {
    let connection = connection_values(headers.iter());
    let mut kept = Headers::default();
    for (name, value) in headers.iter() {
        if !dropped(name, &connection) {
            kept.append(name, value);
        }
    }
    kept
}

/// The `Via` entry this router adds (`1.1 <edge id>`).
pub fn via(edge_id: &str) -> String {
    format!("1.1 {edge_id}")
}

/// Whether the request already passed through this router: forwarding it again would loop.
pub fn is_loop(headers: &Headers, edge_id: &str) -> bool {
    headers.get_all("via").any(|value| {
        value
            .split(',')
            .any(|hop| hop.split_whitespace().nth(1) == Some(edge_id))
    })
}

/// The request to the cell: its URL is the route's base URL plus the path and query as received;
/// `Via` is extended; the routing epoch is passed unless the client pinned one itself (a client
/// that routes by its own view is held to it: the cell checks whichever it gets); `traceparent` names
/// this router's span (`trace`) as the cell's parent, `tracestate` carried on.
pub fn to_cell(
    request: &ApiRequest,
    route: &Route,
    edge_id: &str,
    timeout: Duration,
    trace: &TraceContext,
) -> OutboundRequest {
    let mut url = String::with_capacity(
        route.url.as_str().len() + request.path.len() + request.query.len() + 1,
    );
    url.push_str(route.url.as_str());
    url.push_str(&request.path);
    if !request.query.is_empty() {
        url.push('?');
        url.push_str(&request.query);
    }
    let mut headers: Vec<(String, String)> = Vec::with_capacity(request.headers.len() + 2);
    let mut via_seen = false;
    for (name, value) in request.headers.iter() {
        if name.eq_ignore_ascii_case("traceparent") || name.eq_ignore_ascii_case("tracestate") {
            continue;
        }
        if name.eq_ignore_ascii_case("via") && !via_seen {
            via_seen = true;
            headers.push((name.to_owned(), format!("{value}, {}", via(edge_id))));
        } else {
            headers.push((name.to_owned(), value.to_owned()));
        }
    }
    if !via_seen {
        headers.push(("via".to_owned(), via(edge_id)));
    }
    if request.headers.get(EXPECTED_EPOCH_HEADER).is_none() {
        headers.push((EXPECTED_EPOCH_HEADER.to_owned(), route.epoch.to_string()));
    }
    headers.push(("traceparent".to_owned(), trace.traceparent()));
    if let Some(state) = trace.tracestate() {
        headers.push(("tracestate".to_owned(), state.to_owned()));
    }
    OutboundRequest {
        method: request.method.clone(),
        url,
        headers,
        body: request.body.clone(),
        timeout,
    }
}

/// The cell's answer as the client gets it: status, body and end-to-end headers unchanged, plus the
/// diagnostic headers when `diagnostics` is on.
pub fn from_cell(response: OutboundResponse, route: &Route, diagnostics: bool) -> ApiResponse {
    let connection = connection_values(
        response
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str())),
    );
    let keep: Vec<bool> = response
        .headers
        .iter()
        .map(|(n, _)| !dropped(n, &connection))
        .collect();
    let mut headers: Vec<(String, String)> = response
        .headers
        .into_iter()
        .zip(keep)
        .filter_map(|(header, keep)| keep.then_some(header))
        .collect();
    if diagnostics {
        headers.push((CELL_HEADER.to_owned(), route.cell.as_str().to_owned()));
        headers.push((CLOUD_HEADER.to_owned(), route.cloud.as_str().to_owned()));
    }
    ApiResponse {
        status: response.status,
        headers,
        body: response.body,
        telemetry: Default::default(),
    }
}

/// Whether an answer came from a platform in front of the cell rather than from the cell: a 502, 503
/// or 504 without a problem document (an API Gateway or Functions host error, a host restart). The
/// cell always answers with `application/problem+json`, so its own 503 is never mistaken for one.
pub fn is_gateway_error(response: &OutboundResponse) -> bool {
    matches!(response.status, 502..=504)
        && !response.header("content-type").is_some_and(|ct| {
            crate::http::essence(ct).eq_ignore_ascii_case("application/problem+json")
        })
}
