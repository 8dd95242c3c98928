//! The public domain event, written in the same atomic commit as the state it describes.
//!
//! Each event is a CloudEvents 1.0 structured-mode JSON document, rendered here once so that every
//! store and every publisher (EventBridge, Event Grid) carries byte-identical events, and read back
//! here once so that every consumer checks it the same way.

use crate::contract::json;
use crate::observability::trace::TraceContext;
use crate::tenancy::CellId;
use crate::time::Timestamp;
use crate::transaction::Transaction;

/// CloudEvents `type` of [`TransactionAccepted`].
pub const TRANSACTION_ACCEPTED: &str = "dev.paracell.transaction.accepted.v1";

/// The `TransactionAccepted` CloudEvent: a transaction a cell booked.
///
/// Besides the CloudEvents attributes it carries two extension attributes, so consumers can order
/// what the buses deliver out of order: `tenantseq`, the position of the outcome in the tenant's
/// replication log (gapless per tenant, continued by whichever cell is the tenant's primary; refused
/// debits take positions too, without an event), and `balanceversion`, the version of the
/// (account, currency) balance the transaction produced (gapless per balance). It also carries the
/// CloudEvents distributed-tracing extension (`traceparent`, and `tracestate` when the caller sent
/// one): the trace of the request that booked it, so a consumer continues that trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionAccepted {
    /// CloudEvents `id`.
    pub event_id: uuid::Uuid,
    /// The cell that booked it (`source` is `/cells/<cell>`).
    pub source_cell: CellId,
    /// `tenantseq`: the outcome's position in the tenant's log.
    pub tenant_seq: u64,
    /// `balanceversion`: the balance's version after this transaction.
    pub balance_version: u64,
    /// The transaction resource exactly as the client got it (`data`).
    pub transaction: Transaction,
    /// The booking request's trace (`traceparent`/`tracestate`), if it had one.
    pub trace: Option<TraceContext>,
}

/// Where `data` starts in a rendered event.
const DATA: &str = r#","data":"#;

