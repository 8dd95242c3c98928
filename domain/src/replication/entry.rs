use super::{Digest, Position};
use crate::contract::json;
use crate::events::TransactionAccepted;
use crate::idempotency::{IdempotencyKey, StoredResponse};
use crate::observability::trace::TraceContext;
use crate::tenancy::{CellId, TenantId};
use crate::time::Timestamp;
use crate::transaction::Transaction;
use base64::Engine as _;
use std::borrow::Cow;
use std::fmt;

/// The format version of an entry document.
pub const ENTRY_VERSION: u64 = 1;

/// One outcome a tenant's primary committed, as its standbys need it to answer exactly as the primary
/// did: the idempotency key and fingerprint, the response the client got (status, headers, body
/// bytes), and for a booked transaction the balance version it produced and its public CloudEvent.
///
/// Entries of a tenant form a chain: entry `n` carries the digest of entry `n - 1` (`prev`), and its
/// own digest is SHA-256 of its canonical document without its trace members ([`SealedEntry`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The tenant.
    pub tenant: TenantId,
    /// Position in the tenant's log (1-based, gapless).
    pub seq: u64,
    /// The placement epoch the primary committed it in.
    pub epoch: u64,
    /// The cell that committed it.
    pub origin: CellId,
    /// The previous entry's digest ([`Digest::ZERO`] for the first).
    pub prev: Digest,
    /// When the primary committed it.
    pub time: Timestamp,
    /// The client's idempotency key.
    pub key: IdempotencyKey,
    /// The canonical command ([`crate::NewTransaction::fingerprint`]).
    pub fingerprint: String,
    /// What the client got, byte for byte: what a retry with this key replays on any cell.
    pub response: StoredResponse,
    /// What it did to the ledger.
    pub effect: Effect,
    /// The trace of the request that committed it (W3C Trace Context), so the relay and the standby's
    /// apply continue it: one trace id from the client to every replica.
    pub trace: Option<TraceContext>,
}

/// What an entry did to the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A transaction was booked: the response body is the transaction resource.
    Accepted {
        /// The version of the (account, currency) balance after this transaction.
        balance_version: u64,
        /// The public `TransactionAccepted` CloudEvent, as the primary rendered it.
        event: String,
    },
    /// A debit was refused (409 insufficient funds) and remembered for replays: no ledger change.
    Refused,
}

/// Why a document is not a valid entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid replication entry: {0}")]
pub struct EntryError(pub String);

fn invalid(what: impl fmt::Display) -> EntryError {
    EntryError(what.to_string())
}

impl Entry {
    /// Renders the canonical document: members in a fixed order, no insignificant whitespace.
    /// Rendering a parsed document gives back the same bytes, so the digest survives any transport
    /// that re-serialises JSON.
    pub fn render(&self) -> String {
        self.render_marked().0
    }

