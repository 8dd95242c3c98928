//! The table's item layout: one table per cell, every item addressed by a string partition key `pk`
//! and sort key `sk`.
//!
//! | item | `pk` | `sk` | other attributes |
//! |---|---|---|---|
//! | transaction | `T#{tenant}` | `TX#{transaction id}` | `doc` (the resource JSON) |
//! | balance | `T#{tenant}` | `BAL#{account}#{currency}` | `currency`, `available` (decimal text), `version` |
//! | idempotency record | `T#{tenant}` | `KEY#{key}` | `fingerprint`, `state`, `token`, `claimed_at`, `response` |
//! | outbox event | `E#{event id}` | `EVENT` | `tenant`, `time`, `document`, `outbox`, `seq` |
//!
//! Why this shape: a tenant (a housing cooperative) is small, so its transactions, balances and
//! keys share one item collection and every read is a single-partition `GetItem` or `Query`. No
//! local secondary index is defined, so the collection has no 10 GB cap, and DynamoDB splits a hot
//! partition by sort key if a large tenant ever needs it. Outbox events get one partition each,
//! because the relay marks them published by event id alone; the sparse global index `outbox`
//! (partition `outbox = "pending"`, sort `seq` = zero-padded time then event id) lists only pending
//! events, oldest first, and an event leaves it when `outbox` is removed. That index concentrates
//! the cell's unpublished backlog in one index partition: fine for one cell's write rate (a few
//! hundred creates per second per index partition), and drained continuously by the relay.
//!
//! Account ids cannot contain `#` (see `AccountId::parse`), so the `BAL#{account}#` prefix of one
//! account never matches another's balances.

use aws_sdk_dynamodb::types::AttributeValue;
use paracell_domain::events::OutboxEvent;
use paracell_domain::idempotency::{IdempotencyKey, IdempotencyRecord, KeyState, StoredResponse};
use paracell_domain::ports::BalanceSnapshot;
use paracell_domain::transaction::{AccountId, Transaction, TransactionId};
use paracell_domain::{Currency, TenantId, Timestamp};
use std::collections::HashMap;

/// An item as the SDK carries it.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// The name of the sparse global secondary index listing pending outbox events.
pub const OUTBOX_INDEX: &str = "outbox";
/// The value of `outbox` while an event is pending.
pub(crate) const PENDING: &str = "pending";
pub(crate) const IN_PROGRESS: &str = "in_progress";
pub(crate) const COMPLETED: &str = "completed";

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(crate) fn tenant_pk(tenant: &TenantId) -> AttributeValue {
    s(format!("T#{tenant}"))
}

pub(crate) fn transaction_key(tenant: &TenantId, id: TransactionId) -> Item {
    key(tenant_pk(tenant), s(format!("TX#{id}")))
}

pub(crate) fn balance_prefix(account: &AccountId) -> String {
    format!("BAL#{account}#")
}

pub(crate) fn balance_key(tenant: &TenantId, account: &AccountId, currency: Currency) -> Item {
    key(
        tenant_pk(tenant),
        s(format!("{}{}", balance_prefix(account), currency.code())),
    )
}

pub(crate) fn idempotency_key(tenant: &TenantId, k: &IdempotencyKey) -> Item {
    key(tenant_pk(tenant), s(format!("KEY#{}", k.as_str())))
}

pub(crate) fn event_key(event_id: uuid::Uuid) -> Item {
    key(s(format!("E#{}", event_id.hyphenated())), s("EVENT"))
}

fn key(pk: AttributeValue, sk: AttributeValue) -> Item {
    HashMap::from([("pk".to_owned(), pk), ("sk".to_owned(), sk)])
}

/// The outbox order: time first, then the (time-ordered) event id; fixed width so text order is time order.
pub(crate) fn outbox_seq(event: &OutboxEvent) -> String {
    format!(
        "{:016}#{}",
        event.time.unix_millis().max(0),
        event.event_id.hyphenated()
    )
}

pub(crate) fn transaction_item(tx: &Transaction) -> Result<Item, String> {
    let doc = tx.to_json();
    let mut item = transaction_key(&tx.tenant_id, tx.transaction_id);
    item.insert("doc".into(), s(doc));
    Ok(item)
}

pub(crate) fn event_item(event: &OutboxEvent) -> Item {
    let mut item = event_key(event.event_id);
    item.insert("tenant".into(), s(event.tenant_id.as_str()));
    item.insert("time".into(), n(event.time.unix_millis()));
    item.insert("document".into(), s(event.document.clone()));
    item.insert("outbox".into(), s(PENDING));
    item.insert("seq".into(), s(outbox_seq(event)));
    item
}

