//! Two-cell cases: a primary behind one envelope and a standby behind another, for every ordered
//! pair of envelopes (AWS→Azure, Azure→AWS, and same-cloud pairs). Deliveries of the primary's
//! replication entries go through the standby's envelope to its replication route, signed as a real
//! relay signs them; the standby's answers are compared with the primary's.
//!
//! A pair passes when every step meets its `expect`, every `both` request got identical answers from
//! the two cells, the pair's answers equal the reference pair's (`direct`→`direct`), and, unless the
//! case says `"converged": false`, the standby ends holding exactly the primary's state.

use crate::case::{Case, CellSpec, EntrySelection, HeadChange, SignatureMode, Target};
use crate::envelopes::{Envelope, Exchange};
use crate::matcher::Captures;
use crate::request::{ClientRequest, ClientResponse};
use crate::runner::{self, Backend, CaseReport, Driver, Outcome};
use paracell_domain::memory::{MemoryStore, SteppingClock};
use paracell_domain::placement::{Fence, TenantRole};
use paracell_domain::ports::TransactionStore;
use paracell_domain::replication::SealedEntry;
use paracell_domain::replication::batch::{self, BATCH_CONTENT_TYPE};
use paracell_domain::replication::signature::{PeerSecret, SignatureHeaders};
use paracell_domain::{CellConfig, CellId, TenantId};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The secret the two cells of a case share (test data, not a secret).
pub const PAIR_SECRET: &str = "whsec_cGFyYWNlbGwtY29uZm9ybWFuY2UtcGFpci1zZWNyZXQ=";
/// A third cell each cell of a pair also shares a secret with (`signature: otherpeer`).
pub const OTHER_PEER: &str = "cell-x";

/// `cell-x`'s secret.
pub const OTHER_PEER_SECRET: &str = "whsec_YW5vdGhlci1wZWVyLW9mLXRoZS1wYWlyLWNlbGwteA==";

/// A secret neither cell knows (for `"signature": "invalid"`).
pub const STRANGER_SECRET: &str = "whsec_c29tZW9uZS1lbHNlcy1zZWNyZXQtbm90LXRoZS1wYWly";

const IN_PROCESS_ONLY: &str =
    "two-cell cases run in process; `drill replication --binaries` runs the binaries";

struct Pair {
    primary: Envelope,
    standby: Envelope,
    /// Every answer the client (or the relay) got, in step order.
    answers: Vec<ClientResponse>,
    failures: Vec<String>,
}

/// Runs a two-cell case on every ordered pair of `envelopes`.
pub(crate) async fn run_pair_case(
    case: &Case,
    envelopes: &[Envelope],
    backend: &Backend,
) -> CaseReport {
    let mut report = CaseReport {
        id: case.id.clone(),
        title: case.title.clone(),
        requirements: case.requirements.clone(),
        outcomes: BTreeMap::new(),
        failures: Vec::new(),
        facts: Vec::new(),
    };
    if matches!(backend, Backend::Binaries(_)) {
        report.outcomes = envelopes
            .iter()
            .map(|e| (*e, Outcome::NotApplicable(IN_PROCESS_ONLY)))
            .collect();
        return report;
    }
    let mut pairs = Vec::new();
    for &primary in envelopes {
        for &standby in envelopes {
            pairs.push(run_pair(case, primary, standby, backend).await);
        }
    }
    // Parity: every pair's answers equal the first pair's.
    let reference = pairs
        .first()
        .map(|p| (p.primary, p.standby, p.answers.clone()));
    if let Some((rp, rs, answers)) = reference {
        for pair in pairs.iter_mut().skip(1) {
            if pair.answers.len() != answers.len() {
                continue; // a failed pair already says why
            }
            for (i, (a, b)) in answers.iter().zip(&pair.answers).enumerate() {
                if let Some(diff) = runner::difference(a, b) {
                    pair.failures.push(format!(
                        "answer {}: differs from {}→{} on {diff}",
                        i + 1,
                        rp.name(),
                        rs.name()
                    ));
                    break;
                }
            }
        }
    }
    for &envelope in envelopes {
        let mine: Vec<&Pair> = pairs.iter().filter(|p| p.primary == envelope).collect();
        let failed = mine.iter().any(|p| !p.failures.is_empty());
        report
            .outcomes
            .insert(envelope, if failed { Outcome::Fail } else { Outcome::Pass });
        for pair in mine {
            for failure in &pair.failures {
                report.failures.push(format!(
                    "{}→{}: {failure}",
                    pair.primary.name(),
                    pair.standby.name()
                ));
            }
        }
    }
    report
}