    /// The document, and where its trace members start (they come last): the entry's identity — what
    /// its digest covers — is the document without them. The trace is observability metadata: the
    /// same outcome committed under another trace is the same entry, so two cells that book the same
    /// requests agree on every digest whatever traces the requests carried.
    fn render_marked(&self) -> (String, usize) {
        let mut out = String::with_capacity(512 + self.response.body.len() * 2);
        out.push_str(r#"{"v":1,"tenant":"#);
        json::push_str(&mut out, self.tenant.as_str());
        out.push_str(r#","seq":"#);
        out.push_str(&self.seq.to_string());
        out.push_str(r#","epoch":"#);
        out.push_str(&self.epoch.to_string());
        out.push(',');
        json::push_member(&mut out, "origin", self.origin.as_str());
        out.push_str(r#","prev":""#);
        self.prev.push_hex(&mut out);
        out.push_str(r#"","time":""#);
        self.time.push_rfc3339(&mut out);
        out.push_str("\",");
        json::push_member(&mut out, "key", self.key.as_str());
        out.push(',');
        json::push_member(&mut out, "fingerprint", &self.fingerprint);
        out.push(',');
        let outcome = match self.effect {
            Effect::Accepted { .. } => "accepted",
            Effect::Refused => "refused",
        };
        json::push_member(&mut out, "outcome", outcome);
        out.push_str(r#","response":{"status":"#);
        out.push_str(&self.response.status.to_string());
        out.push_str(r#","headers":["#);
        for (i, (name, value)) in self.response.headers.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('[');
            json::push_str(&mut out, name);
            out.push(',');
            json::push_str(&mut out, value);
            out.push(']');
        }
        out.push_str("],");
        match std::str::from_utf8(&self.response.body) {
            Ok(text) => json::push_member(&mut out, "body", text),
            Err(_) => json::push_member(
                &mut out,
                "body_base64",
                &base64::engine::general_purpose::STANDARD.encode(&self.response.body),
            ),
        }
        out.push('}');
        if let Effect::Accepted {
            balance_version,
            event,
        } = &self.effect
        {
            out.push_str(r#","balance_version":"#);
            out.push_str(&balance_version.to_string());
            out.push(',');
            json::push_member(&mut out, "event", event);
        }
        let identity = out.len();
        if let Some(trace) = &self.trace {
            out.push(',');
            json::push_member(&mut out, "traceparent", &trace.traceparent());
            if let Some(state) = trace.tracestate() {
                out.push(',');
                json::push_member(&mut out, "tracestate", state);
            }
        }
        out.push('}');
        (out, identity)
    }

    /// Reads a document (canonical or not), every member through its own parser.
    pub fn parse(document: &str) -> Result<Self, EntryError> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Doc {
            v: u64,
            tenant: String,
            seq: u64,
            epoch: u64,
            origin: String,
            prev: String,
            time: String,
            key: String,
            fingerprint: String,
            outcome: String,
            response: Response,
            balance_version: Option<u64>,
            event: Option<String>,
            traceparent: Option<String>,
            tracestate: Option<String>,
        }
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Response {
            status: u16,
            headers: Vec<(String, String)>,
            body: Option<String>,
            body_base64: Option<String>,
        }
        let d: Doc = serde_json::from_str(document).map_err(invalid)?;
        if d.v != ENTRY_VERSION {
            return Err(invalid(format_args!("version {} is not supported", d.v)));
        }
        if d.seq == 0 || d.epoch == 0 {
            return Err(invalid("seq and epoch start at 1"));
        }
        let body = match (d.response.body, d.response.body_base64) {
            (Some(text), None) => text.into_bytes(),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| invalid(format_args!("response.body_base64: {e}")))?,
            _ => return Err(invalid("response needs exactly one of body, body_base64")),
        };
        let effect = match (d.outcome.as_str(), d.balance_version, d.event) {
            ("accepted", Some(balance_version), Some(event)) if balance_version > 0 => {
                Effect::Accepted {
                    balance_version,
                    event,
                }
            }
            ("refused", None, None) => Effect::Refused,
            (other, ..) => {
                return Err(invalid(format_args!(
                    "outcome {other:?} with the wrong members (accepted needs balance_version ≥ 1 and event; refused has neither)"
                )));
            }
        };
        Ok(Self {
            tenant: TenantId::parse(&d.tenant).map_err(|e| invalid(format_args!("tenant: {e}")))?,
            seq: d.seq,
            epoch: d.epoch,
            origin: CellId::parse(&d.origin).map_err(|e| invalid(format_args!("origin: {e}")))?,
            prev: Digest::parse(&d.prev).ok_or_else(|| invalid("prev is not a digest"))?,
            time: Timestamp::parse_rfc3339(&d.time).ok_or_else(|| invalid("time"))?,
            key: IdempotencyKey::parse(&d.key).map_err(|e| invalid(format_args!("key: {e}")))?,
            fingerprint: d.fingerprint,
            response: StoredResponse {
                status: d.response.status,
                headers: d.response.headers,
                body,
            },
            effect,
            trace: match (d.traceparent, d.tracestate) {
                (None, None) => None,
                (None, Some(_)) => return Err(invalid("tracestate without traceparent")),
                (Some(parent), state) => Some(
                    TraceContext::parse(&parent, state.as_deref())
                        .filter(|t| t.tracestate() == state.as_deref())
                        .ok_or_else(|| invalid("traceparent or tracestate"))?,
                ),
            },
        })
    }

    /// The trace id for log lines: the committing request's, `-` for an entry without a trace.
    pub fn trace_id(&self) -> String {
        self.trace
            .as_ref()
            .map_or_else(|| "-".to_owned(), |t| t.trace_id())
    }

    /// The booked transaction (the response body) of an accepted entry; `None` for a refusal.
    pub fn transaction(&self) -> Result<Option<Transaction>, EntryError> {
        match self.effect {
            Effect::Refused => Ok(None),
            Effect::Accepted { .. } => Transaction::from_json(&self.response.body)
                .map(Some)
                .map_err(|e| EntryError(e.to_string())),
        }
    }
}

/// An entry with its canonical document and digest, always consistent: what stores keep and what
/// travels between cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedEntry {
    entry: Entry,
    document: String,
    digest: Digest,
}

impl SealedEntry {
    /// Renders and digests an entry.
    pub fn seal(entry: Entry) -> Self {
        let (document, identity) = entry.render_marked();
        // The digest leaves the trace out (see `Entry::render_marked`): `{…identity…}`.
        let digest = Digest::of_parts(&[&document.as_bytes()[..identity], b"}"]);
        Self {
            entry,
            document,
            digest,
        }
    }

    /// Reads a stored or received document back: parsed, re-rendered canonically and digested.
    ///
    /// ```
    /// use paracell_domain::replication::SealedEntry;
    /// let sealed = paracell_domain::testing::sample_entry();
    /// let spaced = sealed.document().replacen(",", ", ", 3);
    /// let reopened = SealedEntry::open(&spaced).unwrap();
    /// assert_eq!(reopened.digest(), sealed.digest(), "whitespace does not change the digest");
    /// ```
    pub fn open(document: &str) -> Result<Self, EntryError> {
        Entry::parse(document).map(Self::seal)
    }

    /// Reads a stored document and checks it against the digest stored beside it, so a corrupted
    /// entry is never applied or relayed. What every store and stream reader calls.
    ///
    /// ```
    /// use paracell_domain::replication::{Digest, SealedEntry};
    /// let sealed = paracell_domain::testing::sample_entry();
    /// let digest = sealed.digest().to_string();
    /// assert_eq!(SealedEntry::open_checked(sealed.document(), &digest), Ok(sealed.clone()));
    /// assert!(SealedEntry::open_checked(sealed.document(), &Digest::ZERO.to_string()).is_err());
    /// ```
    pub fn open_checked(document: &str, digest: &str) -> Result<Self, EntryError> {
        let sealed = Self::open(document)?;
        if Digest::parse(digest) != Some(sealed.digest) {
            return Err(invalid(format_args!(
                "entry {} of tenant {}: the document does not match its stored digest",
                sealed.entry.seq, sealed.entry.tenant
            )));
        }
        Ok(sealed)
    }

    /// The entry.
    pub fn entry(&self) -> &Entry {
        &self.entry
    }

    /// The public CloudEvent the entry carries for the event bus, with the entry's trace
    /// (`traceparent`/`tracestate`) when it has one: `Some` for a booked transaction, `None` for a
    /// refused debit.
    pub fn event(&self) -> Option<Cow<'_, str>> {
        match (&self.entry.effect, &self.entry.trace) {
            (Effect::Accepted { event, .. }, None) => Some(Cow::Borrowed(event)),
            (Effect::Accepted { event, .. }, Some(trace)) => {
                Some(Cow::Owned(TransactionAccepted::with_trace(event, trace)))
            }
            (Effect::Refused, _) => None,
        }
    }

    /// The canonical document.
    pub fn document(&self) -> &str {
        &self.document
    }

    /// SHA-256 of the canonical document.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// The log position this entry ends at.
    pub fn position(&self) -> Position {
        Position {
            seq: self.entry.seq,
            digest: self.digest,
        }
    }

    /// The order of the relay's outbox: commit time first, then tenant and sequence number, fixed
    /// width, so text order is time order (and sequence order within a tenant at equal times). Stores
    /// that index pending entries sort by it and page with it.
    ///
    /// ```
    /// let entry = paracell_domain::testing::sample_entry();
    /// assert_eq!(entry.outbox_order(), "0000000000000000#coop-1#00000000000000000001");
    /// ```
    pub fn outbox_order(&self) -> String {
        format!(
            "{:016}#{}#{:020}",
            self.entry.time.unix_millis().max(0),
            self.entry.tenant,
            self.entry.seq
        )
    }

    /// The tenant.
    pub fn tenant(&self) -> &TenantId {
        &self.entry.tenant
    }

    /// The sequence number.
    pub fn seq(&self) -> u64 {
        self.entry.seq
    }
}
