//! The client's side: a request as a client sends it, and a response as the client receives it.

use crate::case::RequestSpec;
use crate::matcher::Captures;
use base64::Engine as _;

/// A client request, ready to be rendered into any envelope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientRequest {
    /// Method.
    pub method: String,
    /// Path as sent, percent-encoding intact.
    pub path: String,
    /// Raw query string without `?`.
    pub query: String,
    /// Header lines in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Sent chunked (no `Content-Length`).
    pub chunked: bool,
    /// A tenant the platform's authentication vouches for.
    pub authenticated_tenant: Option<String>,
}

impl ClientRequest {
    /// Builds the request of a case step, substituting captured values.
    pub fn from_spec(spec: &RequestSpec, captures: &Captures) -> Self {
        let mut body = if let Some(text) = &spec.body {
            captures.substitute(text).into_bytes()
        } else if let Some(json) = &spec.body_json {
            serde_json::to_vec(&captures.substitute_json(json)).unwrap_or_default()
        } else if let Some(b64) = &spec.body_base64 {
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        if let Some(n) = spec.pad_to {
            body.resize(n.max(body.len()), b' ');
        }
        Self {
            method: spec.method.clone(),
            path: captures.substitute(&spec.path),
            query: captures.substitute(&spec.query),
            headers: spec
                .headers
                .iter()
                .map(|(n, v)| (n.clone(), captures.substitute(v)))
                .collect(),
            body,
            chunked: spec.chunked,
            authenticated_tenant: spec
                .authenticated_tenant
                .as_ref()
                .map(|t| captures.substitute(t)),
        }
    }

    /// The first value of a header (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the body is sent as text by platforms that distinguish text from binary
    /// (a textual media type and valid UTF-8).
    pub fn body_is_text(&self) -> bool {
        let essence =
            paracell_domain::http::essence(self.header("content-type").unwrap_or_default());
        let textual = essence.starts_with("text/")
            || [
                "application/json",
                "application/xml",
                "application/javascript",
            ]
            .contains(&essence.as_str());
        textual && std::str::from_utf8(&self.body).is_ok()
    }
}

/// Headers every HTTP server or proxy sets from the message itself (RFC 9110 §6.4, §8.6, RFC 9112
/// §6.1, §9.6): they describe the transport, not the cell's answer, and each platform sets them its way.
pub const TRANSPORT_HEADERS: [&str; 5] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "date",
];

/// What a client finally receives, normalised only as `docs/conformance.md` documents: header names
/// lower-cased, header lines sorted (field order across names carries no meaning), transport headers
/// ([`TRANSPORT_HEADERS`]) left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientResponse {
    /// Status.
    pub status: u16,
    /// `(lower-case name, value)` lines, sorted.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl ClientResponse {
    /// A response with headers normalised.
    pub fn new(
        status: u16,
        headers: impl IntoIterator<Item = (String, String)>,
        body: Vec<u8>,
    ) -> Self {
        let mut headers: Vec<(String, String)> = headers
            .into_iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v))
            .filter(|(n, _)| !TRANSPORT_HEADERS.contains(&n.as_str()))
            .collect();
        headers.sort();
        Self {
            status,
            headers,
            body,
        }
    }

    /// A header's first value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).first().copied()
    }

    /// Every value of a header.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}
