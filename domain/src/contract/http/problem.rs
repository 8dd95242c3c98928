use super::{ApiResponse, PROBLEM_JSON};
use crate::contract::json;
use crate::validation::Violation;

/// Every problem the contract can answer with: one stable `type` URI, title and status each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemType {
    /// 400: the body is not JSON, or not a JSON object.
    MalformedRequest,
    /// 400: no `X-Tenant-ID`.
    MissingTenant,
    /// 400: `X-Tenant-ID` is not a valid tenant id, or conflicts with the authenticated tenant.
    InvalidTenant,
    /// 400: no `Idempotency-Key`.
    MissingIdempotencyKey,
    /// 400: `Idempotency-Key` is not 1–255 visible ASCII characters without commas.
    InvalidIdempotencyKey,
    /// 400: `Paracell-Expected-Epoch` is not a positive decimal integer.
    InvalidExpectedEpoch,
    /// 404: no such route.
    NotFound,
    /// 404: no such transaction for this tenant.
    TransactionNotFound,
    /// 404: no such account (no transactions) for this tenant.
    AccountNotFound,
    /// 405: the route exists but not with this method; see `Allow`.
    MethodNotAllowed,
    /// 409: a debit larger than the available balance.
    InsufficientFunds,
    /// 408: the request's body did not arrive within the server's body deadlines.
    RequestTimeout,
    /// 413: the body is over the cell's limit.
    PayloadTooLarge,
    /// 415: not `application/json` (with utf-8 or no charset).
    UnsupportedMediaType,
    /// 421: a valid tenant this cell does not serve.
    TenantNotInCell,
    /// 421: this cell holds the tenant but is not its primary (a standby, or fenced after a move):
    /// the problem names the primary and its epoch.
    TenantMoved,
    /// 401: a delivery between cells without a valid signature from a peer.
    ReplicationUnauthorized,
    /// 409: a signed delivery between cells that was already received.
    ReplicationReplayed,
    /// 422: the body breaks one or more rules; see `errors`.
    ValidationFailed,
    /// 422: the key was used before with a different payload.
    IdempotencyKeyReused,
    /// 500: a bug; nothing internal is revealed.
    Internal,
    /// 503: the store is throttled or unreachable; see `Retry-After`.
    StoreUnavailable,
    /// 503: the server is at its connection cap (or a peer's deliveries fill the replay window);
    /// see `Retry-After`.
    ServerBusy,
    /// 503: the tenant is being moved and its writes are paused; see `Retry-After`.
    TenantFrozen,
    /// 503: the cell's lease on the tenant lapsed and could not be renewed; see `Retry-After`.
    TenantOwnershipUnconfirmed,
    /// 404 (edge router): a valid tenant the placement registry allocates to no cell.
    TenantNotAllocated,
    /// 502 (edge router): the tenant's cell could not be reached, or answered with something that is
    /// not HTTP, after the retries that were safe.
    CellUnreachable,
    /// 503 (edge router): the tenant's cell is ejected as unhealthy, or the registry cannot be read
    /// and the tenant was never seen; see `Retry-After`.
    CellUnavailable,
    /// 504 (edge router): the tenant's cell did not answer within the request's deadline.
    CellTimeout,
}

impl ProblemType {
    /// Every problem type, for documentation checks.
    pub const ALL: [ProblemType; 29] = [
        Self::MalformedRequest,
        Self::MissingTenant,
        Self::InvalidTenant,
        Self::MissingIdempotencyKey,
        Self::InvalidIdempotencyKey,
        Self::InvalidExpectedEpoch,
        Self::NotFound,
        Self::TransactionNotFound,
        Self::AccountNotFound,
        Self::MethodNotAllowed,
        Self::InsufficientFunds,
        Self::RequestTimeout,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::TenantNotInCell,
        Self::TenantMoved,
        Self::ReplicationUnauthorized,
        Self::ReplicationReplayed,
        Self::ValidationFailed,
        Self::IdempotencyKeyReused,
        Self::Internal,
        Self::StoreUnavailable,
        Self::ServerBusy,
        Self::TenantFrozen,
        Self::TenantOwnershipUnconfirmed,
        Self::TenantNotAllocated,
        Self::CellUnreachable,
        Self::CellUnavailable,
        Self::CellTimeout,
    ];

