//! The cell: the one entry point both adapters call, and the use cases behind each route.

use crate::config::CellConfig;
use crate::events::TransactionAccepted;
use crate::http::router::{self, Resolution, Route};
use crate::http::{ApiRequest, ApiResponse, Problem, ProblemType, Telemetry, require_json};
use crate::idempotency::{IdempotencyKey, IdempotencyKeyError, KeyState, StoredResponse};
use crate::ledger::{self, LedgerError};
use crate::money;
use crate::ports::{
    BalanceUpdate, ClaimOutcome, Clock, Commit, CommitError, IdGenerator, KeyClaim, StoreError,
    TransactionStore,
};
use crate::tenancy::TenantId;
use crate::transaction::{
    AccountId, NewTransaction, Transaction, TransactionId, TransactionStatus,
};
use crate::validation::{BodyError, parse_new_transaction};
use rust_decimal::Decimal;
use std::sync::Arc;

/// How long an in-progress idempotency claim is honoured before another request may take it over
/// (the holder is presumed dead). Far longer than any single create takes.
pub const CLAIM_LEASE_MILLIS: i64 = 30_000;

/// How many times a create re-reads the balance after losing an optimistic-concurrency race before
/// answering 503.
pub const MAX_BALANCE_ATTEMPTS: usize = 64;

/// The ports a cell runs on.
#[derive(Clone)]
pub struct CellPorts {
    /// Where state lives.
    pub store: Arc<dyn TransactionStore>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Ids.
    pub ids: Arc<dyn IdGenerator>,
}

/// A cell: configuration plus ports. Cheap to clone and share across requests.
///
/// ```
/// use paracell_domain::{Cell, CellConfig, TenantScope, http::ApiRequest, testing::block_on};
/// let cell = Cell::in_memory(CellConfig::new("cell-a", TenantScope::All).unwrap());
/// let response = block_on(cell.handle(ApiRequest::new("GET", "/health")));
/// assert_eq!(response.status, 200);
/// assert_eq!(response.body, br#"{"status":"ok","cell":"cell-a"}"#);
/// ```
#[derive(Clone)]
pub struct Cell {
    config: Arc<CellConfig>,
    ports: CellPorts,
}

impl Cell {
    /// A cell on the given ports.
    pub fn new(config: CellConfig, ports: CellPorts) -> Self {
        Self {
            config: Arc::new(config),
            ports,
        }
    }

    /// A cell on an in-memory store, the system clock and UUIDv7 ids.
    #[cfg(feature = "memory")]
    pub fn in_memory(config: CellConfig) -> Self {
        Self::new(
            config,
            CellPorts {
                store: Arc::new(crate::memory::MemoryStore::new()),
                clock: Arc::new(crate::ports::SystemClock),
                ids: Arc::new(crate::ports::UuidV7),
            },
        )
    }

    /// The configuration.
    pub fn config(&self) -> &CellConfig {
        &self.config
    }

    /// The ports.
    pub fn ports(&self) -> &CellPorts {
        &self.ports
    }

    /// Answers one request. Every outcome, errors included, is a response.
    pub async fn handle(&self, request: ApiRequest) -> ApiResponse {
        let mut response = self.route(&request).await;
        if request.method == "HEAD" {
            // A HEAD answer never has content (RFC 9110 §9.3.2), whatever its status; platforms strip
            // it anyway, so the cell must not depend on them.
            response.body.clear();
        }
        response.telemetry.method = Some(request.method);
        response
    }

    async fn route(&self, request: &ApiRequest) -> ApiResponse {
        let route = match router::resolve(&request.method, &request.path) {
            // HEAD bodies are removed in `handle`, for every outcome.
            Resolution::Matched(route) => route,
            Resolution::NotFound => {
                return with_route(
                    Problem::new(ProblemType::NotFound).into_response(),
                    "unmatched",
                    None,
                );
            }
            Resolution::MethodNotAllowed(endpoint) => {
                let response = Problem::new(ProblemType::MethodNotAllowed)
                    .detail(format!(
                        "{} is not supported here; allowed: {}.",
                        printable(&request.method),
                        endpoint.allow
                    ))
                    .into_response()
                    .with_header("allow", endpoint.allow);
                return with_route(response, endpoint.template, None);
            }
            Resolution::Options(endpoint) => {
                let response =
                    ApiResponse::json(204, Vec::new()).with_header("allow", endpoint.allow);
                return with_route(response, endpoint.template, None);
            }
        };
        let endpoint = route.endpoint().template;
        let mut response = self.dispatch(route, request).await;
        response.telemetry.route = endpoint;
        response
    }

