//! The table's item layout: one table per cell, every item addressed by a string partition key `pk`
//! and sort key `sk`.
//!
//! | item | `pk` | `sk` | other attributes |
//! |---|---|---|---|
//! | tenant head | `T#{tenant}` | `HEAD` | `role`, `epoch`, `primary`, `seq` (number), `digest`, `epoch_start`, `lease_until` (unix ms, heads under a lease only) |
//! | replication entry | `T#{tenant}` | `SEQ#{seq, 20 digits}` | `doc` (the entry document), `digest`; while pending relay also `outbox`, `outbox_order` |
//! | transaction | `T#{tenant}` | `TX#{transaction id}` | `doc` (the resource JSON) |
//! | balance | `T#{tenant}` | `BAL#{account}#{currency}` | `currency`, `available` (decimal text), `version` |
//! | idempotency record | `T#{tenant}` | `KEY#{key}` | `fingerprint`, `state`, `token`, `claimed_at`, `response` |
//!
//! Why this shape: a tenant (a housing cooperative) is small, so everything of it shares one item
//! collection, every read is a single-partition `GetItem` or `Query`, and every commit is one
//! `TransactWriteItems` inside that collection. No local secondary index is defined, so the
//! collection has no 10 GB cap, and DynamoDB splits a hot partition by sort key if a large tenant
//! ever needs it. Entries sort by zero-padded sequence number, so "the entries after n" is one
//! range query.
//!
//! The sparse global index `outbox` (partition `outbox = "pending"`, sort `outbox_order` =
//! zero-padded time, tenant, sequence number) lists only entries committed here and not yet
//! relayed, oldest first; an entry leaves it when `outbox` is removed. Received entries (a standby's)
//! never carry `outbox`, so they are never relayed again, and the stream relay skips them by the same
//! attribute. That index concentrates the cell's unrelayed backlog in one index partition: fine for
//! one cell's write rate (a few hundred creates per second per index partition), and drained
//! continuously by the relay.
//!
//! Account ids cannot contain `#` (see `AccountId::parse`), so the `BAL#{account}#` prefix of one
//! account never matches another's balances.

use aws_sdk_dynamodb::types::AttributeValue;
use paracell_domain::CellId;
use paracell_domain::idempotency::{
    IdempotencyKey, IdempotencyRecord, StoredResponse, check_record_state,
};
use paracell_domain::placement::{TenantHead, TenantRole};
use paracell_domain::ports::BalanceSnapshot;
use paracell_domain::replication::{Digest, Position, SealedEntry};
use paracell_domain::transaction::{AccountId, Transaction, TransactionId};
use paracell_domain::{Currency, TenantId, Timestamp};
use std::collections::HashMap;

/// An item as the SDK carries it.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// The name of the sparse global secondary index listing pending outbox events.
pub const OUTBOX_INDEX: &str = "outbox";
/// The value of `outbox` while an event is pending.
pub(crate) const PENDING: &str = "pending";

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

pub(crate) fn head_key(tenant: &TenantId) -> Item {
    key(tenant_pk(tenant), s("HEAD"))
}

/// The sort key of entry `seq`: fixed width, so text order is sequence order.
pub(crate) fn entry_sk(seq: u64) -> String {
    format!("SEQ#{seq:020}")
}

pub(crate) fn entry_key(tenant: &TenantId, seq: u64) -> Item {
    key(tenant_pk(tenant), s(entry_sk(seq)))
}

fn key(pk: AttributeValue, sk: AttributeValue) -> Item {
    HashMap::from([("pk".to_owned(), pk), ("sk".to_owned(), sk)])
}

pub(crate) fn transaction_item(tx: &Transaction) -> Item {
    let mut item = transaction_key(&tx.tenant_id, tx.transaction_id);
    item.insert("doc".into(), s(tx.to_json()));
    item
}

/// An entry item; `pending` adds the outbox attributes (an entry committed here, to be relayed).
pub(crate) fn entry_item(entry: &SealedEntry, pending: bool) -> Item {
    let mut item = entry_key(entry.tenant(), entry.seq());
    item.insert("doc".into(), s(entry.document()));
    item.insert("digest".into(), s(entry.digest().to_string()));
    if pending {
        item.insert("outbox".into(), s(PENDING));
        item.insert("outbox_order".into(), s(entry.outbox_order()));
    }
    item
}

