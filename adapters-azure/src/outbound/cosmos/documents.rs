//! The container's document layout: one container per cell, partitioned by `/tenant`, so that a
//! tenant's transaction, balance, idempotency record and outbox event can be written in one
//! transactional batch (a batch never spans partitions).
//!
//! | document | `id` | other fields |
//! |---|---|---|
//! | tenant head | `head` | `role`, `epoch`, `primary`, `seq`, `digest`, `epoch_start`, `lease_until` (unix ms, heads under a lease only) |
//! | replication entry | `seq:{seq, 20 digits}` | `seq`, `doc` (the entry document), `digest`, `pending`, `outbox_order` |
//! | transaction | `tx:{transaction id}` | `resource` (the transaction resource) |
//! | balance | `bal:{account}:{currency}` | `account`, `currency`, `available` (decimal text), `version` |
//! | idempotency record | `key:{key, escaped}` | `key`, `fingerprint`, `state`, `token`, `claimed_at`, `response` |
//!
//! Every document also carries `tenant` (the partition key) and `kind`. A housing cooperative's
//! documents stay far below a logical partition's 20 GB, every read is a point read or a
//! single-partition query, and every commit is one transactional batch in the tenant's partition.
//! Money is decimal text, never a JSON number. Entries committed here carry `pending: true` until the
//! relay marks them relayed; received entries (a standby's) never do.

use paracell_domain::CellId;
use paracell_domain::idempotency::{
    IdempotencyKey, IdempotencyRecord, RECORD_STATE, StoredResponse, check_record_state,
};
use paracell_domain::placement::{TenantHead, TenantRole};
use paracell_domain::ports::{BalanceSnapshot, BalanceUpdate};
use paracell_domain::replication::{Digest, Position, SealedEntry};
use paracell_domain::transaction::{AccountId, Transaction, TransactionId};
use paracell_domain::{Currency, TenantId, Timestamp};
use serde::{Deserialize, Serialize};

pub(crate) fn transaction_id(id: TransactionId) -> String {
    format!("tx:{id}")
}

pub(crate) fn balance_id(account: &AccountId, currency: Currency) -> String {
    // The currency code is always the last three characters, so ids of different accounts never collide.
    format!("bal:{account}:{}", currency.code())
}

/// Idempotency keys may contain characters a Cosmos id may not (`/`, `\`, `?`, `#`): those and the
/// escape character itself are percent-encoded. A 255-byte key stays under the 1,023-byte id limit.
pub(crate) fn key_id(key: &IdempotencyKey) -> String {
    let mut id = String::from("key:");
    for c in key.as_str().chars() {
        match c {
            '/' | '\\' | '?' | '#' | '%' => id.push_str(&format!("%{:02X}", u32::from(c))),
            _ => id.push(c),
        }
    }
    id
}

pub(crate) const HEAD_ID: &str = "head";