    /// The `413 payload-too-large` answer. Adapters use it only when a platform envelope is too large
    /// to even parse (it can then only carry a body over the limit); the size is not repeated because
    /// adapters stop reading a streamed body one byte past the limit.
    pub fn oversized_request(&self) -> ApiResponse {
        let limit = self.config.limits.max_body_bytes;
        Problem::new(ProblemType::PayloadTooLarge)
            .detail(format!(
                "The request body is larger than this cell accepts (at most {limit} bytes)."
            ))
            .into_response()
    }

    async fn dispatch(&self, route: Route, request: &ApiRequest) -> ApiResponse {
        if request.body.len() > self.config.limits.max_body_bytes {
            return self.oversized_request();
        }
        // /health needs no tenant (load balancers and Traffic Manager probe it); every other route does.
        let tenant = match route {
            Route::Health => {
                let body = Health {
                    status: "ok",
                    cell: self.config.cell_id.as_str(),
                };
                return ApiResponse::json(200, serde_json::to_vec(&body).unwrap_or_default());
            }
            _ => match self.tenant(request) {
                Ok(tenant) => tenant,
                Err(problem) => return problem.into_response(),
            },
        };
        let mut response = match route {
            Route::CreateTransaction => self.create(&tenant, request).await,
            Route::GetTransaction(id) => self.get_transaction(&tenant, id).await,
            Route::GetBalances(account) => self.get_balances(&tenant, account).await,
            // Answered above, before the tenant is resolved.
            Route::Health => return Problem::new(ProblemType::Internal).into_response(),
        };
        response.telemetry.tenant = Some(tenant.to_string());
        response
    }

    /// Who the request is for. A platform-authenticated tenant wins over the header; a header that
    /// disagrees with it is refused rather than ignored, so a misconfigured client fails loudly.
    fn tenant(&self, request: &ApiRequest) -> Result<TenantId, Problem> {
        let header = request.headers.get("x-tenant-id");
        let raw = match (&request.authenticated_tenant, header.as_deref()) {
            (Some(claim), Some(header)) if claim != header => {
                return Err(Problem::new(ProblemType::InvalidTenant)
                    .detail("X-Tenant-ID differs from the tenant the caller authenticated as."));
            }
            (Some(claim), _) => claim.as_str(),
            (None, Some(header)) => header,
            (None, None) => return Err(Problem::new(ProblemType::MissingTenant)),
        };
        let tenant = TenantId::parse(raw).map_err(|_| Problem::new(ProblemType::InvalidTenant))?;
        if !self.config.tenants.serves(&tenant) {
            return Err(Problem::new(ProblemType::TenantNotInCell)
                .detail(format!(
                    "Cell {} does not serve this tenant; route the request to the tenant's cell.",
                    self.config.cell_id
                ))
                .cell(self.config.cell_id.as_str()));
        }
        Ok(tenant)
    }

    async fn get_transaction(&self, tenant: &TenantId, id: TransactionId) -> ApiResponse {
        match self.ports.store.transaction(tenant, id).await {
            Ok(Some(tx)) => ApiResponse::json(200, tx.to_json()),
            Ok(None) => Problem::new(ProblemType::TransactionNotFound).into_response(),
            Err(e) => store_failure(e),
        }
    }

    async fn get_balances(&self, tenant: &TenantId, account: AccountId) -> ApiResponse {
        let mut balances = match self.ports.store.balances(tenant, &account).await {
            Ok(b) if b.is_empty() => {
                return Problem::new(ProblemType::AccountNotFound).into_response();
            }
            Ok(b) => b,
            Err(e) => return store_failure(e),
        };
        balances.sort_by_key(|b| b.currency);
        let body = Balances {
            account_id: account.as_str(),
            balances: balances
                .iter()
                .map(|b| Balance {
                    currency: b.currency.code(),
                    available: money::render(b.available, b.currency),
                })
                .collect(),
        };
        ApiResponse::json(200, serde_json::to_vec(&body).unwrap_or_default())
    }

