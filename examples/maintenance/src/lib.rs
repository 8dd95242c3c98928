//! # maintenance-requests
//!
//! A housing cooperative's maintenance requests — a workload that is not Paracell's ledger, written
//! only against Paracell's public API, to show what a team of its own does: write the service once
//! as an ordinary axum [`Router`] (any `tower::Service` would do), serve it with
//! `paracell_aws::run` on Lambda and `paracell_azure::serve` on Azure, and prove the two alike with
//! `paracell_conformance` and its own cases (`examples/maintenance/cases/`).
//!
//! | request | answer |
//! |---|---|
//! | `POST /v1/requests` `{"unit", "summary", "priority"?}` | `201` the request (`status: "open"`), `Location` |
//! | `GET /v1/requests[?status=open\|closed]` | `200` `{"items": [...]}`, oldest first |
//! | `POST /v1/requests/{id}/close` | `200` the request, closed; `404` unknown; `409` already closed |
//!
//! Every request names its cooperative in `X-Tenant-ID` (`400` without it); a cooperative sees only
//! its own requests. Refusals are RFC 9457 problems. Requests live in a [`RequestStore`]: the
//! in-memory one here ([`MemoryRequests`]); a deployment supplies its database's.
//!
//! ```
//! use maintenance_requests::{MemoryRequests, router};
//! use paracell_domain::http::{ApiRequest, HttpService, Workload};
//!
//! let workload = Workload::new("maintenance", router(MemoryRequests::shared()));
//! let created = paracell_domain::testing::block_on(workload.handle(
//!     ApiRequest::new("POST", "/v1/requests")
//!         .with_header("X-Tenant-ID", "coop-1")
//!         .with_header("Content-Type", "application/json")
//!         .with_body(br#"{"unit": "A-12", "summary": "Leaking tap"}"#.to_vec()),
//! ));
//! assert_eq!(created.status, 201);
//! assert_eq!(created.header("location"), Some("/v1/requests/req-1"));
//! ```

#![deny(missing_docs)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// How urgent a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// When convenient.
    Low,
    /// The default.
    Normal,
    /// Today (a leak, no heating).
    Urgent,
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Reported, not yet done.
    Open,
    /// Done.
    Closed,
}

/// One maintenance request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Request {
    /// Its id, unique in its cooperative.
    pub id: String,
    /// The flat or room, e.g. `A-12`.
    pub unit: String,
    /// What is wrong.
    pub summary: String,
    /// How urgent.
    pub priority: Priority,
    /// Open or closed.
    pub status: Status,
}

/// Why a store could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// No request with this id in this cooperative.
    NotFound,
    /// The request was closed before.
    AlreadyClosed,
}

/// Where a cooperative's requests live: the port a deployment implements for its database.
pub trait RequestStore: Send + Sync {
    /// Files a new open request and returns it (with its new id).
    fn create(&self, tenant: &str, unit: String, summary: String, priority: Priority) -> Request;
    /// A cooperative's requests, oldest first, optionally only those with `status`.
    fn list(&self, tenant: &str, status: Option<Status>) -> Vec<Request>;
    /// Closes an open request.
    fn close(&self, tenant: &str, id: &str) -> Result<Request, StoreError>;
}

/// Requests in process memory: ids count up per cooperative (`req-1`, `req-2`, …).
#[derive(Default)]
pub struct MemoryRequests {
    tenants: Mutex<BTreeMap<String, Vec<Request>>>,
}

impl MemoryRequests {
    /// An empty store, ready to share with [`router`].
    pub fn shared() -> Arc<dyn RequestStore> {
        Arc::new(Self::default())
    }