pub(crate) fn entry_id(seq: u64) -> String {
    format!("seq:{seq:020}")
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct HeadDoc {
    pub(crate) id: String,
    pub(crate) tenant: String,
    pub(crate) kind: String,
    pub(crate) role: String,
    pub(crate) epoch: u64,
    pub(crate) primary: String,
    pub(crate) seq: u64,
    pub(crate) digest: String,
    pub(crate) epoch_start: u64,
    /// Unix milliseconds; heads under a lease only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) lease_until: Option<i64>,
    #[serde(rename = "_etag", default, skip_serializing)]
    pub(crate) etag: Option<String>,
}

impl HeadDoc {
    pub(crate) fn new(head: &TenantHead) -> Self {
        Self {
            id: HEAD_ID.into(),
            tenant: head.tenant.to_string(),
            kind: "head".into(),
            role: head.role.as_str().into(),
            epoch: head.epoch,
            primary: head.primary.to_string(),
            seq: head.position.seq,
            digest: head.position.digest.to_string(),
            epoch_start: head.epoch_start,
            lease_until: head.lease_until.map(Timestamp::unix_millis),
            etag: None,
        }
    }

    pub(crate) fn head(&self) -> Result<TenantHead, String> {
        Ok(TenantHead {
            tenant: TenantId::parse(&self.tenant).map_err(|e| format!("tenant: {e}"))?,
            role: TenantRole::parse(&self.role).ok_or_else(|| format!("role {:?}", self.role))?,
            epoch: self.epoch,
            primary: CellId::parse(&self.primary).map_err(|e| format!("primary: {e}"))?,
            position: Position {
                seq: self.seq,
                digest: Digest::parse(&self.digest).ok_or("digest: not a digest")?,
            },
            epoch_start: self.epoch_start,
            lease_until: self.lease_until.map(Timestamp::from_unix_millis),
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct EntryDoc {
    pub(crate) id: String,
    pub(crate) tenant: String,
    pub(crate) kind: String,
    pub(crate) seq: u64,
    pub(crate) doc: String,
    pub(crate) digest: String,
    pub(crate) pending: bool,
    pub(crate) outbox_order: String,
    #[serde(rename = "_etag", default, skip_serializing)]
    pub(crate) etag: Option<String>,
}

impl EntryDoc {
    pub(crate) fn new(entry: &SealedEntry, pending: bool) -> Self {
        Self {
            id: entry_id(entry.seq()),
            tenant: entry.tenant().to_string(),
            kind: "entry".into(),
            seq: entry.seq(),
            doc: entry.document().to_owned(),
            digest: entry.digest().to_string(),
            pending,
            outbox_order: entry.outbox_order(),
            etag: None,
        }
    }

    /// The entry, re-digested and checked against the stored digest.
    pub(crate) fn entry(&self) -> Result<SealedEntry, String> {
        SealedEntry::open_checked(&self.doc, &self.digest).map_err(|e| e.to_string())
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TransactionDoc {
    pub(crate) id: String,
    pub(crate) tenant: String,
    pub(crate) kind: String,
    pub(crate) resource: serde_json::Value,
}

impl TransactionDoc {
    pub(crate) fn new(tx: &Transaction) -> Result<Self, String> {
        Ok(Self {
            id: transaction_id(tx.transaction_id),
            tenant: tx.tenant_id.to_string(),
            kind: "transaction".into(),
            resource: serde_json::from_str(&tx.to_json()).map_err(|e| e.to_string())?,
        })
    }

    pub(crate) fn transaction(&self) -> Result<Transaction, String> {
        let bytes = serde_json::to_vec(&self.resource).map_err(|e| e.to_string())?;
        Transaction::from_json(&bytes).map_err(|e| e.to_string())
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct BalanceDoc {
    pub(crate) id: String,
    pub(crate) tenant: String,
    pub(crate) kind: String,
    pub(crate) account: String,
    pub(crate) currency: String,
    pub(crate) available: String,
    pub(crate) version: u64,
    #[serde(rename = "_etag", default, skip_serializing)]
    pub(crate) etag: Option<String>,
}

impl BalanceDoc {
    pub(crate) fn new(update: &BalanceUpdate) -> Self {
        Self {
            id: balance_id(&update.account_id, update.currency),
            tenant: update.tenant_id.to_string(),
            kind: "balance".into(),
            account: update.account_id.to_string(),
            currency: update.currency.code().into(),
            available: update.available.to_string(),
            version: update.expected_version + 1,
            etag: None,
        }
    }

    pub(crate) fn snapshot(&self) -> Result<BalanceSnapshot, String> {
        Ok(BalanceSnapshot {
            currency: Currency::parse(&self.currency).map_err(|e| format!("currency: {e}"))?,
            available: self
                .available
                .parse()
                .map_err(|e| format!("available {:?}: {e}", self.available))?,
            version: self.version,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct KeyDoc {
    pub(crate) id: String,
    pub(crate) tenant: String,
    pub(crate) kind: String,
    pub(crate) key: String,
    pub(crate) fingerprint: String,
    pub(crate) state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) response: Option<StoredResponse>,
}

impl KeyDoc {
    /// The completed record an entry writes.
    pub(crate) fn completed_from(entry: &SealedEntry) -> Self {
        let e = entry.entry();
        Self {
            id: key_id(&e.key),
            tenant: e.tenant.to_string(),
            kind: "key".into(),
            key: e.key.as_str().into(),
            fingerprint: e.fingerprint.clone(),
            state: RECORD_STATE.into(),
            response: Some(e.response.clone()),
        }
    }

    pub(crate) fn record(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
    ) -> Result<IdempotencyRecord, String> {
        check_record_state(&self.state)?;
        let response = self
            .response
            .clone()
            .ok_or("idempotency record without a response")?;
        Ok(IdempotencyRecord {
            tenant_id: tenant.clone(),
            key: key.clone(),
            fingerprint: self.fingerprint.clone(),
            response,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paracell_domain::testing::sample_transaction;

    #[test]
    fn ids_are_valid_cosmos_ids_for_any_key() {
        let key = IdempotencyKey::parse("a/b\\c?d#e%f").unwrap();
        let id = key_id(&key);
        assert_eq!(id, "key:a%2Fb%5Cc%3Fd%23e%25f");
        assert!(!id.contains(['/', '\\', '?', '#']));
        let longest = IdempotencyKey::parse(&"/".repeat(IdempotencyKey::MAX_LEN)).unwrap();
        assert!(key_id(&longest).len() <= 1023);
    }

    #[test]
    fn a_claim_an_older_version_left_is_refused_by_name() {
        use paracell_domain::idempotency::{RETIRED_CLAIM, RETIRED_CLAIM_STATE};
        let tenant = TenantId::parse("coop-1").unwrap();
        let key = IdempotencyKey::parse("k").unwrap();
        let claim: KeyDoc = serde_json::from_value(serde_json::json!({
            "id": "key:k", "tenant": "coop-1", "kind": "key", "key": "k", "fingerprint": "fp",
            "state": RETIRED_CLAIM_STATE, "token": "00000000-0000-0000-0000-000000000000",
            "claimed_at": 0
        }))
        .unwrap();
        assert_eq!(claim.record(&tenant, &key), Err(RETIRED_CLAIM.to_owned()));
        let completed: KeyDoc = serde_json::from_value(serde_json::json!({
            "id": "key:k", "tenant": "coop-1", "kind": "key", "key": "k", "fingerprint": "fp",
            "state": RECORD_STATE, "response": {"status": 201, "headers": [], "body": []}
        }))
        .unwrap();
        assert_eq!(
            completed.record(&tenant, &key).map(|r| r.response.status),
            Ok(201)
        );
    }

    #[test]
    fn a_transaction_document_reads_back() {
        let tx = sample_transaction();
        let doc = TransactionDoc::new(&tx).unwrap();
        let stored: TransactionDoc =
            serde_json::from_value(serde_json::to_value(&doc).unwrap()).unwrap();
        assert_eq!(stored.transaction(), Ok(tx));
        assert_eq!(stored.tenant, "coop-1");
    }

    #[test]
    fn heads_and_entries_read_back() {
        let entry = paracell_domain::testing::sample_entry();
        let doc = EntryDoc::new(&entry, true);
        let stored: EntryDoc = serde_json::from_value(serde_json::to_value(&doc).unwrap()).unwrap();
        assert_eq!(stored.entry(), Ok(entry.clone()));
        let head = TenantHead {
            position: entry.position(),
            ..TenantHead::first_primary(entry.tenant().clone(), CellId::parse("cell-a").unwrap())
        };
        assert_eq!(HeadDoc::new(&head).head(), Ok(head));
        let mut tampered = doc;
        tampered.digest = Digest::ZERO.to_string();
        assert!(tampered.entry().unwrap_err().contains("digest"));
    }

    #[test]
    fn a_corrupted_balance_is_an_error_not_a_guess() {
        let doc: BalanceDoc = serde_json::from_value(serde_json::json!({
            "id": "bal:ACC-1:EUR", "tenant": "coop-1", "kind": "balance", "account": "ACC-1",
            "currency": "EUR", "available": "12.5O", "version": 1, "_etag": "e"
        }))
        .unwrap();
        assert!(doc.snapshot().unwrap_err().contains("available"));
        assert_eq!(doc.etag.as_deref(), Some("e"));
    }
}