    /// The slug in `urn:paracell:problem:<slug>`.
    pub fn slug(self) -> &'static str {
        self.describe().0
    }

    /// HTTP status.
    pub fn status(self) -> u16 {
        self.describe().1
    }

    /// The title, the same for every occurrence (RFC 9457 §3.1.3).
    pub fn title(self) -> &'static str {
        self.describe().2
    }

    /// The `type` URI (a URN: identifies the problem, is not meant to be dereferenced).
    #[must_use]
    pub fn uri(self) -> String {
        format!("urn:paracell:problem:{}", self.slug())
    }

    fn describe(self) -> (&'static str, u16, &'static str) {
        match self {
            Self::MalformedRequest => ("malformed-request", 400, "Malformed request"),
            Self::MissingTenant => ("missing-tenant", 400, "Missing tenant"),
            Self::InvalidTenant => ("invalid-tenant", 400, "Invalid tenant"),
            Self::MissingIdempotencyKey => {
                ("missing-idempotency-key", 400, "Missing idempotency key")
            }
            Self::InvalidIdempotencyKey => {
                ("invalid-idempotency-key", 400, "Invalid idempotency key")
            }
            Self::InvalidExpectedEpoch => ("invalid-expected-epoch", 400, "Invalid expected epoch"),
            Self::NotFound => ("not-found", 404, "Not found"),
            Self::TransactionNotFound => ("transaction-not-found", 404, "Transaction not found"),
            Self::AccountNotFound => ("account-not-found", 404, "Account not found"),
            Self::MethodNotAllowed => ("method-not-allowed", 405, "Method not allowed"),
            Self::InsufficientFunds => ("insufficient-funds", 409, "Insufficient funds"),
            Self::RequestTimeout => ("request-timeout", 408, "Request timeout"),
            Self::PayloadTooLarge => ("payload-too-large", 413, "Payload too large"),
            Self::UnsupportedMediaType => ("unsupported-media-type", 415, "Unsupported media type"),
            Self::TenantNotInCell => ("tenant-not-in-cell", 421, "Tenant not in this cell"),
            Self::TenantMoved => ("tenant-moved", 421, "Tenant moved"),
            Self::ReplicationUnauthorized => (
                "replication-unauthorized",
                401,
                "Replication delivery not authenticated",
            ),
            Self::ReplicationReplayed => {
                ("replication-replayed", 409, "Replication delivery replayed")
            }
            Self::ValidationFailed => ("validation-failed", 422, "Validation failed"),
            Self::IdempotencyKeyReused => ("idempotency-key-reused", 422, "Idempotency key reused"),
            Self::Internal => ("internal", 500, "Internal error"),
            Self::StoreUnavailable => ("store-unavailable", 503, "Store unavailable"),
            Self::ServerBusy => ("server-busy", 503, "Server busy"),
            Self::TenantFrozen => ("tenant-frozen", 503, "Tenant frozen"),
            Self::TenantOwnershipUnconfirmed => (
                "tenant-ownership-unconfirmed",
                503,
                "Tenant ownership unconfirmed",
            ),
            Self::TenantNotAllocated => ("tenant-not-allocated", 404, "Tenant not allocated"),
            Self::CellUnreachable => ("cell-unreachable", 502, "Cell unreachable"),
            Self::CellUnavailable => ("cell-unavailable", 503, "Cell unavailable"),
            Self::CellTimeout => ("cell-timeout", 504, "Cell timeout"),
        }
    }

    fn default_detail(self) -> &'static str {
        match self {
            Self::MalformedRequest => "The request body is not a JSON object.",
            Self::MissingTenant => "The X-Tenant-ID header is required.",
            Self::InvalidTenant => {
                "X-Tenant-ID must be 1-64 characters of [A-Za-z0-9._-], starting with a letter or digit."
            }
            Self::MissingIdempotencyKey => "The Idempotency-Key header is required.",
            Self::InvalidIdempotencyKey => {
                "Idempotency-Key must be 1-255 visible ASCII characters, without spaces or commas."
            }
            Self::InvalidExpectedEpoch => {
                "Paracell-Expected-Epoch must be a positive decimal integer (the epoch the request was routed by)."
            }
            Self::NotFound => "No resource exists at this path.",
            Self::TransactionNotFound => "No transaction with this id exists for this tenant.",
            Self::AccountNotFound => "No account with this id has transactions for this tenant.",
            Self::MethodNotAllowed => {
                "The resource does not support this method; see the Allow header."
            }
            Self::InsufficientFunds => "The debit exceeds the available balance.",
            Self::RequestTimeout => {
                "The request body did not arrive in time; nothing was done. Send it again."
            }
            Self::PayloadTooLarge => "The request body is larger than this cell accepts.",
            Self::UnsupportedMediaType => {
                "Content-Type must be application/json (charset utf-8, if given)."
            }
            Self::TenantNotInCell => {
                "This cell does not serve the tenant; route the request to the tenant's cell."
            }
            Self::TenantMoved => {
                "This cell is not the tenant's primary; send the request to the cell named in primary_cell."
            }
            Self::ReplicationUnauthorized => {
                "The delivery does not carry a valid signature from a peer cell."
            }
            Self::ReplicationReplayed => "This signed delivery was already received.",
            Self::ValidationFailed => "The request body breaks one or more rules; see errors.",
            Self::IdempotencyKeyReused => {
                "This Idempotency-Key was used with a different request payload."
            }
            Self::Internal => "An unexpected error occurred.",
            Self::StoreUnavailable => {
                "The cell's store is temporarily unavailable; retry after the indicated delay."
            }
            Self::ServerBusy => {
                "The server is at its limit of concurrent work; retry after the indicated delay."
            }
            Self::TenantFrozen => {
                "The tenant is being moved to another cell; retry after the indicated delay."
            }
            Self::TenantOwnershipUnconfirmed => {
                "This cell cannot confirm it is still the tenant's primary; retry after the indicated delay."
            }
            Self::TenantNotAllocated => "Tenant cell allocation not found.",
            Self::CellUnreachable => {
                "The tenant's cell could not be reached; nothing was booked unless a retry with the same Idempotency-Key says so."
            }
            Self::CellUnavailable => {
                "The tenant's cell is temporarily unavailable; retry after the indicated delay."
            }
            Self::CellTimeout => {
                "The tenant's cell did not answer in time; retry with the same Idempotency-Key to learn the outcome."
            }
        }
    }
}