fn with_peer(spec: &CellSpec, peer: &str) -> Result<CellConfig, String> {
    let mut config = runner::cell_config(spec)?;
    let peer = CellId::parse(peer).map_err(|e| format!("peer cell id: {e}"))?;
    let other = CellId::parse(OTHER_PEER).map_err(|e| format!("peer cell id: {e}"))?;
    config.replication.secrets = vec![
        PeerSecret::parse(peer, PAIR_SECRET).map_err(|e| e.to_string())?,
        // A third cell both know, which must not deliver the pair's entries.
        PeerSecret::parse(other, OTHER_PEER_SECRET).map_err(|e| e.to_string())?,
    ];
    Ok(config)
}

/// Runs a two-cell case on one pair of envelopes, in process; the failures (empty when it passed).
///
/// ```
/// use paracell_conformance::{Case, Envelope, pairs::run_one_pair};
/// let case = Case::parse("inline", r#"{"id":"X","title":"t","standby":{"cell_id":"cell-b"},"steps":[
///   {"request":{"method":"POST","path":"/v1/transactions","headers":[["Content-Type","application/json"],
///     ["X-Tenant-ID","coop-1"],["Idempotency-Key","k"]],
///     "body_json":{"account_id":"A","type":"credit","amount":"1","currency":"EUR"}}},
///   {"replicate":{},"expect":{"status":200}}]}"#).unwrap();
/// let failures = tokio::runtime::Runtime::new().unwrap()
///     .block_on(run_one_pair(&case, Envelope::AwsApigwV1, Envelope::AzurePayload));
/// assert!(failures.is_empty(), "{failures:?}");
/// ```
pub async fn run_one_pair(case: &Case, primary: Envelope, standby: Envelope) -> Vec<String> {
    run_pair(case, primary, standby, &Backend::in_process())
        .await
        .failures
}

