/// `Content-Type` of every JSON resource. The charset is stated because the Azure Functions host
/// adds (or overwrites) exactly this parameter on payload-mode replies; saying it ourselves makes the
/// header byte-identical on every cloud.
pub const JSON: &str = "application/json; charset=utf-8";
/// `Content-Type` of every RFC 9457 problem response (see [`JSON`] for the charset).
pub const PROBLEM_JSON: &str = "application/problem+json; charset=utf-8";

/// What a request was, for logs: never sent to the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Telemetry {
    /// The route template that matched (`"GET /v1/transactions/{transaction_id}"`), or `"unmatched"`.
    pub route: &'static str,
    /// The tenant the request was resolved to, once known.
    pub tenant: Option<String>,
    /// The client's method, once the request was translated.
    pub method: Option<String>,
    /// Why the answer is a failure, when something below said why (a transport error reaching a
    /// cell, say): for logs only.
    pub cause: Option<String>,
    /// The problem type's slug, when the answer is a problem this process produced (for metrics).
    pub problem: Option<&'static str>,
    /// The request's trace (continued from the caller or started here): every log line about the
    /// request carries its trace id.
    pub trace: Option<crate::observability::trace::TraceContext>,
    /// Store operations the request made (the `store_requests` metric), when it reached the store.
    pub store_requests: Option<u32>,
}

impl Telemetry {
    /// The request's W3C trace id for log lines, `-` for an answer given before the request was read
    /// as one (an untranslatable envelope).
    pub fn trace_id(&self) -> String {
        self.trace
            .as_ref()
            .map_or_else(|| "-".to_owned(), |t| t.trace_id())
    }
}

/// A response as every platform can express it: status, headers (lower-case names, never repeated,
/// since platforms serialise repeated response headers differently), body bytes.
///
/// ```
/// use paracell_domain::http::ApiResponse;
/// let r = ApiResponse::json(200, br#"{"status":"ok"}"#.to_vec());
/// assert_eq!(r.header("Content-Type"), Some("application/json; charset=utf-8"));
/// assert_eq!(r.header("cache-control"), Some("no-store"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// For logs only.
    pub telemetry: Telemetry,
}

impl ApiResponse {
    /// A response with `content_type` and `cache-control: no-store`.
    pub fn new(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        Self {
            status,
            headers: vec![
                ("content-type".into(), content_type.into()),
                ("cache-control".into(), "no-store".into()),
            ],
            body,
            telemetry: Telemetry::default(),
        }
    }

    /// A JSON resource response.
    pub fn json(status: u16, body: Vec<u8>) -> Self {
        Self::new(status, JSON, body)
    }

    /// Sets a header, replacing any value it had (names are stored lower-case).
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        let name = name.to_ascii_lowercase();
        let value = value.into();
        match self.headers.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.headers.push((name, value)),
        }
    }

    /// Builder form of [`ApiResponse::set_header`].
    #[must_use]
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.set_header(name, value);
        self
    }

    /// Records why the answer is a failure, for logs ([`Telemetry::cause`]); never sent.
    #[must_use]
    pub fn with_cause(mut self, cause: impl Into<String>) -> Self {
        self.telemetry.cause = Some(cause.into());
        self
    }

    /// A remembered response, as it was (for idempotent replays).
    pub fn from_stored(stored: crate::idempotency::StoredResponse) -> Self {
        Self {
            status: stored.status,
            headers: stored.headers,
            body: stored.body,
            telemetry: Telemetry::default(),
        }
    }

    /// What to remember of this response for replays: status, headers and body.
    pub fn into_stored(self) -> crate::idempotency::StoredResponse {
        crate::idempotency::StoredResponse {
            status: self.status,
            headers: self.headers,
            body: self.body,
        }
    }

    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