/// An RFC 9457 problem details document.
///
/// ```
/// use paracell_domain::http::{Problem, ProblemType};
/// let r = Problem::new(ProblemType::MissingTenant).into_response();
/// assert_eq!(r.status, 400);
/// assert_eq!(r.header("content-type"), Some("application/problem+json; charset=utf-8"));
/// let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
/// assert_eq!(body["type"], "urn:paracell:problem:missing-tenant");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Problem {
    kind: ProblemType,
    detail: String,
    errors: Option<Vec<Violation>>,
    extensions: Vec<(&'static str, Extension)>,
}

/// The value of an extension member.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Extension {
    Text(String),
    Number(u64),
}

impl Problem {
    /// A problem with its default detail.
    pub fn new(kind: ProblemType) -> Self {
        Self {
            kind,
            detail: kind.default_detail().to_owned(),
            errors: None,
            extensions: Vec::new(),
        }
    }

    /// Replaces the detail (never put secrets or other tenants' data here).
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    /// Adds the `errors` extension (validation failures).
    pub fn errors(mut self, errors: Vec<Violation>) -> Self {
        self.errors = Some(errors);
        self
    }

    /// Adds the `cell_id` extension: which cell answered.
    pub fn cell(self, cell_id: &str) -> Self {
        self.text("cell_id", cell_id)
    }

    /// Adds a text extension member (`name` is one of ours, documented with the problem type).
    pub fn text(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.extensions.push((name, Extension::Text(value.into())));
        self
    }

    /// Adds a number extension member.
    pub fn number(mut self, name: &'static str, value: u64) -> Self {
        self.extensions.push((name, Extension::Number(value)));
        self
    }

    /// The HTTP status of this problem's type.
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The document, members in the order `type`, `title`, `status`, `detail`, `errors`, then the
    /// extensions in the order they were added.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(192);
        out.push_str(r#"{"type":"urn:paracell:problem:"#);
        out.push_str(self.kind.slug());
        out.push_str(r#"","title":"#);
        json::push_str(&mut out, self.kind.title());
        out.push_str(r#","status":"#);
        out.push_str(&self.kind.status().to_string());
        out.push(',');
        json::push_member(&mut out, "detail", &self.detail);
        if let Some(errors) = &self.errors {
            out.push_str(r#","errors":["#);
            for (i, v) in errors.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('{');
                json::push_member(&mut out, "pointer", &v.pointer);
                out.push(',');
                json::push_member(&mut out, "code", v.code.as_str());
                out.push(',');
                json::push_member(&mut out, "detail", &v.detail);
                out.push('}');
            }
            out.push(']');
        }
        for (name, value) in &self.extensions {
            out.push(',');
            json::push_name(&mut out, name);
            match value {
                Extension::Text(text) => json::push_str(&mut out, text),
                Extension::Number(n) => out.push_str(&n.to_string()),
            }
        }
        out.push('}');
        out
    }

    /// The response carrying this problem.
    pub fn into_response(self) -> ApiResponse {
        let mut response = ApiResponse::new(
            self.kind.status(),
            PROBLEM_JSON,
            self.to_json().into_bytes(),
        );
        response.telemetry.problem = Some(self.kind.slug());
        response
    }
}
