//! Domain events, written to the outbox in the same atomic commit as the state they describe.
//!
//! Each event is a CloudEvents 1.0 structured-mode JSON document, rendered here once so that every
//! store and every publisher (EventBridge, Event Grid) carries byte-identical events.

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

fn hyphenated<S: serde::Serializer>(id: &uuid::Uuid, s: S) -> Result<S::Ok, S::Error> {
    let mut buffer = uuid::Uuid::encode_buffer();
    s.serialize_str(id.hyphenated().encode_lower(&mut buffer))
}

/// The `TransactionAccepted` CloudEvent.
#[derive(Debug, serde::Serialize)]
pub struct TransactionAccepted<'a> {
    specversion: &'static str,
    #[serde(rename = "id", serialize_with = "hyphenated")]
    event_id: uuid::Uuid,
    source: String,
    #[serde(rename = "type")]
    kind: &'static str,
    subject: String,
    time: Timestamp,
    datacontenttype: &'static str,
    partitionkey: &'a TenantId,
    /// The resource exactly as the client got it (already serialised: not rendered twice).
    data: &'a serde_json::value::RawValue,
}

impl<'a> TransactionAccepted<'a> {
    /// The event for an accepted transaction; `resource` is its JSON rendering (the response body).
    ///
    /// ```
    /// # use paracell_domain::*;
    /// # let tx = paracell_domain::testing::sample_transaction();
    /// let json = serde_json::value::RawValue::from_string(String::from_utf8(tx.to_json()).unwrap()).unwrap();
    /// let event = events::TransactionAccepted::new(uuid::Uuid::nil(), &tx.cell_id.clone(), &tx, &json).into_outbox();
    /// assert!(event.document.contains("\"type\":\"dev.paracell.transaction.accepted.v1\""));
    /// ```
    pub fn new(
        event_id: uuid::Uuid,
        cell_id: &CellId,
        tx: &'a Transaction,
        resource: &'a serde_json::value::RawValue,
    ) -> Self {
        Self {
            specversion: "1.0",
            event_id,
            source: format!("/cells/{cell_id}"),
            kind: TRANSACTION_ACCEPTED,
            subject: format!("tenants/{}/accounts/{}", tx.tenant_id, tx.account_id),
            time: tx.created_at,
            datacontenttype: "application/json",
            partitionkey: &tx.tenant_id,
            data: resource,
        }
    }

    /// Renders it for the outbox.
    pub fn into_outbox(self) -> OutboxEvent {
        let document = serde_json::to_string(&self).unwrap_or_default();
        OutboxEvent {
            event_id: self.event_id,
            tenant_id: self.partitionkey.clone(),
            time: self.time,
            document,
        }
    }
}