async fn run_pair(case: &Case, primary: Envelope, standby: Envelope, backend: &Backend) -> Pair {
    let mut pair = Pair {
        primary,
        standby,
        answers: Vec::new(),
        failures: Vec::new(),
    };
    let standby_spec = case.standby.clone().unwrap_or_default();
    let configs = with_peer(&case.cell, &standby_spec.cell_id)
        .and_then(|p| with_peer(&standby_spec, &case.cell.cell_id).map(|s| (p, s)));
    let (primary_config, standby_config) = match configs {
        Ok(c) => c,
        Err(e) => {
            pair.failures.push(e);
            return pair;
        }
    };
    let _ = backend; // in process only (checked by the caller)
    // Deterministic cells; the standby mints ids in another range, as two real cells never collide.
    let (p_cell, p_store) = paracell_domain::memory::deterministic(primary_config);
    let (s_cell, s_store) =
        paracell_domain::memory::deterministic_with_ids(standby_config, 0x0190_0000_0b0b);
    let (mut p_driver, mut s_driver) = (
        runner::driver(primary, p_cell),
        runner::driver(standby, s_cell),
    );
    for (driver, spec) in [(&p_driver, &case.cell), (&s_driver, &standby_spec)] {
        if let Err(e) = runner::seed_heads(driver, spec).await {
            pair.failures.push(e);
            return pair;
        }
    }
    let secret = |cell: &str, text: &str| {
        CellId::parse(cell)
            .ok()
            .and_then(|c| PeerSecret::parse(c, text).ok())
    };
    let (Some(signing), Some(stranger)) = (
        secret(&case.cell.cell_id, PAIR_SECRET),
        secret(&case.cell.cell_id, STRANGER_SECRET),
    ) else {
        pair.failures.push("the pair's secrets".into());
        return pair;
    };
    let mut captures = Captures::default();
    let mut last_delivery: Option<ClientRequest> = None;
    for (index, step) in case.steps.iter().enumerate() {
        let n = index + 1;
        let answer = if let Some(spec) = &step.request {
            let request = ClientRequest::from_spec(spec, &captures);
            match step.on {
                Target::Primary => exchange(&mut p_driver, primary, &request, n).await,
                Target::Standby => exchange(&mut s_driver, standby, &request, n).await,
                Target::Both => {
                    let a = exchange(&mut p_driver, primary, &request, n).await;
                    let b = exchange(&mut s_driver, standby, &request, n).await;
                    match (&a, &b) {
                        (Ok(a), Ok(b)) => {
                            if let Some(diff) = runner::difference(a, b) {
                                pair.failures.push(format!(
                                    "step {n}: the standby answered differently from the primary on {diff}"
                                ));
                            }
                        }
                        (Err(e), _) | (_, Err(e)) => pair.failures.push(format!("step {n}: {e}")),
                    }
                    a
                }
            }
        } else if let Some(spec) = &step.replicate {
            let entries = match select(&p_store, &spec.entries).await {
                Ok(entries) => entries,
                Err(e) => {
                    pair.failures.push(format!("step {n}: {e}"));
                    return pair;
                }
            };
            let batches: Vec<Vec<SealedEntry>> = if spec.each {
                entries.into_iter().map(|e| vec![e]).collect()
            } else {
                vec![entries]
            };
            let mut answer = Err("no delivery".to_owned());
            for (b, entries) in batches.into_iter().enumerate() {
                let delivery = match spec.signature {
                    SignatureMode::Replay | SignatureMode::Respelled => match &last_delivery {
                        Some(previous) if spec.signature == SignatureMode::Respelled => {
                            respelled(previous, &stranger)
                        }
                        Some(previous) => previous.clone(),
                        None => {
                            pair.failures
                                .push(format!("step {n}: nothing was delivered before to replay"));
                            return pair;
                        }
                    },
                    mode => delivery(&entries, mode, &signing, &stranger, &format!("s{n}-{b}")),
                };
                last_delivery = Some(delivery.clone());
                answer = exchange(&mut s_driver, standby, &delivery, n).await;
            }
            answer
        } else if let Some(change) = &step.head {
            let (driver, store) = match change.cell {
                Target::Standby => (&s_driver, &s_store),
                _ => (&p_driver, &p_store),
            };
            if let Err(e) = change_head(driver, store, change).await {
                pair.failures.push(format!("step {n}: {e}"));
                return pair;
            }
            continue;
        } else {
            continue;
        };
        match answer {
            Ok(response) => {
                if let Some(expect) = &step.expect
                    && let Err(e) = runner::check(expect, &response, &mut captures)
                {
                    pair.failures.push(format!("step {n}: {e}"));
                }
                pair.answers.push(response);
            }
            Err(e) => {
                pair.failures.push(format!("step {n}: {e}"));
                return pair;
            }
        }
    }
    if case.converged.unwrap_or(true) {
        let (a, b) = (ledger(&p_store), ledger(&s_store));
        if a != b {
            pair.failures.push(format!(
                "the standby's state differs from the primary's: {}",
                first_difference(&a, &b)
            ));
        }
    }
    pair
}

async fn exchange(
    driver: &mut Driver,
    envelope: Envelope,
    request: &ClientRequest,
    step: usize,
) -> Result<ClientResponse, String> {
    if let Some(reason) = envelope.not_applicable(request) {
        return Err(format!("the envelope cannot express the request: {reason}"));
    }
    match driver.exchange(envelope, request, step).await {
        Exchange::Response(r) => Ok(r),
        Exchange::NotApplicable(reason) => Err(reason.to_owned()),
        Exchange::Failed(e) => Err(e),
    }
}

/// The primary's entries in commit order (nothing is ever marked relayed here), selected.
async fn select(
    store: &MemoryStore,
    selection: &EntrySelection,
) -> Result<Vec<SealedEntry>, String> {
    let all = store
        .pending_entries(None, usize::MAX)
        .await
        .map_err(|e| e.to_string())?
        .entries;
    match selection {
        EntrySelection::All(_) => Ok(all),
        EntrySelection::Some(positions) => positions
            .iter()
            .map(|p| {
                p.checked_sub(1)
                    .and_then(|i| all.get(i))
                    .cloned()
                    .ok_or_else(|| format!("the primary has {} entries, not {p}", all.len()))
            })
            .collect(),
    }
}

