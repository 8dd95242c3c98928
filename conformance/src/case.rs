//! The case format (`docs/conformance.md`): one scenario per JSON file, format version 1.

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The only format version this crate reads.
pub const FORMAT_VERSION: u32 = 1;

/// One scenario: a fresh cell per envelope, then the steps in order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Format version; `1` when omitted.
    #[serde(default = "format_v1")]
    pub format: u32,
    /// Stable id, e.g. `TX-CREATE-001`.
    pub id: String,
    /// What the case shows.
    pub title: String,
    /// Requirement ids from `docs/api.md` this case covers.
    #[serde(default)]
    pub requirements: Vec<String>,
    /// The cell each envelope gets (the primary, in a two-cell case).
    #[serde(default)]
    pub cell: CellSpec,
    /// A second cell, the standby: its presence makes this a two-cell case, run on every ordered
    /// pair of envelopes (the primary behind one, the standby behind the other).
    #[serde(default)]
    pub standby: Option<CellSpec>,
    /// Two-cell cases: at the end the standby holds exactly the primary's state (transactions,
    /// balances, idempotency records, replication positions). Default `true`.
    #[serde(default)]
    pub converged: Option<bool>,
    /// Requests, deliveries and head changes, in order.
    pub steps: Vec<Step>,
    /// JSON subset expected of the outbox's CloudEvents at the end (in process only: the reference
    /// envelope's store is read).
    #[serde(default)]
    pub expect_outbox: Option<Value>,
}

fn format_v1() -> u32 {
    FORMAT_VERSION
}

/// The cell a case runs against.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellSpec {
    /// `PARACELL_CELL_ID`; default `cell-a`.
    #[serde(default = "default_cell")]
    pub cell_id: String,
    /// Served tenants; `["*"]` for all; default `["coop-1", "coop-2"]`.
    #[serde(default = "default_tenants")]
    pub tenants: Vec<String>,
    /// `PARACELL_MAX_BODY_BYTES`; default 262144.
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    /// A store fault to inject (in process only): `store-unavailable`, `store-failure`, `panic`.
    #[serde(default)]
    pub fault: Option<Fault>,
    /// Tenant heads written before the first step (in process only): a cell that starts as a
    /// tenant's standby, frozen or fenced cell.
    #[serde(default)]
    pub heads: Vec<HeadSpec>,
}

/// A tenant head to write into a cell.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadSpec {
    /// The tenant.
    pub tenant: String,
    /// `primary`, `frozen`, `standby` or `fenced`.
    pub role: String,
    /// The epoch; default 1.
    #[serde(default = "epoch_one")]
    pub epoch: u64,
    /// The primary this cell knows; default the cell itself.
    #[serde(default)]
    pub primary: Option<String>,
    /// The head's lease, as an RFC 3339 instant (a lapsed lease: any instant in the past).
    #[serde(default)]
    pub lease_until: Option<String>,
}

fn epoch_one() -> u64 {
    1
}

/// A store fault the suite can inject, to prove that failures look the same on every cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// Every store operation reports throttling (`Retry-After: 2`).
    StoreUnavailable,
    /// Every store operation fails.
    StoreFailure,
    /// Every store operation panics.
    Panic,
}

impl Default for CellSpec {
    fn default() -> Self {
        Self {
            cell_id: default_cell(),
            tenants: default_tenants(),
            max_body_bytes: None,
            fault: None,
            heads: Vec::new(),
        }
    }
}

fn default_cell() -> String {
    "cell-a".into()
}

fn default_tenants() -> Vec<String> {
    vec!["coop-1".into(), "coop-2".into()]
}

/// One step: a client's request, a delivery of the primary's entries to the standby, or a change of
/// a cell's head (exactly one of `request`, `replicate`, `head`), and what to expect of its answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The client's request.
    #[serde(default)]
    pub request: Option<RequestSpec>,
    /// Two-cell cases: which cell the request goes to: `primary` (default), `standby`, or `both`
    /// (the standby must then answer exactly what the primary answered).
    #[serde(default)]
    pub on: Target,
    /// Two-cell cases: deliver entries of the primary's log to the standby's replication route,
    /// through the standby's envelope.
    #[serde(default)]
    pub replicate: Option<ReplicateSpec>,
    /// Two-cell cases: change a cell's head for a tenant (compare-and-set from its current head,
    /// keeping its position): promoting, freezing, fencing.
    #[serde(default)]
    pub head: Option<HeadChange>,
    /// Assertions; without them the step is checked for parity only.
    #[serde(default)]
    pub expect: Option<Expect>,
}

impl Step {
    /// A request to the (primary) cell, checked for parity only.
    pub fn request(spec: RequestSpec) -> Self {
        Self {
            request: Some(spec),
            on: Target::Primary,
            replicate: None,
            head: None,
            expect: None,
        }
    }
}

/// Which cell a two-cell case's request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The primary.
    #[default]
    Primary,
    /// The standby.
    Standby,
    /// Both; their answers must be identical.
    Both,
}