pub(crate) fn head_item(head: &TenantHead) -> Item {
    let mut item = head_key(&head.tenant);
    item.insert("role".into(), s(head.role.as_str()));
    item.insert("epoch".into(), n(head.epoch));
    item.insert("primary".into(), s(head.primary.as_str()));
    item.insert("seq".into(), n(head.position.seq));
    item.insert("digest".into(), s(head.position.digest.to_string()));
    item.insert("epoch_start".into(), n(head.epoch_start));
    if let Some(until) = head.lease_until {
        item.insert("lease_until".into(), n(until.unix_millis()));
    }
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

    fn unsigned(&self, name: &str) -> Result<u64, String> {
        u64::try_from(self.number(name)?).map_err(|e| format!("attribute {name}: {e}"))
    }

    pub(crate) fn head(&self, tenant: &TenantId) -> Result<TenantHead, String> {
        let role = self.text("role")?;
        Ok(TenantHead {
            tenant: tenant.clone(),
            role: TenantRole::parse(role).ok_or_else(|| format!("attribute role: {role:?}"))?,
            epoch: self.unsigned("epoch")?,
            primary: CellId::parse(self.text("primary")?)
                .map_err(|e| format!("attribute primary: {e}"))?,
            position: Position {
                seq: self.unsigned("seq")?,
                digest: Digest::parse(self.text("digest")?)
                    .ok_or("attribute digest: not a digest")?,
            },
            epoch_start: self.unsigned("epoch_start")?,
            lease_until: match self.0.get("lease_until") {
                None => None,
                Some(_) => Some(Timestamp::from_unix_millis(self.number("lease_until")?)),
            },
        })
    }

    /// An entry item (or a stream image of one): the document re-digested and checked against the
    /// stored digest, so a corrupted entry is never applied or relayed.
    pub(crate) fn entry(&self) -> Result<SealedEntry, String> {
        SealedEntry::open_checked(self.text("doc")?, self.text("digest")?)
            .map_err(|e| e.to_string())
    }

    /// The stored digest alone (what `receive` compares).
    pub(crate) fn digest(&self) -> Result<Digest, String> {
        Digest::parse(self.text("digest")?).ok_or_else(|| "attribute digest: not a digest".into())
    }

    pub(crate) fn transaction(&self) -> Result<Transaction, String> {
        Transaction::from_json(self.text("doc")?.as_bytes()).map_err(|e| e.to_string())
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
        check_record_state(self.text("state")?)?;
        Ok(IdempotencyRecord {
            tenant_id: tenant.clone(),
            key: key.clone(),
            fingerprint: self.text("fingerprint")?.to_owned(),
            response: serde_json::from_str(self.text("response")?)
                .map_err(|e| format!("attribute response: {e}"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paracell_domain::idempotency::{RECORD_STATE, RETIRED_CLAIM, RETIRED_CLAIM_STATE};
    use paracell_domain::testing::sample_transaction;

    #[test]
    fn a_transaction_item_reads_back() {
        let tx = sample_transaction();
        let item = transaction_item(&tx);
        assert_eq!(item["sk"], s("TX#00000000-0000-0000-0000-000000000000"));
        assert_eq!(item["pk"], s("T#coop-1"));
        assert_eq!(Read(&item).transaction(), Ok(tx));
    }

    #[test]
    fn a_claim_an_older_version_left_is_refused_by_name() {
        let tenant = TenantId::parse("coop-1").unwrap();
        let key = IdempotencyKey::parse("k").unwrap();
        let mut item = idempotency_key(&tenant, &key);
        item.insert("fingerprint".into(), s("fp"));
        item.insert("state".into(), s(RETIRED_CLAIM_STATE));
        item.insert("token".into(), s("00000000-0000-0000-0000-000000000000"));
        item.insert("claimed_at".into(), n(0));
        assert_eq!(
            Read(&item).idempotency_record(&tenant, &key),
            Err(RETIRED_CLAIM.to_owned())
        );
        item.insert("state".into(), s(RECORD_STATE));
        item.insert(
            "response".into(),
            s(r#"{"status":201,"headers":[],"body":[]}"#),
        );
        assert_eq!(
            Read(&item)
                .idempotency_record(&tenant, &key)
                .map(|r| r.response.status),
            Ok(201)
        );
    }

    #[test]
    fn entries_and_heads_read_back_and_sort_by_sequence() {
        let entry = paracell_domain::testing::sample_entry();
        let item = entry_item(&entry, true);
        assert_eq!(Read(&item).entry(), Ok(entry.clone()));
        assert_eq!(item.get("outbox"), Some(&s(PENDING)));
        assert_eq!(entry_item(&entry, false).get("outbox"), None);
        assert!(entry_sk(9) < entry_sk(10) && entry_sk(10) < entry_sk(u64::MAX));
        let mut tampered = item.clone();
        tampered.insert("digest".into(), s(Digest::ZERO.to_string()));
        assert!(Read(&tampered).entry().unwrap_err().contains("digest"));
        let head = TenantHead {
            position: entry.position(),
            ..TenantHead::first_primary(entry.tenant().clone(), CellId::parse("cell-a").unwrap())
        };
        assert_eq!(Read(&head_item(&head)).head(entry.tenant()), Ok(head));
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