    async fn create(&self, tenant: &TenantId, request: &ApiRequest) -> ApiResponse {
        let key = match request.headers.get("idempotency-key") {
            None => return Problem::new(ProblemType::MissingIdempotencyKey).into_response(),
            Some(raw) => match IdempotencyKey::parse(&raw) {
                Ok(key) => key,
                Err(e) => {
                    let detail = match e {
                        IdempotencyKeyError::InvalidCharacters => "Idempotency-Key must contain only visible ASCII characters, without spaces or commas (a repeated header counts as a comma-separated list).".to_owned(),
                        other => format!("Idempotency-Key {other}."),
                    };
                    return Problem::new(ProblemType::InvalidIdempotencyKey)
                        .detail(detail)
                        .into_response();
                }
            },
        };
        if let Err(e) = require_json(request.headers.get("content-type").as_deref()) {
            return Problem::new(ProblemType::UnsupportedMediaType)
                .detail(e.to_string())
                .into_response();
        }
        let command = match parse_new_transaction(&request.body) {
            Ok(command) => command,
            Err(BodyError::Malformed(detail)) => {
                return Problem::new(ProblemType::MalformedRequest)
                    .detail(detail)
                    .into_response();
            }
            Err(BodyError::Invalid(violations)) => {
                let detail = format!(
                    "The request body breaks {} rule{}; see errors.",
                    violations.len(),
                    if violations.len() == 1 { "" } else { "s" }
                );
                return Problem::new(ProblemType::ValidationFailed)
                    .detail(detail)
                    .errors(violations)
                    .into_response();
            }
        };

        let fingerprint = command.fingerprint();
        let token = TransactionId::from_uuid(self.ports.ids.next_id());
        let now = self.ports.clock.now();
        let claim = KeyClaim {
            tenant_id: tenant.clone(),
            key: key.clone(),
            fingerprint: fingerprint.clone(),
            token,
            now,
            stale_before: now.plus_millis(-CLAIM_LEASE_MILLIS),
        };
        match self.ports.store.claim_key(claim).await {
            Ok(ClaimOutcome::Claimed) => {}
            Ok(ClaimOutcome::Existing(record)) if record.fingerprint != fingerprint => {
                return Problem::new(ProblemType::IdempotencyKeyReused).into_response();
            }
            Ok(ClaimOutcome::Existing(record)) => {
                return match record.state {
                    KeyState::Completed(stored) => replay(stored),
                    KeyState::InProgress { .. } => {
                        Problem::new(ProblemType::IdempotencyKeyInUse).into_response()
                    }
                };
            }
            Err(e) => return store_failure(e),
        }

        let outcome = self.book(tenant, &key, token, command, now).await;
        if outcome.status >= 500 {
            // Nothing was written: free the key so the client's retry is processed, not refused.
            // If this fails too, the claim's lease expires on its own.
            let _ = self.ports.store.release_key(tenant, &key, token).await;
        }
        outcome
    }