/// A delivery of the primary's entries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicateSpec {
    /// `"all"` (every entry committed so far, in commit order), or 1-based positions in that order,
    /// repeats and any order allowed.
    #[serde(default)]
    pub entries: EntrySelection,
    /// One delivery per entry instead of one batch (`expect` then applies to the last).
    #[serde(default)]
    pub each: bool,
    /// How the delivery is signed: `valid` (default), `missing`, `invalid`, `expired`, or `replay`
    /// (the previous delivery sent again, byte for byte).
    #[serde(default)]
    pub signature: SignatureMode,
}

/// Which entries a delivery carries.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum EntrySelection {
    /// `"all"`.
    All(AllMarker),
    /// Positions (1-based) in commit order.
    Some(Vec<usize>),
}

impl Default for EntrySelection {
    fn default() -> Self {
        Self::All(AllMarker::All)
    }
}

/// The word `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllMarker {
    /// Every entry.
    All,
}

/// How a delivery is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureMode {
    /// With the secret the two cells share.
    #[default]
    Valid,
    /// Without `webhook-*` headers.
    Missing,
    /// With another secret.
    Invalid,
    /// With a timestamp an hour old.
    Expired,
    /// The previous delivery, again.
    Replay,
    /// The previous delivery, again, its `webhook-signature` re-spelled (another signature listed
    /// first, other whitespace): still a replay.
    Respelled,
    /// Signed with the secret of another known peer (`cell-x`), not the entries' origin.
    Otherpeer,
}

/// A head change.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadChange {
    /// `primary` or `standby`: whose head.
    pub cell: Target,
    /// The tenant.
    pub tenant: String,
    /// The new role.
    pub role: String,
    /// The new epoch (default: unchanged).
    #[serde(default)]
    pub epoch: Option<u64>,
    /// The primary it now knows (default: itself when `primary` or `frozen`, else unchanged).
    #[serde(default)]
    pub primary: Option<String>,
}

/// A client request. Exactly one of `body`, `body_json`, `body_base64` may be given.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// Method.
    pub method: String,
    /// Path as sent on the wire, percent-encoding intact.
    pub path: String,
    /// Raw query string without `?`.
    #[serde(default)]
    pub query: String,
    /// Header lines as `[name, value]` pairs, in order; repeats allowed.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Body as UTF-8 text.
    #[serde(default)]
    pub body: Option<String>,
    /// Body as JSON (serialised compactly).
    #[serde(default)]
    pub body_json: Option<Value>,
    /// Body as base64 of arbitrary bytes.
    #[serde(default)]
    pub body_base64: Option<String>,
    /// Pads the body with trailing spaces to exactly this many bytes (size-limit cases).
    #[serde(default)]
    pub pad_to: Option<usize>,
    /// Sent with `Transfer-Encoding: chunked` instead of `Content-Length`.
    #[serde(default)]
    pub chunked: bool,
    /// A tenant the platform's authentication vouches for (API Gateway authorizer, App Service auth).
    #[serde(default)]
    pub authenticated_tenant: Option<String>,
}

/// Assertions on a response.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Status code.
    #[serde(default)]
    pub status: Option<u16>,
    /// Case-insensitive header subset: a string must match (`*`, `${name}` allowed); `null` must be absent.
    #[serde(default)]
    pub headers: BTreeMap<String, Value>,
    /// JSON subset of the body (see [`crate::matcher`]); `""` asserts an empty body.
    #[serde(default)]
    pub body: Option<Value>,
}

/// A case that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// Not JSON, or not the format.
    #[error("{file}: {message}")]
    Invalid {
        /// Where.
        file: String,
        /// Why.
        message: String,
    },
}

impl Case {
    /// Parses and checks a case file's text.
    pub fn parse(file: &str, text: &str) -> Result<Self, CaseError> {
        let invalid = |message: String| CaseError::Invalid {
            file: file.to_owned(),
            message,
        };
        let case: Case = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if case.format != FORMAT_VERSION {
            return Err(invalid(format!(
                "format {} is not supported (this suite reads format {FORMAT_VERSION})",
                case.format
            )));
        }
        if case.steps.is_empty() {
            return Err(invalid("a case needs at least one step".into()));
        }
        for (i, step) in case.steps.iter().enumerate() {
            let kinds = [
                step.request.is_some(),
                step.replicate.is_some(),
                step.head.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if kinds != 1 {
                return Err(invalid(format!(
                    "step {}: give exactly one of request, replicate, head",
                    i + 1
                )));
            }
            if case.standby.is_none()
                && (step.replicate.is_some() || step.head.is_some() || step.on != Target::Primary)
            {
                return Err(invalid(format!(
                    "step {}: replicate, head and on need a two-cell case (a standby cell)",
                    i + 1
                )));
            }
            let Some(r) = &step.request else {
                continue;
            };
            let bodies = [
                r.body.is_some(),
                r.body_json.is_some(),
                r.body_base64.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if bodies > 1 {
                return Err(invalid(format!(
                    "step {}: give at most one of body, body_json, body_base64",
                    i + 1
                )));
            }
            if let Some(b64) = &r.body_base64 {
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64)
                    .map_err(|e| invalid(format!("step {}: body_base64: {e}", i + 1)))?;
            }
        }
        Ok(case)
    }
}