pub(crate) fn response_json(response: &StoredResponse) -> Result<String, String> {
    serde_json::to_string(response).map_err(|e| e.to_string())
}

/// Reading items back: every attribute through the domain's own parsers, so a corrupted item is a
/// clear store failure rather than a wrong answer.
pub(crate) struct Read<'a>(pub(crate) &'a Item);

impl Read<'_> {
    fn text(&self, name: &str) -> Result<&str, String> {
        match self.0.get(name) {
            Some(AttributeValue::S(value)) => Ok(value),
            other => Err(format!(
                "attribute {name}: expected a string, found {other:?}"
            )),
        }
    }

    fn number(&self, name: &str) -> Result<i64, String> {
        match self.0.get(name) {
            Some(AttributeValue::N(value)) => {
                value.parse().map_err(|e| format!("attribute {name}: {e}"))
            }
            other => Err(format!(
                "attribute {name}: expected a number, found {other:?}"
            )),
        }
    }

    pub(crate) fn transaction(&self) -> Result<Transaction, String> {
        Transaction::from_json(self.text("doc")?.as_bytes())
    }

    pub(crate) fn balance(&self) -> Result<BalanceSnapshot, String> {
        let currency = Currency::parse(self.text("currency")?).map_err(|e| e.to_string())?;
        Ok(BalanceSnapshot {
            currency,
            available: self
                .text("available")?
                .parse()
                .map_err(|e| format!("attribute available: {e}"))?,
            version: u64::try_from(self.number("version")?).map_err(|e| e.to_string())?,
        })
    }

    pub(crate) fn idempotency_record(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
    ) -> Result<IdempotencyRecord, String> {
        let state = match self.text("state")? {
            IN_PROGRESS => KeyState::InProgress {
                claimed_at: Timestamp::from_unix_millis(self.number("claimed_at")?),
                token: self.token()?,
            },
            COMPLETED => KeyState::Completed(
                serde_json::from_str(self.text("response")?)
                    .map_err(|e| format!("attribute response: {e}"))?,
            ),
            other => return Err(format!("attribute state: unknown {other:?}")),
        };
        Ok(IdempotencyRecord {
            tenant_id: tenant.clone(),
            key: key.clone(),
            fingerprint: self.text("fingerprint")?.to_owned(),
            state,
        })
    }

    fn token(&self) -> Result<TransactionId, String> {
        let raw = self.text("token")?;
        TransactionId::parse(raw).ok_or_else(|| format!("attribute token: {raw:?}"))
    }

    pub(crate) fn event(&self) -> Result<OutboxEvent, String> {
        let pk = self.text("pk")?;
        let event_id = pk
            .strip_prefix("E#")
            .and_then(|id| uuid::Uuid::try_parse(id).ok())
            .ok_or_else(|| format!("outbox item with key {pk:?}"))?;
        Ok(OutboxEvent {
            event_id,
            tenant_id: TenantId::parse(self.text("tenant")?).map_err(|e| e.to_string())?,
            time: Timestamp::from_unix_millis(self.number("time")?),
            document: self.text("document")?.to_owned(),
        })
    }

    pub(crate) fn seq(&self) -> Result<String, String> {
        self.text("seq").map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paracell_domain::testing::sample_transaction;

    #[test]
    fn a_transaction_item_reads_back() {
        let tx = sample_transaction();
        let item = transaction_item(&tx).unwrap();
        assert_eq!(item["sk"], s("TX#00000000-0000-0000-0000-000000000000"));
        assert_eq!(item["pk"], s("T#coop-1"));
        assert_eq!(Read(&item).transaction(), Ok(tx));
    }

    #[test]
    fn outbox_order_is_time_then_id() {
        let event = |millis, id: u128| OutboxEvent {
            event_id: uuid::Uuid::from_u128(id),
            tenant_id: TenantId::parse("coop-1").unwrap(),
            time: Timestamp::from_unix_millis(millis),
            document: "{}".into(),
        };
        let (a, b, c) = (event(9, 3), event(10, 1), event(10, 2));
        assert!(outbox_seq(&a) < outbox_seq(&b) && outbox_seq(&b) < outbox_seq(&c));
        assert_eq!(Read(&event_item(&c)).event(), Ok(c));
    }

    #[test]
    fn a_corrupted_item_is_an_error_not_a_guess() {
        let mut item = balance_key(
            &TenantId::parse("coop-1").unwrap(),
            &AccountId::parse("ACC-1").unwrap(),
            Currency::parse("EUR").unwrap(),
        );
        item.insert("currency".into(), s("EUR"));
        item.insert("available".into(), s("12.5O"));
        item.insert("version".into(), n(3));
        assert!(Read(&item).balance().unwrap_err().contains("available"));
    }
}