    /// Books a validated command under a held key: re-reads the balance and retries when another
    /// request changed it in between (optimistic concurrency).
    async fn book(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        token: TransactionId,
        command: NewTransaction,
        now: crate::Timestamp,
    ) -> ApiResponse {
        let currency = command.currency;
        let mut event_id = None;
        for _ in 0..MAX_BALANCE_ATTEMPTS {
            let snapshot = match self
                .ports
                .store
                .balance(tenant, &command.account_id, currency)
                .await
            {
                Ok(s) => s,
                Err(e) => return store_failure(e),
            };
            let (available, version) =
                snapshot.map_or((Decimal::ZERO, 0), |s| (s.available, s.version));
            let balance_after = match ledger::apply(available, command.kind, command.amount) {
                Ok(next) => next,
                Err(LedgerError::InsufficientFunds) => {
                    let response = Problem::new(ProblemType::InsufficientFunds)
                        .detail(format!(
                            "The debit of {} {} exceeds the available {} balance of account {}.",
                            command.amount, currency, currency, command.account_id
                        ))
                        .into_response();
                    // A refused debit is an outcome: replay it for this key like a success.
                    if let Err(e) = self
                        .ports
                        .store
                        .complete_key(tenant, key, token, stored(&response))
                        .await
                    {
                        return store_failure(e);
                    }
                    return response;
                }
                Err(LedgerError::Overflow) => {
                    let violation = crate::validation::Violation {
                        pointer: "/amount".into(),
                        code: crate::validation::ViolationCode::InvalidValue,
                        detail:
                            "amount would take the balance beyond the largest representable amount"
                                .into(),
                    };
                    let _ = self.ports.store.release_key(tenant, key, token).await;
                    return Problem::new(ProblemType::ValidationFailed)
                        .errors(vec![violation])
                        .into_response();
                }
            };
            let transaction = Transaction {
                transaction_id: token,
                tenant_id: tenant.clone(),
                account_id: command.account_id.clone(),
                kind: command.kind,
                amount: command.amount,
                currency,
                reference: command.reference.clone(),
                metadata: command.metadata.clone(),
                status: TransactionStatus::Accepted,
                balance_after,
                created_at: now,
                cell_id: self.config.cell_id.clone(),
            };
            let body = transaction.to_json();
            let Ok(resource) = serde_json::value::RawValue::from_string(
                String::from_utf8_lossy(&body).into_owned(),
            ) else {
                return store_failure(StoreError::Failed(
                    "the resource did not render as JSON".into(),
                ));
            };
            let event_id = *event_id.get_or_insert_with(|| self.ports.ids.next_id());
            let event =
                TransactionAccepted::new(event_id, &self.config.cell_id, &transaction, &resource)
                    .into_outbox();
            let response = ApiResponse::json(201, body)
                .with_header("location", format!("/v1/transactions/{token}"));
            let commit = Commit {
                balance: BalanceUpdate {
                    tenant_id: tenant.clone(),
                    account_id: command.account_id.clone(),
                    currency,
                    available: balance_after,
                    expected_version: version,
                },
                transaction,
                key: key.clone(),
                token,
                response: stored(&response),
                event,
            };
            match self.ports.store.commit(commit).await {
                Ok(()) => return response,
                Err(CommitError::BalanceConflict) => continue,
                Err(CommitError::KeyNotHeld) => {
                    return Problem::new(ProblemType::IdempotencyKeyInUse).into_response();
                }
                Err(CommitError::DuplicateTransaction) => {
                    return store_failure(StoreError::Failed(format!(
                        "transaction id {token} already exists"
                    )));
                }
                Err(CommitError::Store(e)) => return store_failure(e),
            }
        }
        store_failure(StoreError::Unavailable {
            retry_after_secs: 1,
            detail: format!("balance still contended after {MAX_BALANCE_ATTEMPTS} attempts"),
        })
    }
}

#[derive(serde::Serialize)]
struct Health<'a> {
    status: &'static str,
    cell: &'a str,
}

#[derive(serde::Serialize)]
struct Balances<'a> {
    account_id: &'a str,
    balances: Vec<Balance>,
}

#[derive(serde::Serialize)]
struct Balance {
    currency: &'static str,
    available: String,
}

fn with_route(
    mut response: ApiResponse,
    route: &'static str,
    tenant: Option<String>,
) -> ApiResponse {
    response.telemetry = Telemetry {
        route,
        tenant,
        method: None,
    };
    response
}

fn stored(response: &ApiResponse) -> StoredResponse {
    StoredResponse {
        status: response.status,
        headers: response.headers.clone(),
        body: response.body.clone(),
    }
}

fn replay(stored: StoredResponse) -> ApiResponse {
    let mut response = ApiResponse {
        status: stored.status,
        headers: stored.headers,
        body: stored.body,
        telemetry: Telemetry::default(),
    };
    response.set_header("idempotent-replayed", "true");
    response
}

fn store_failure(error: StoreError) -> ApiResponse {
    match error {
        StoreError::Unavailable {
            retry_after_secs, ..
        } => Problem::new(ProblemType::StoreUnavailable)
            .into_response()
            .with_header("retry-after", retry_after_secs.max(1).to_string()),
        StoreError::Failed(_) => Problem::new(ProblemType::Internal).into_response(),
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