/// The CloudEvents distributed-tracing extension attributes.
fn push_trace(out: &mut String, trace: &TraceContext) {
    out.push_str(r#","traceparent":""#);
    out.push_str(&trace.traceparent());
    out.push('"');
    if let Some(state) = trace.tracestate() {
        out.push(',');
        json::push_member(out, "tracestate", state);
    }
}

/// Why a document is not a `TransactionAccepted` event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a {TRANSACTION_ACCEPTED} CloudEvent: {0}")]
pub struct EventError(String);

impl TransactionAccepted {
    /// Renders the structured-mode document. `resource` is the transaction's JSON rendering (the
    /// response body), embedded as it is rather than rendered twice.
    ///
    /// Every attribute other than `data` is an identifier, a UUID or a timestamp whose grammar has
    /// no character JSON would escape, so the document is written directly and cannot fail.
    ///
    /// ```
    /// use paracell_domain::events::TransactionAccepted;
    /// let tx = paracell_domain::testing::sample_transaction();
    /// let event = TransactionAccepted { event_id: uuid::Uuid::nil(), source_cell: tx.cell_id.clone(),
    ///     tenant_seq: 1, balance_version: 1, transaction: tx.clone(), trace: None };
    /// let document = event.render(&tx.to_json());
    /// assert!(document.contains(r#""type":"dev.paracell.transaction.accepted.v1""#));
    /// assert_eq!(TransactionAccepted::parse(&document), Ok(event));
    /// ```
    pub fn render(&self, resource: &str) -> String {
        let tx = &self.transaction;
        let mut id = uuid::Uuid::encode_buffer();
        let mut out = String::with_capacity(resource.len() + 320);
        out.push_str(r#"{"specversion":"1.0","id":""#);
        out.push_str(self.event_id.hyphenated().encode_lower(&mut id));
        out.push_str(r#"","source":"/cells/"#);
        out.push_str(self.source_cell.as_str());
        out.push_str(r#"","type":""#);
        out.push_str(TRANSACTION_ACCEPTED);
        out.push_str(r#"","subject":"tenants/"#);
        out.push_str(tx.tenant_id.as_str());
        out.push_str("/accounts/");
        out.push_str(tx.account_id.as_str());
        out.push_str(r#"","time":""#);
        out.push_str(&tx.created_at.to_string());
        out.push_str(r#"","datacontenttype":"application/json","partitionkey":""#);
        out.push_str(tx.tenant_id.as_str());
        out.push_str(r#"","tenantseq":"#);
        out.push_str(&self.tenant_seq.to_string());
        out.push_str(r#","balanceversion":"#);
        out.push_str(&self.balance_version.to_string());
        if let Some(trace) = &self.trace {
            push_trace(&mut out, trace);
        }
        out.push_str(DATA);
        out.push_str(resource);
        out.push('}');
        out
    }

    /// A rendered event (`document`, as [`TransactionAccepted::render`] wrote it without a trace)
    /// with `trace` added: what the relay publishes. Entries keep the event untraced, so the event —
    /// part of the entry's identity — is the same whatever trace booked it.
    ///
    /// ```
    /// use paracell_domain::events::TransactionAccepted;
    /// use paracell_domain::observability::trace::TraceContext;
    /// let tx = paracell_domain::testing::sample_transaction();
    /// let mut event = TransactionAccepted { event_id: uuid::Uuid::nil(), source_cell: tx.cell_id.clone(),
    ///     tenant_seq: 1, balance_version: 1, transaction: tx.clone(), trace: None };
    /// let plain = event.render(&tx.to_json());
    /// event.trace = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None);
    /// assert_eq!(TransactionAccepted::with_trace(&plain, event.trace.as_ref().unwrap()), event.render(&tx.to_json()));
    /// ```
    pub fn with_trace(document: &str, trace: &TraceContext) -> String {
        // Every attribute before `data` is an identifier, a number or a timestamp (see `render`), so
        // the first `,"data":` is the one that starts `data`.
        let Some(at) = document.find(DATA) else {
            return document.to_owned();
        };
        let mut out = String::with_capacity(document.len() + 128);
        out.push_str(&document[..at]);
        push_trace(&mut out, trace);
        out.push_str(&document[at..]);
        out
    }

    /// What consumers deduplicate on: the CloudEvent's `source` and `id`, the pair CloudEvents defines
    /// as unique. The same event published twice (a relay retry, a bus's own redelivery, a replayed
    /// dead letter) has the same key.
    ///
    /// ```
    /// use paracell_domain::events::TransactionAccepted;
    /// let tx = paracell_domain::testing::sample_transaction();
    /// let event = TransactionAccepted { event_id: uuid::Uuid::nil(), source_cell: tx.cell_id.clone(),
    ///     tenant_seq: 1, balance_version: 1, transaction: tx.clone(), trace: None };
    /// assert_eq!(event.dedupe_key(), format!("/cells/{}#00000000-0000-0000-0000-000000000000", tx.cell_id));
    /// ```
    pub fn dedupe_key(&self) -> String {
        format!("/cells/{}#{}", self.source_cell, self.event_id.hyphenated())
    }

    /// The document again, byte for byte as the cell rendered it, from what [`TransactionAccepted::parse`]
    /// read: how a consumer recovers the exact CloudEvent from a bus that re-serialises JSON
    /// (EventBridge hands `detail` over as an object).
    ///
    /// ```
    /// use paracell_domain::events::TransactionAccepted;
    /// let tx = paracell_domain::testing::sample_transaction();
    /// let document = TransactionAccepted { event_id: uuid::Uuid::nil(), source_cell: tx.cell_id.clone(),
    ///     tenant_seq: 3, balance_version: 2, transaction: tx.clone(), trace: None }.render(&tx.to_json());
    /// let reserialised = serde_json::from_str::<serde_json::Value>(&document).unwrap().to_string();
    /// let event = TransactionAccepted::parse(&reserialised).unwrap();
    /// assert_eq!(event.document(), document);
    /// ```
    pub fn document(&self) -> String {
        self.render(&self.transaction.to_json())
    }

    /// Reads an event back, every attribute through its own parser, and checks that the attributes
    /// agree with the transaction they carry. What a consumer runs on what it received.
    pub fn parse(document: &str) -> Result<Self, EventError> {
        #[derive(serde::Deserialize)]
        struct Document<'a> {
            specversion: &'a str,
            id: &'a str,
            source: &'a str,
            #[serde(rename = "type")]
            kind: &'a str,
            subject: &'a str,
            time: &'a str,
            datacontenttype: &'a str,
            partitionkey: &'a str,
            tenantseq: u64,
            balanceversion: u64,
            #[serde(default)]
            traceparent: Option<String>,
            #[serde(default)]
            tracestate: Option<String>,
            #[serde(borrow)]
            data: &'a serde_json::value::RawValue,
        }
        let bad = |what: &str| EventError(what.to_owned());
        let d: Document<'_> =
            serde_json::from_str(document).map_err(|e| EventError(e.to_string()))?;
        if d.specversion != "1.0" || d.kind != TRANSACTION_ACCEPTED {
            return Err(bad("specversion or type"));
        }
        if d.datacontenttype != "application/json" {
            return Err(bad("datacontenttype"));
        }
        let event_id = uuid::Uuid::try_parse(d.id).map_err(|_| bad("id"))?;
        let source_cell = d
            .source
            .strip_prefix("/cells/")
            .and_then(|c| CellId::parse(c).ok())
            .ok_or_else(|| bad("source"))?;
        let transaction = Transaction::from_json(d.data.get().as_bytes())
            .map_err(|e| EventError(e.to_string()))?;
        let subject = format!(
            "tenants/{}/accounts/{}",
            transaction.tenant_id, transaction.account_id
        );
        if d.subject != subject || d.partitionkey != transaction.tenant_id.as_str() {
            return Err(bad("subject or partitionkey disagree with data"));
        }
        if Timestamp::parse_rfc3339(d.time) != Some(transaction.created_at) {
            return Err(bad("time disagrees with data.created_at"));
        }
        if d.tenantseq == 0 || d.balanceversion == 0 {
            return Err(bad("tenantseq and balanceversion start at 1"));
        }
        let trace = match d.traceparent {
            None if d.tracestate.is_some() => return Err(bad("tracestate without traceparent")),
            None => None,
            Some(parent) => Some(
                TraceContext::parse(&parent, d.tracestate.as_deref())
                    .filter(|t| t.tracestate() == d.tracestate.as_deref())
                    .ok_or_else(|| bad("traceparent or tracestate"))?,
            ),
        };
        Ok(Self {
            event_id,
            source_cell,
            tenant_seq: d.tenantseq,
            balance_version: d.balanceversion,
            transaction,
            trace,
        })
    }
}
