//! The transaction: its validated parts, the command that creates one, and the stored resource.

use crate::contract::json;
use crate::money::{Amount, Currency};
use crate::tenancy::{CellId, TenantId};
use crate::time::Timestamp;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::fmt;

/// A ledger account inside a tenant: 1–64 characters of `[A-Za-z0-9._:-]`.
///
/// ```
/// use paracell_domain::AccountId;
/// assert!(AccountId::parse("ACC-1").is_ok());
/// assert!(AccountId::parse("iban:DE89.3704").is_ok());
/// assert!(AccountId::parse("ACC/1").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct AccountId(String);

/// Why a bounded text field was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Shorter than allowed.
    #[error("must be at least {0} characters")]
    TooShort(usize),
    /// Longer than allowed.
    #[error("must be at most {0} characters")]
    TooLong(usize),
    /// Contains a character the field does not allow.
    #[error("contains characters that are not allowed")]
    InvalidCharacters,
    /// Contains a control character.
    #[error("must not contain control characters")]
    ControlCharacters,
}

fn check_length(raw: &str, min: usize, max: usize) -> Result<(), TextError> {
    let n = raw.chars().count();
    if n < min {
        Err(TextError::TooShort(min))
    } else if n > max {
        Err(TextError::TooLong(max))
    } else {
        Ok(())
    }
}

impl AccountId {
    /// Parses an account id.
    pub fn parse(raw: &str) -> Result<Self, TextError> {
        check_length(raw, 1, 64)?;
        if raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        {
            Ok(Self(raw.to_owned()))
        } else {
            Err(TextError::InvalidCharacters)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether money comes in or goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransactionKind {
    /// Raises the available balance.
    Credit,
    /// Lowers the available balance; refused when it would go negative.
    Debit,
}

impl TransactionKind {
    /// `credit` or `debit`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Credit => "credit",
            Self::Debit => "debit",
        }
    }

    /// Parses `credit` or `debit` (exactly, lower case).
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "credit" => Some(Self::Credit),
            "debit" => Some(Self::Debit),
            _ => None,
        }
    }
}

/// A free-text reference: at most 140 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Reference(String);

impl Reference {
    /// Parses a reference.
    pub fn parse(raw: &str) -> Result<Self, TextError> {
        check_length(raw, 0, 140)?;
        if raw.chars().any(char::is_control) {
            return Err(TextError::ControlCharacters);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The reference as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A metadata key: 1–40 characters of `[A-Za-z0-9_.-]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct MetadataKey(String);

impl MetadataKey {
    /// Parses a metadata key.
    pub fn parse(raw: &str) -> Result<Self, TextError> {
        check_length(raw, 1, 40)?;
        if raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            Ok(Self(raw.to_owned()))
        } else {
            Err(TextError::InvalidCharacters)
        }
    }
}

/// A metadata value: a string of at most 256 characters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct MetadataValue(String);

impl MetadataValue {
    /// Parses a metadata value.
    pub fn parse(raw: &str) -> Result<Self, TextError> {
        check_length(raw, 0, 256)?;
        Ok(Self(raw.to_owned()))
    }
}

/// Client-supplied string pairs, at most [`Metadata::MAX_ENTRIES`]; rendered with keys sorted.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[serde(transparent)]
pub struct Metadata(BTreeMap<MetadataKey, MetadataValue>);

impl Metadata {
    /// The most entries a transaction may carry.
    pub const MAX_ENTRIES: usize = 16;

    /// Builds metadata from already-validated entries; `None` when there are too many.
    pub fn from_entries(entries: BTreeMap<MetadataKey, MetadataValue>) -> Option<Self> {
        (entries.len() <= Self::MAX_ENTRIES).then_some(Self(entries))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries, keys sorted.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.0.as_str(), v.0.as_str()))
    }

    /// Appends the metadata object (keys sorted).
    fn push_json(&self, out: &mut String) {
        out.push('{');
        for (i, (key, value)) in self.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json::push_str(out, key);
            out.push(':');
            json::push_str(out, value);
        }
        out.push('}');
    }
}

/// A transaction's identity: a UUID (version 7 from the default generator), rendered lower-case hyphenated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TransactionId(uuid::Uuid);

impl TransactionId {
    /// Wraps a UUID.
    pub fn from_uuid(id: uuid::Uuid) -> Self {
        Self(id)
    }

    /// Parses the hyphenated form (either case), as it appears in a path.
    ///
    /// ```
    /// use paracell_domain::TransactionId;
    /// let id = TransactionId::parse("0190A0B1-0000-7000-8000-000000000001").unwrap();
    /// assert_eq!(id.to_string(), "0190a0b1-0000-7000-8000-000000000001");
    /// assert!(TransactionId::parse("0190a0b100007000800000000000001").is_none());
    /// ```
    pub fn parse(raw: &str) -> Option<Self> {
        // Only the 36-character hyphenated form: braces, URNs and the simple form are other
        // spellings of the same id, and a resource must have one URL.
        if raw.len() != 36 {
            return None;
        }
        uuid::Uuid::try_parse(raw).ok().map(Self)
    }

    /// The UUID.
    pub fn as_uuid(self) -> uuid::Uuid {
        self.0
    }
}

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl serde::Serialize for TransactionId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buffer = uuid::Uuid::encode_buffer();
        serializer.serialize_str(self.0.hyphenated().encode_lower(&mut buffer))
    }
}