    fn tenants(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<Request>>> {
        // Nothing below panics half-way through a change, so a poisoned lock still holds whole data.
        self.tenants.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RequestStore for MemoryRequests {
    fn create(&self, tenant: &str, unit: String, summary: String, priority: Priority) -> Request {
        let mut tenants = self.tenants();
        let requests = tenants.entry(tenant.to_owned()).or_default();
        let request = Request {
            id: format!("req-{}", requests.len() + 1),
            unit,
            summary,
            priority,
            status: Status::Open,
        };
        requests.push(request.clone());
        request
    }

    fn list(&self, tenant: &str, status: Option<Status>) -> Vec<Request> {
        self.tenants()
            .get(tenant)
            .map(|requests| {
                requests
                    .iter()
                    .filter(|r| status.is_none_or(|s| r.status == s))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    fn close(&self, tenant: &str, id: &str) -> Result<Request, StoreError> {
        let mut tenants = self.tenants();
        let request = tenants
            .get_mut(tenant)
            .and_then(|requests| requests.iter_mut().find(|r| r.id == id))
            .ok_or(StoreError::NotFound)?;
        if request.status == Status::Closed {
            return Err(StoreError::AlreadyClosed);
        }
        request.status = Status::Closed;
        Ok(request.clone())
    }
}

/// The workload: an axum [`Router`] over `store`.
pub fn router(store: Arc<dyn RequestStore>) -> Router {
    Router::new()
        .route("/v1/requests", post(create).get(list))
        .route("/v1/requests/{id}/close", post(close))
        .fallback(|| async {
            Problem::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "No resource at this path.",
            )
        })
        .with_state(store)
}

/// A refusal, answered as an RFC 9457 problem.
#[derive(Debug)]
struct Problem {
    status: StatusCode,
    slug: &'static str,
    detail: String,
    errors: Vec<serde_json::Value>,
}

impl Problem {
    fn new(status: StatusCode, slug: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            slug,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({
            "type": format!("urn:maintenance:problem:{}", self.slug),
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if !self.errors.is_empty() {
            body["errors"] = serde_json::Value::from(self.errors);
        }
        (
            self.status,
            [(
                header::CONTENT_TYPE,
                "application/problem+json; charset=utf-8",
            )],
            body.to_string(),
        )
            .into_response()
    }
}

fn json(status: StatusCode, body: &impl Serialize) -> Result<Response, Problem> {
    let text = serde_json::to_string(body)
        .map_err(|e| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok((
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        text,
    )
        .into_response())
}

/// The cooperative a request is for: exactly one `X-Tenant-ID` of 1–64 letters, digits and `-`.
fn tenant(headers: &HeaderMap) -> Result<String, Problem> {
    let mut values = headers.get_all("x-tenant-id").iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "missing-tenant",
            "Send exactly one X-Tenant-ID header.",
        ));
    };
    match value.to_str() {
        Ok(t)
            if (1..=64).contains(&t.len())
                && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            Ok(t.to_owned())
        }
        _ => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-tenant",
            "X-Tenant-ID must be 1-64 letters, digits or hyphens.",
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRequest {
    unit: Option<String>,
    summary: Option<String>,
    priority: Option<Priority>,
}

/// A required text field of 1–`max` characters, not only spaces; else its error.
fn text_field(name: &str, value: Option<String>, max: usize) -> Result<String, serde_json::Value> {
    match value {
        Some(v) if !v.trim().is_empty() && v.chars().count() <= max => Ok(v),
        Some(_) => Err(
            serde_json::json!({"pointer": format!("/{name}"), "code": "length",
            "detail": format!("{name} must be 1-{max} characters")}),
        ),
        None => Err(
            serde_json::json!({"pointer": format!("/{name}"), "code": "required",
            "detail": format!("{name} is required")}),
        ),
    }
}

async fn create(
    State(store): State<Arc<dyn RequestStore>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let tenant = tenant(&headers)?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Send application/json.",
        ));
    }
    let new: NewRequest = serde_json::from_slice(&body).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-request",
            format!("The body is not a request: {e}"),
        )
    })?;
    let (unit, summary) = match (
        text_field("unit", new.unit, 16),
        text_field("summary", new.summary, 200),
    ) {
        (Ok(unit), Ok(summary)) => (unit, summary),
        (unit, summary) => {
            return Err(Problem {
                errors: [unit.err(), summary.err()].into_iter().flatten().collect(),
                ..Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation-failed",
                    "The request breaks the rules listed in errors.",
                )
            });
        }
    };
    let created = store.create(
        &tenant,
        unit,
        summary,
        new.priority.unwrap_or(Priority::Normal),
    );
    let mut response = json(StatusCode::CREATED, &created)?;
    if let Ok(location) = format!("/v1/requests/{}", created.id).parse() {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn list(
    State(store): State<Arc<dyn RequestStore>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, Problem> {
    let tenant = tenant(&headers)?;
    let status = match uri.query().unwrap_or_default() {
        "" => None,
        "status=open" => Some(Status::Open),
        "status=closed" => Some(Status::Closed),
        _ => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-query",
                "The only query is status=open or status=closed.",
            ));
        }
    };
    json(
        StatusCode::OK,
        &serde_json::json!({"items": store.list(&tenant, status)}),
    )
}

async fn close(
    State(store): State<Arc<dyn RequestStore>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let tenant = tenant(&headers)?;
    match store.close(&tenant, &id) {
        Ok(request) => json(StatusCode::OK, &request),
        Err(StoreError::NotFound) => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "request-not-found",
            "No request with this id in this cooperative.",
        )),
        Err(StoreError::AlreadyClosed) => Err(Problem::new(
            StatusCode::CONFLICT,
            "already-closed",
            "The request was closed before.",
        )),
    }
}
