//! The HTTP seam: the one place where a request becomes a domain command and a domain result
//! becomes a status, a problem type, headers and a body. Every caller (the cell, the relay, the
//! router) goes through it, so a rule about what a client sees is written once.

use crate::contract::json;
use crate::contract::validation::{BodyError, parse_new_transaction};
use crate::http::{ApiRequest, ApiResponse, Problem, ProblemType, require_json};
use crate::idempotency::{IdempotencyKey, IdempotencyKeyError, StoredResponse};
use crate::ledger::create::{CreateCommand, CreateError, Created, InsufficientFunds};
use crate::observability::trace::TraceContext;
use crate::placement::{TenantHead, TenantRole};
use crate::ports::{BalanceSnapshot, StoreError};
use crate::replication::batch::{self, EntryResult};
use crate::replication::signature::AuthError;
use crate::tenancy::{CellId, TenantId};
use crate::transaction::{AccountId, Transaction};

// ---- requests → commands -------------------------------------------------------------------

/// The create command a request carries, checked in the contract's order: `Idempotency-Key`,
/// `Paracell-Expected-Epoch` (optional), `Content-Type`, then the body. `trace` is the request's
/// trace context, which the committed entry and event carry on.
pub fn create_command(
    tenant: TenantId,
    request: &ApiRequest,
    trace: &TraceContext,
) -> Result<CreateCommand, Problem> {
    let key = match request.headers.get("idempotency-key") {
        None => return Err(Problem::new(ProblemType::MissingIdempotencyKey)),
        Some(raw) => IdempotencyKey::parse(&raw).map_err(|e| {
            let detail = match e {
                IdempotencyKeyError::InvalidCharacters => "Idempotency-Key must contain only visible ASCII characters, without spaces or commas (a repeated header counts as a comma-separated list).".to_owned(),
                other => format!("Idempotency-Key {other}."),
            };
            Problem::new(ProblemType::InvalidIdempotencyKey).detail(detail)
        })?,
    };
    let expected_epoch = match request.headers.get(EXPECTED_EPOCH_HEADER) {
        None => None,
        Some(raw) => {
            Some(parse_epoch(&raw).ok_or_else(|| Problem::new(ProblemType::InvalidExpectedEpoch))?)
        }
    };
    require_json(request.headers.get("content-type").as_deref())
        .map_err(|e| Problem::new(ProblemType::UnsupportedMediaType).detail(e.to_string()))?;
    let command = parse_new_transaction(&request.body).map_err(|e| match e {
        BodyError::Malformed(detail) => Problem::new(ProblemType::MalformedRequest).detail(detail),
        BodyError::Invalid(violations) => {
            let detail = format!(
                "The request body breaks {} rule{}; see errors.",
                violations.len(),
                if violations.len() == 1 { "" } else { "s" }
            );
            Problem::new(ProblemType::ValidationFailed)
                .detail(detail)
                .errors(violations)
        }
    })?;
    Ok(CreateCommand {
        tenant,
        key,
        command,
        expected_epoch,
        trace: trace.clone(),
    })
}

/// The header a router sets to the epoch of the placement it routed a write by: the cell refuses the
/// write with `421 tenant-moved` unless its own placement of the tenant is at that epoch (checked
/// again inside the commit), so a router's stale cache can never make a write land on the wrong cell.
pub const EXPECTED_EPOCH_HEADER: &str = "paracell-expected-epoch";

/// A positive decimal epoch: digits only, no sign, no leading zero, within `u64`.
///
/// ```
/// use paracell_domain::contract::seam::parse_epoch;
/// assert_eq!(parse_epoch("7"), Some(7));
/// for bad in ["0", "07", "+7", "7 ", "", "x", "18446744073709551616"] {
///     assert_eq!(parse_epoch(bad), None, "{bad:?}");
/// }
/// ```
pub fn parse_epoch(raw: &str) -> Option<u64> {
    if raw.is_empty() || raw.starts_with('0') || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok()
}

// ---- results → responses ------------------------------------------------------------------