/// The validated command to create a transaction: every part already proved valid.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NewTransaction {
    /// The account the money moves on.
    pub account_id: AccountId,
    /// Credit or debit.
    #[serde(rename = "type")]
    pub kind: TransactionKind,
    /// How much, in which currency.
    pub amount: Amount,
    /// The amount's currency (also inside `amount`; kept for the canonical form).
    pub currency: Currency,
    /// Optional reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<Reference>,
    /// Optional metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

impl NewTransaction {
    /// The canonical form used as the idempotency fingerprint: two requests are "the same payload"
    /// exactly when their validated commands are equal (so `"125.5"` and `"125.50"` match, member order
    /// and whitespace do not matter).
    pub fn fingerprint(&self) -> String {
        let mut out = String::with_capacity(128);
        out.push('{');
        push_command(
            &mut out,
            &self.account_id,
            self.kind,
            self.amount,
            self.currency,
            self.reference.as_ref(),
            self.metadata.as_ref(),
        );
        out.push('}');
        out
    }
}

/// The members a command and a transaction share, in the resource's order.
fn push_command(
    out: &mut String,
    account_id: &AccountId,
    kind: TransactionKind,
    amount: Amount,
    currency: Currency,
    reference: Option<&Reference>,
    metadata: Option<&Metadata>,
) {
    json::push_member(out, "account_id", account_id.as_str());
    out.push(',');
    json::push_member(out, "type", kind.as_str());
    out.push(',');
    json::push_member(out, "amount", &amount.to_string());
    out.push(',');
    json::push_member(out, "currency", currency.code());
    if let Some(reference) = reference {
        out.push(',');
        json::push_member(out, "reference", reference.as_str());
    }
    if let Some(metadata) = metadata {
        out.push(',');
        json::push_name(out, "metadata");
        metadata.push_json(out);
    }
}

/// An accepted transaction as stored and as rendered (the transaction resource).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Transaction {
    /// Identity.
    pub transaction_id: TransactionId,
    /// Owner.
    pub tenant_id: TenantId,
    /// Account.
    pub account_id: AccountId,
    /// Credit or debit.
    #[serde(rename = "type")]
    pub kind: TransactionKind,
    /// Amount, rendered with the currency's minor units.
    pub amount: Amount,
    /// Currency.
    pub currency: Currency,
    /// Optional reference, omitted when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<Reference>,
    /// Optional metadata, omitted when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// Always `accepted` for a stored transaction.
    pub status: TransactionStatus,
    /// The account's available balance in this currency right after this transaction.
    #[serde(serialize_with = "serialize_balance_after")]
    pub balance_after: Decimal,
    /// When the cell accepted it.
    pub created_at: Timestamp,
    /// The cell that accepted it.
    pub cell_id: CellId,
}