/// `previous` with its signature header re-spelled: a signature that verifies nothing listed first,
/// then the original one, with other whitespace.
fn respelled(previous: &ClientRequest, stranger: &PeerSecret) -> ClientRequest {
    let mut request = previous.clone();
    let value = |name: &str| {
        request
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (id, timestamp) = (value("webhook-id"), value("webhook-timestamp"));
    let extra = stranger.sign(&id, timestamp.parse().unwrap_or(0), &request.body);
    for (name, v) in &mut request.headers {
        if name == "webhook-signature" {
            *v = format!("{extra}   {v} ");
        }
    }
    request
}

/// The request a relay sends: the CloudEvents batch, signed as `mode` says, at the suite's clock.
fn delivery(
    entries: &[SealedEntry],
    mode: SignatureMode,
    signing: &PeerSecret,
    stranger: &PeerSecret,
    id: &str,
) -> ClientRequest {
    let body = batch::render(entries);
    let now = SteppingClock::CONFORMANCE_EPOCH.unix_millis() / 1000;
    let mut headers = vec![("Content-Type".to_owned(), BATCH_CONTENT_TYPE.to_owned())];
    let signed = match mode {
        SignatureMode::Missing => None,
        SignatureMode::Invalid => Some(SignatureHeaders::sign(stranger, id, now, body.as_bytes())),
        SignatureMode::Expired => Some(SignatureHeaders::sign(
            signing,
            id,
            now - 3_600,
            body.as_bytes(),
        )),
        SignatureMode::Valid | SignatureMode::Replay | SignatureMode::Respelled => {
            Some(SignatureHeaders::sign(signing, id, now, body.as_bytes()))
        }
        SignatureMode::Otherpeer => PeerSecret::parse(
            CellId::parse(OTHER_PEER).unwrap_or_else(|_| signing.cell.clone()),
            OTHER_PEER_SECRET,
        )
        .ok()
        .map(|other| SignatureHeaders::sign(&other, id, now, body.as_bytes())),
    };
    for (name, value) in signed.iter().flat_map(SignatureHeaders::lines) {
        headers.push((name.to_owned(), value));
    }
    ClientRequest {
        method: "POST".into(),
        path: paracell_domain::replication::relay::ROUTE.into(),
        query: String::new(),
        headers,
        body: body.into_bytes(),
        chunked: false,
        authenticated_tenant: None,
    }
}

async fn change_head(
    driver: &Driver,
    store: &Arc<MemoryStore>,
    change: &HeadChange,
) -> Result<(), String> {
    let cell = driver
        .cell()
        .ok_or("head changes need an in-process cell")?;
    let tenant = TenantId::parse(&change.tenant).map_err(|e| format!("head: tenant {e}"))?;
    let role =
        TenantRole::parse(&change.role).ok_or_else(|| format!("head: role {:?}", change.role))?;
    let current = store
        .head(&tenant)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "head: cell {} has no head for {tenant}",
                cell.config().cell_id
            )
        })?;
    let primary = match (&change.primary, role) {
        (Some(p), _) => CellId::parse(p).map_err(|e| format!("head: primary {e}"))?,
        (None, TenantRole::Primary | TenantRole::Frozen) => cell.config().cell_id.clone(),
        (None, _) => current.primary.clone(),
    };
    let epoch = change.epoch.unwrap_or(current.epoch);
    let next = paracell_domain::placement::TenantHead {
        role,
        primary,
        epoch,
        epoch_start: if epoch > current.epoch {
            current.position.seq
        } else {
            current.epoch_start
        },
        ..current.clone()
    };
    let fence: Fence = current.fence();
    store
        .put_head(fence, next)
        .await
        .map_err(|e| format!("head: {e}"))
}

/// What both cells must agree on: transactions, balances, idempotency records, log positions.
pub fn ledger(store: &MemoryStore) -> serde_json::Value {
    let s = store.snapshot();
    let positions: Vec<serde_json::Value> = s["heads"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| serde_json::json!([h["tenant_id"], h["seq"], h["digest"]]))
        .collect();
    serde_json::json!({
        "transactions": s["transactions"],
        "balances": s["balances"],
        "idempotency": s["idempotency"],
        "positions": positions,
    })
}

fn first_difference(a: &serde_json::Value, b: &serde_json::Value) -> String {
    for key in ["positions", "transactions", "balances", "idempotency"] {
        if a[key] != b[key] {
            let show = |v: &serde_json::Value| {
                let text = v.to_string();
                text.chars().take(240).collect::<String>()
            };
            return format!("{key}: {} vs {}", show(&a[key]), show(&b[key]));
        }
    }
    "?".into()
}