/// `GET /health`: `{"status":"ok","cell":"<cell>"}`.
pub fn health(cell: &CellId) -> ApiResponse {
    let mut body = String::with_capacity(40);
    body.push_str(r#"{"status":"ok","cell":"#);
    json::push_str(&mut body, cell.as_str());
    body.push('}');
    ApiResponse::json(200, body.into_bytes())
}

/// The answer to a create on `cell`.
pub fn created(cell: &CellId, result: Result<Created, CreateError>) -> ApiResponse {
    match result {
        Ok(Created::Replayed(stored)) => replay(stored),
        Ok(Created::Booked { response, .. } | Created::Refused { response, .. }) => {
            ApiResponse::from_stored(response)
        }
        Err(CreateError::KeyReused) => {
            Problem::new(ProblemType::IdempotencyKeyReused).into_response()
        }
        Err(CreateError::Overflow) => {
            let violation = crate::validation::Violation {
                pointer: "/amount".into(),
                code: crate::validation::ViolationCode::InvalidValue,
                detail: "amount would take the balance beyond the largest representable amount"
                    .into(),
            };
            Problem::new(ProblemType::ValidationFailed)
                .errors(vec![violation])
                .into_response()
        }
        Err(CreateError::NotPrimary(head)) => not_primary(cell, &head),
        Err(CreateError::OwnershipUnconfirmed(head)) => {
            Problem::new(ProblemType::TenantOwnershipUnconfirmed)
                .cell(cell.as_str())
                .number("epoch", head.epoch)
                .into_response()
                .with_header("retry-after", "1")
                .with_cause(format!(
                    "the lease on the tenant (epoch {}) lapsed and could not be renewed from the placement source",
                    head.epoch
                ))
        }
        Err(CreateError::CommitPastLease { epoch, seq }) => {
            Problem::new(ProblemType::TenantOwnershipUnconfirmed)
                .cell(cell.as_str())
                .number("epoch", epoch)
                .into_response()
                .with_header("retry-after", "1")
                .with_cause(format!(
                    "commit-past-lease: entry {seq} (epoch {epoch}) returned after the cell lease's deadline; committed here, not acknowledged; a retry under the same key replays it here, or reconciliation reports it if the tenant moved"
                ))
        }
        Err(CreateError::StaleEpoch { expected, head }) => stale_epoch(cell, expected, &head),
        Err(CreateError::Store(e)) => store_failure(&e),
    }
}

/// A write to a cell that holds the tenant but is not its primary: `421 tenant-moved` naming the
/// primary and epoch (a standby, a fenced cell), or `503 tenant-frozen` while a move is under way.
/// Neither wrote anything, so the same request may go elsewhere.
pub fn not_primary(cell: &CellId, head: &TenantHead) -> ApiResponse {
    match head.role {
        TenantRole::Frozen => Problem::new(ProblemType::TenantFrozen)
            .cell(cell.as_str())
            .number("epoch", head.epoch)
            .into_response()
            .with_header("retry-after", "1")
            .with_cause(format!(
                "the tenant is frozen by a move (epoch {}): writes wait for it",
                head.epoch
            )),
        TenantRole::Primary | TenantRole::Standby | TenantRole::Fenced => {
            Problem::new(ProblemType::TenantMoved)
                .detail(format!(
                    "Cell {cell} is {} for this tenant; its primary is cell {} (epoch {}).",
                    head.role, head.primary, head.epoch
                ))
                .cell(cell.as_str())
                .text("primary_cell", head.primary.as_str())
                .number("epoch", head.epoch)
                .into_response()
        }
    }
}

/// A write routed by another epoch than the cell's placement of the tenant: `421 tenant-moved`
/// naming the primary and epoch this cell knows, so the router refreshes its entry. Nothing was
/// written and the key was not claimed.
pub fn stale_epoch(cell: &CellId, expected: u64, head: &TenantHead) -> ApiResponse {
    Problem::new(ProblemType::TenantMoved)
        .detail(format!(
            "The request was routed by epoch {expected}; cell {cell} holds the tenant at epoch {} as {}, with primary cell {}.",
            head.epoch, head.role, head.primary
        ))
        .cell(cell.as_str())
        .text("primary_cell", head.primary.as_str())
        .number("epoch", head.epoch)
        .into_response()
}

/// A replication delivery that failed authentication: `401 replication-unauthorized` (with a
/// `WWW-Authenticate` challenge naming the scheme), `409 replication-replayed`, or `503 server-busy`
/// when the replay window is full (the sender retries).
pub fn replication_unauthorized(error: &AuthError) -> ApiResponse {
    match error {
        AuthError::Replayed => Problem::new(ProblemType::ReplicationReplayed).into_response(),
        AuthError::Busy => Problem::new(ProblemType::ServerBusy)
            .detail(format!("{}.", capitalised(&error.to_string())))
            .into_response()
            .with_header("retry-after", "1"),
        other => Problem::new(ProblemType::ReplicationUnauthorized)
            .detail(format!("{}.", capitalised(&other.to_string())))
            .into_response()
            .with_header(
                "www-authenticate",
                "Webhook-Signature realm=\"paracell-replication\"",
            ),
    }
}

/// The answer to a replication delivery: `200` with one result per entry.
pub fn replication_results(results: &[EntryResult]) -> ApiResponse {
    ApiResponse::json(200, batch::render_results(results).into_bytes())
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The `201` of a booked transaction: `Location` and the resource (`body`, already rendered).
pub fn booked(transaction: &Transaction, body: String) -> ApiResponse {
    ApiResponse::json(201, body.into_bytes()).with_header(
        "location",
        format!("/v1/transactions/{}", transaction.transaction_id),
    )
}

/// The `409 insufficient-funds` of a refused debit.
pub fn insufficient_funds(refusal: &InsufficientFunds) -> ApiResponse {
    let currency = refusal.amount.currency();
    Problem::new(ProblemType::InsufficientFunds)
        .detail(format!(
            "The debit of {} {} exceeds the available {} balance of account {}.",
            refusal.amount, currency, currency, refusal.account_id
        ))
        .into_response()
}

/// A stored outcome replayed: its bytes, plus `Idempotent-Replayed: true`.
pub fn replay(stored: StoredResponse) -> ApiResponse {
    let mut response = ApiResponse::from_stored(stored);
    response.set_header("idempotent-replayed", "true");
    response
}

/// The answer to `GET /v1/transactions/{id}`.
pub fn transaction(result: Result<Option<Transaction>, StoreError>) -> ApiResponse {
    match result {
        Ok(Some(tx)) => ApiResponse::json(200, tx.to_json().into_bytes()),
        Ok(None) => Problem::new(ProblemType::TransactionNotFound).into_response(),
        Err(e) => store_failure(&e),
    }
}

/// The answer to `GET /v1/accounts/{id}/balances` (balances already sorted).
pub fn balances(
    account: &AccountId,
    result: Result<Vec<BalanceSnapshot>, StoreError>,
) -> ApiResponse {
    let balances = match result {
        Ok(b) if b.is_empty() => return Problem::new(ProblemType::AccountNotFound).into_response(),
        Ok(b) => b,
        Err(e) => return store_failure(&e),
    };
    let mut body = String::with_capacity(48 + 48 * balances.len());
    body.push('{');
    json::push_member(&mut body, "account_id", account.as_str());
    body.push_str(r#","balances":["#);
    for (i, b) in balances.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push('{');
        json::push_member(&mut body, "currency", b.currency.code());
        body.push(',');
        json::push_member(
            &mut body,
            "available",
            &crate::money::render(b.available, b.currency),
        );
        body.push('}');
    }
    body.push_str("]}");
    ApiResponse::json(200, body.into_bytes())
}

/// A store failure: `503 store-unavailable` with `Retry-After`, or `500 internal`.
pub fn store_failure(error: &StoreError) -> ApiResponse {
    let response = match error {
        StoreError::Unavailable {
            retry_after_secs, ..
        } => Problem::new(ProblemType::StoreUnavailable)
            .into_response()
            .with_header("retry-after", (*retry_after_secs).max(1).to_string()),
        StoreError::Failed(_) => Problem::new(ProblemType::Internal).into_response(),
    };
    // The store's detail (SDK error code, status, request id) is for the operator, never the client.
    response.with_cause(error.to_string())
}