fn serialize_balance_after<S: serde::Serializer>(value: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    // `balance_after` is only ever produced with the currency's scale (see `ledger`), so the plain
    // decimal text is already canonical.
    s.serialize_str(&value.to_string())
}

/// Lifecycle state of a stored transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransactionStatus {
    /// Booked on the ledger.
    Accepted,
}

impl Transaction {
    /// The resource as JSON text: the members in the contract's order, written directly (it cannot
    /// fail, and it is the same text `serde_json` would write for this type).
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(320);
        let mut id = uuid::Uuid::encode_buffer();
        out.push('{');
        json::push_member(
            &mut out,
            "transaction_id",
            self.transaction_id.0.hyphenated().encode_lower(&mut id),
        );
        out.push(',');
        json::push_member(&mut out, "tenant_id", self.tenant_id.as_str());
        out.push(',');
        push_command(
            &mut out,
            &self.account_id,
            self.kind,
            self.amount,
            self.currency,
            self.reference.as_ref(),
            self.metadata.as_ref(),
        );
        out.push_str(r#","status":"accepted","balance_after":"#);
        json::push_str(&mut out, &self.balance_after.to_string());
        out.push_str(r#","created_at":""#);
        self.created_at.push_rfc3339(&mut out);
        out.push_str(r#"","cell_id":"#);
        json::push_str(&mut out, self.cell_id.as_str());
        out.push('}');
        out
    }

    /// Reads back what [`Transaction::to_json`] wrote, every field through its own `parse`: how
    /// persistent stores keep a transaction, so that one format serves every database.
    ///
    /// ```
    /// use paracell_domain::{testing::sample_transaction, Transaction};
    /// let tx = sample_transaction();
    /// assert_eq!(Transaction::from_json(tx.to_json().as_bytes()), Ok(tx));
    /// assert!(Transaction::from_json(br#"{"transaction_id":"x"}"#).is_err());
    /// ```
    pub fn from_json(bytes: &[u8]) -> Result<Self, crate::DecodeError> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Stored {
            transaction_id: String,
            tenant_id: String,
            account_id: String,
            #[serde(rename = "type")]
            kind: String,
            amount: String,
            currency: String,
            reference: Option<String>,
            metadata: Option<BTreeMap<String, String>>,
            status: String,
            balance_after: String,
            created_at: String,
            cell_id: String,
        }
        fn invalid(field: &str, e: impl fmt::Display) -> crate::DecodeError {
            crate::DecodeError::new("transaction", format!("invalid {field}: {e}"))
        }
        let s: Stored =
            serde_json::from_slice(bytes).map_err(|e| crate::DecodeError::new("transaction", e))?;
        let currency = Currency::parse(&s.currency).map_err(|e| invalid("currency", e))?;
        let metadata = match s.metadata {
            None => None,
            Some(entries) => {
                let mut parsed = BTreeMap::new();
                for (k, v) in entries {
                    let key = MetadataKey::parse(&k).map_err(|e| invalid("metadata key", e))?;
                    let value =
                        MetadataValue::parse(&v).map_err(|e| invalid("metadata value", e))?;
                    parsed.insert(key, value);
                }
                Some(
                    Metadata::from_entries(parsed)
                        .ok_or_else(|| invalid("metadata", "too many entries"))?,
                )
            }
        };
        if s.status != "accepted" {
            return Err(invalid("status", &s.status));
        }
        Ok(Self {
            transaction_id: TransactionId::parse(&s.transaction_id)
                .ok_or_else(|| invalid("transaction_id", &s.transaction_id))?,
            tenant_id: TenantId::parse(&s.tenant_id).map_err(|e| invalid("tenant_id", e))?,
            account_id: AccountId::parse(&s.account_id).map_err(|e| invalid("account_id", e))?,
            kind: TransactionKind::parse(&s.kind).ok_or_else(|| invalid("type", &s.kind))?,
            amount: Amount::parse(&s.amount, currency).map_err(|e| invalid("amount", e))?,
            currency,
            reference: s
                .reference
                .map(|r| Reference::parse(&r))
                .transpose()
                .map_err(|e| invalid("reference", e))?,
            metadata,
            status: TransactionStatus::Accepted,
            balance_after: s
                .balance_after
                .parse::<Decimal>()
                .map_err(|e| invalid("balance_after", e))?,
            created_at: Timestamp::parse_rfc3339(&s.created_at)
                .ok_or_else(|| invalid("created_at", &s.created_at))?,
            cell_id: CellId::parse(&s.cell_id).map_err(|e| invalid("cell_id", e))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_transaction_reads_back_exactly() {
        let mut tx = crate::testing::sample_transaction();
        tx.reference = Some(Reference::parse("Rent März").unwrap());
        tx.metadata = Metadata::from_entries(
            [(
                MetadataKey::parse("unit").unwrap(),
                MetadataValue::parse("4B").unwrap(),
            )]
            .into(),
        );
        tx.amount = Amount::parse("0.10", tx.currency).unwrap();
        tx.balance_after = Decimal::new(-0, 2);
        assert_eq!(
            Transaction::from_json(tx.to_json().as_bytes()),
            Ok(tx.clone())
        );
        assert_eq!(tx.to_json(), serde_json::to_string(&tx).unwrap());
        let tampered = tx.to_json().replace("\"EUR\"", "\"XXX\"");
        assert!(
            Transaction::from_json(tampered.as_bytes())
                .unwrap_err()
                .detail
                .contains("currency")
        );
        let extra = tx.to_json().replacen('{', r#"{"x":1,"#, 1);
        assert!(
            Transaction::from_json(extra.as_bytes()).is_err(),
            "unknown fields are refused"
        );
    }

    #[test]
    fn account_id_boundaries() {
        assert!(AccountId::parse(&"a".repeat(64)).is_ok());
        assert_eq!(
            AccountId::parse(&"a".repeat(65)),
            Err(TextError::TooLong(64))
        );
        assert_eq!(AccountId::parse(""), Err(TextError::TooShort(1)));
        assert_eq!(AccountId::parse("a b"), Err(TextError::InvalidCharacters));
    }

    #[test]
    fn reference_counts_characters_not_bytes() {
        assert!(Reference::parse(&"é".repeat(140)).is_ok());
        assert_eq!(
            Reference::parse(&"é".repeat(141)),
            Err(TextError::TooLong(140))
        );
        assert_eq!(
            Reference::parse("a\u{0}b"),
            Err(TextError::ControlCharacters)
        );
        assert_eq!(
            Reference::parse("a\u{85}b"),
            Err(TextError::ControlCharacters)
        );
        assert!(Reference::parse("مرحبا 👋 e\u{301}").is_ok());
    }

    #[test]
    fn metadata_limits() {
        assert!(MetadataKey::parse(&"k".repeat(40)).is_ok());
        assert_eq!(
            MetadataKey::parse(&"k".repeat(41)),
            Err(TextError::TooLong(40))
        );
        assert_eq!(MetadataKey::parse("a:b"), Err(TextError::InvalidCharacters));
        assert!(MetadataValue::parse(&"v".repeat(256)).is_ok());
        assert_eq!(
            MetadataValue::parse(&"v".repeat(257)),
            Err(TextError::TooLong(256))
        );
        let many: BTreeMap<_, _> = (0..17)
            .map(|i| {
                (
                    MetadataKey::parse(&format!("k{i}")).unwrap(),
                    MetadataValue::parse("v").unwrap(),
                )
            })
            .collect();
        assert!(Metadata::from_entries(many).is_none());
    }
}
