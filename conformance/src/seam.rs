//! Parity at the seam, not only at the client: for every step on every envelope, the neutral request
//! the adapter handed the domain is compared with the one the direct envelope hands it, and the
//! response the client model decoded with the neutral response the domain gave. A difference is a
//! failure, unless a documented platform fact explains it (the step's parity group).
//!
//! What a client sees can hide a divergence no route reads today — a query string or a cookie
//! rebuilt differently from an event — that would surface the day a route reads it. This check
//! sees it now.
//!
//! The comparisons use the domain's own view of a request, nothing stricter:
//!
//! | part | compared as |
//! |---|---|
//! | method, path, body, authenticated tenant | exactly |
//! | query | decoded `(key, value)` pairs (`+` is a space), values in order within each key; the order *between* keys is not kept by the REST API's and ALB's maps |
//! | headers the client sent | by name, case-insensitively, as [`Headers::get`] joins a field's list elements (repeated lines and commas inside one line are the same list, RFC 9110 §5.3); `Cookie` as its `;`-separated pairs |
//! | headers the client did not send | only the platform's own ([`PLATFORM_HEADERS`]: invocation ids, the public host, framing) may appear |
//! | the response | status and body exactly; every header the domain set, with its value, in what the client decoded |

use crate::envelopes::Envelope;
use crate::request::ClientResponse;
use paracell_domain::http::percent;
use paracell_domain::http::{ApiRequest, ApiResponse, Headers};
use std::collections::BTreeMap;

/// Headers a platform adds to the request it hands the function, which the client never sent.
pub const PLATFORM_HEADERS: [&str; 5] = [
    // The Functions host's invocation headers, forwarding mode (modelled from its source).
    "x-azure-functions-invocationid",
    "x-azure-functions-hostversion",
    // The host copies the public Host and the body's length into Data.req.Headers and the
    // forwarded request (a client library sets both on the wire; the case files leave them out).
    "host",
    "content-length",
    // A chunked upload's framing, which the host writes into Data.req.Headers.
    "transfer-encoding",
];

/// What a platform does to a request before any adapter sees it, documented in
/// `../shared/notes` and modelled by the envelopes: the seam comparison applies it to the reference.
/// Each only relaxes the comparison at the seam; what the client sees is compared as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeamFact {
    /// API Gateway REST APIs hand the function a percent-decoded `path` (the raw one is not in the
    /// event): compared decoded.
    RestDecodedPath,
    /// An ALB with multi-value headers off passes the last value of a repeated query key.
    AlbLastQueryValue,
    /// The Functions host in forwarding mode rebuilds the query from its comma-joined dictionary
    /// (`?tag=a&tag=b` → `?tag=a%2Cb`): repeated keys arrive as one comma-joined value.
    HostCommaJoinedQuery,
    /// On Azure, `X-MS-CLIENT-PRINCIPAL` belongs to App Service authentication, which replaces
    /// whatever a caller sent: not compared.
    PlatformPrincipal,
}

impl SeamFact {
    /// The facts of an envelope.
    pub fn of(envelope: Envelope) -> &'static [SeamFact] {
        match envelope {
            Envelope::AwsApigwV1 => &[Self::RestDecodedPath],
            Envelope::AwsAlb => &[Self::AlbLastQueryValue],
            Envelope::AzureForwarding => &[Self::HostCommaJoinedQuery, Self::PlatformPrincipal],
            Envelope::AzurePayload => &[Self::PlatformPrincipal],
            _ => &[],
        }
    }
}

