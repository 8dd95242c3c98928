//! The public domain event, written in the same atomic commit as the state it describes.
//!
//! Each event is a CloudEvents 1.0 structured-mode JSON document, rendered here once so that every
//! store and every publisher (EventBridge, Event Grid) carries byte-identical events, and read back
//! here once so that every consumer checks it the same way.

use crate::tenancy::{CellId, TenantId};
use crate::time::Timestamp;
use crate::transaction::Transaction;

/// CloudEvents `type` of [`TransactionAccepted`].
pub const TRANSACTION_ACCEPTED: &str = "dev.paracell.transaction.accepted.v1";

/// An event waiting in (or published from) the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// CloudEvents `id` (a UUID); with `source` it identifies the event, so consumers dedupe on it.
    pub event_id: uuid::Uuid,
    /// Partition: the tenant.
    pub tenant_id: TenantId,
    /// When it happened.
    pub time: Timestamp,
    /// The structured-mode CloudEvents JSON document.
    pub document: String,
}

/// The `TransactionAccepted` CloudEvent: a transaction a cell booked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionAccepted {
    /// CloudEvents `id`.
    pub event_id: uuid::Uuid,
    /// The cell that booked it (`source` is `/cells/<cell>`).
    pub source_cell: CellId,
    /// The transaction resource exactly as the client got it (`data`).
    pub transaction: Transaction,
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
    /// let event = TransactionAccepted { event_id: uuid::Uuid::nil(), source_cell: tx.cell_id.clone(), transaction: tx.clone() };
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
        out.push_str(r#"","data":"#);
        out.push_str(resource);
        out.push('}');
        out
    }

    /// The outbox record of this event.
    pub fn into_outbox(self, resource: &str) -> OutboxEvent {
        OutboxEvent {
            document: self.render(resource),
            event_id: self.event_id,
            tenant_id: self.transaction.tenant_id,
            time: self.transaction.created_at,
        }
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
        let transaction = Transaction::from_json(d.data.get().as_bytes()).map_err(EventError)?;
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
        Ok(Self {
            event_id,
            source_cell,
            transaction,
        })
    }
}