/// Why the adapter's neutral request differs from the reference, if it does, after the envelope's
/// [`SeamFact`]s.
pub fn request_difference(
    envelope: Envelope,
    reference: &ApiRequest,
    seen: &ApiRequest,
    max_body_bytes: usize,
) -> Option<String> {
    let facts = SeamFact::of(envelope);
    if reference.method != seen.method {
        return Some(format!(
            "method {:?} vs {:?}",
            reference.method, seen.method
        ));
    }
    let same_path = if facts.contains(&SeamFact::RestDecodedPath) {
        percent::decode_lossy(&reference.path) == percent::decode_lossy(&seen.path)
    } else {
        reference.path == seen.path
    };
    if !same_path {
        return Some(format!("path {:?} vs {:?}", reference.path, seen.path));
    }
    let mut q1 = query(&reference.query);
    if facts.contains(&SeamFact::AlbLastQueryValue) {
        for values in q1.values_mut() {
            values.drain(..values.len().saturating_sub(1));
        }
    }
    if facts.contains(&SeamFact::HostCommaJoinedQuery) {
        for values in q1.values_mut() {
            *values = vec![values.join(",")];
        }
    }
    let q2 = query(&seen.query);
    if q1 != q2 {
        return Some(format!(
            "query {:?} ({q1:?}) vs {:?} ({q2:?})",
            reference.query, seen.query
        ));
    }
    // An adapter stops reading one byte past the cell's limit: the domain answers 413 either way.
    let both_over = reference.body.len() > max_body_bytes && seen.body.len() > max_body_bytes;
    if reference.body != seen.body && !both_over {
        return Some(format!(
            "body ({} bytes) vs ({} bytes)",
            reference.body.len(),
            seen.body.len()
        ));
    }
    if reference.authenticated_tenant != seen.authenticated_tenant {
        return Some(format!(
            "authenticated tenant {:?} vs {:?}",
            reference.authenticated_tenant, seen.authenticated_tenant
        ));
    }
    let sent: BTreeMap<String, ()> = reference
        .headers
        .iter()
        .map(|(n, _)| (n.to_ascii_lowercase(), ()))
        .collect();
    let platform_principal = facts.contains(&SeamFact::PlatformPrincipal);
    for name in sent.keys() {
        if platform_principal && name == "x-ms-client-principal" {
            continue;
        }
        let (a, b) = (
            header(&reference.headers, name),
            header(&seen.headers, name),
        );
        if a != b {
            return Some(format!("header {name}: {a:?} vs {b:?}"));
        }
    }
    for (name, _) in seen.headers.iter() {
        let name = name.to_ascii_lowercase();
        let owned = platform_principal && name == "x-ms-client-principal";
        if !sent.contains_key(&name) && !PLATFORM_HEADERS.contains(&name.as_str()) && !owned {
            return Some(format!(
                "header {name} appeared, the client did not send it"
            ));
        }
    }
    None
}

/// Why what the client decoded differs from what the domain answered, if it does.
pub fn response_difference(domain: &ApiResponse, client: &ClientResponse) -> Option<String> {
    if domain.status != client.status {
        return Some(format!(
            "status: the domain answered {}, the client got {}",
            domain.status, client.status
        ));
    }
    if domain.body != client.body {
        return Some(format!(
            "body: the domain answered {} bytes, the client got {}",
            domain.body.len(),
            client.body.len()
        ));
    }
    for (name, value) in &domain.headers {
        let got = client.header_values(name);
        if got != [value.as_str()] {
            return Some(format!(
                "header {name}: the domain answered {value:?}, the client got {got:?}"
            ));
        }
    }
    None
}

/// A field as the domain reads it; `Cookie` as its pairs.
fn header(headers: &Headers, name: &str) -> Option<Vec<String>> {
    if name == "cookie" {
        let pairs: Vec<String> = headers
            .get_all("cookie")
            .flat_map(|line| line.split(';'))
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect();
        return (!pairs.is_empty()).then_some(pairs);
    }
    headers.get(name).map(|v| vec![v.into_owned()])
}

/// Decoded pairs, grouped by key.
fn query(raw: &str) -> BTreeMap<String, Vec<String>> {
    let mut pairs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| percent::decode_lossy(&s.replace('+', " "));
        pairs.entry(decode(k)).or_default().push(decode(v));
    }
    pairs
}
