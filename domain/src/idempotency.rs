//! Idempotency per tenant: the `Idempotency-Key` header, what is remembered about a key, and replay.
//!
//! Follows draft-ietf-httpapi-idempotency-key-header (an IETF draft, not yet an RFC): the first request
//! with a key is processed; a retry with the same payload replays the stored outcome (success or a
//! business refusal) byte for byte; the same key with another payload is 422; a retry while the first
//! is still being processed is 409. Validation failures are never stored, so a client may fix the body
//! and retry with the same key.

use crate::tenancy::TenantId;
use std::fmt;

/// A client's idempotency key: 1–255 visible ASCII characters except the comma.
///
/// The comma is excluded because HTTP lets any hop merge repeated header lines into one
/// comma-separated line (RFC 9110 §5.3): API Gateway HTTP APIs do, REST APIs and Azure do not. A key
/// containing a comma could therefore mean one key on one cloud and two on the other.
///
/// ```
/// use paracell_domain::IdempotencyKey;
/// assert!(IdempotencyKey::parse("8e03978e-40d5-43e8-bc93-6894a57f9324").is_ok());
/// assert!(IdempotencyKey::parse("\"quoted\"").is_ok());
/// assert!(IdempotencyKey::parse("a,b").is_err());
/// assert!(IdempotencyKey::parse("has space").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IdempotencyKey(String);

/// Why an idempotency key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdempotencyKeyError {
    /// Empty.
    #[error("must not be empty")]
    Empty,
    /// Longer than 255 characters.
    #[error("must be at most 255 characters")]
    TooLong,
    /// Contains a character outside visible ASCII, or a comma.
    #[error("must contain only visible ASCII characters (no spaces or commas)")]
    InvalidCharacters,
}

impl IdempotencyKey {
    /// Longest key accepted.
    pub const MAX_LEN: usize = 255;

    /// Parses a key.
    pub fn parse(raw: &str) -> Result<Self, IdempotencyKeyError> {
        if raw.is_empty() {
            return Err(IdempotencyKeyError::Empty);
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
            return Err(IdempotencyKeyError::InvalidCharacters);
        }
        if raw.len() > Self::MAX_LEN {
            return Err(IdempotencyKeyError::TooLong);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A response remembered for replay: exactly what the first request got.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers, lower-case names, no repeats.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// The state a record had while a request held its key, before the claim flow was retired: versions
/// before 0.1 wrote such claims, this one never does. A store that finds one refuses to read the record
/// with [`RETIRED_CLAIM`] instead of guessing what it meant (`docs/operations.md`, "Upgrading").
pub const RETIRED_CLAIM_STATE: &str = "in_progress";

/// The `state` every store writes on an idempotency record: the record is complete the moment it
/// exists (it is written with its outcome).
pub const RECORD_STATE: &str = "completed";

/// Whether a stored record's `state` is one this version reads: [`RECORD_STATE`]; a retired claim
/// is refused with [`RETIRED_CLAIM`], anything else by name. Every store checks through this, so
/// the stores cannot come to disagree about which records they read.
///
/// ```
/// use paracell_domain::idempotency::{check_record_state, RETIRED_CLAIM, RETIRED_CLAIM_STATE};
/// assert_eq!(check_record_state("completed"), Ok(()));
/// assert_eq!(check_record_state(RETIRED_CLAIM_STATE), Err(RETIRED_CLAIM.to_owned()));
/// assert!(check_record_state("pending").is_err());
/// ```
pub fn check_record_state(state: &str) -> Result<(), String> {
    match state {
        RECORD_STATE => Ok(()),
        RETIRED_CLAIM_STATE => Err(RETIRED_CLAIM.to_owned()),
        other => Err(format!("idempotency record in unknown state {other:?}")),
    }
}

/// Why a store refuses a record in [`RETIRED_CLAIM_STATE`].
pub const RETIRED_CLAIM: &str = "an idempotency record in the retired \"in_progress\" state (a claim an older version left behind): complete or delete it before upgrading, see docs/operations.md";

/// Everything remembered about one (tenant, key): written once, in the same atomic commit as the
/// outcome it replays (nothing holds a key while a request is processed, so there is no
/// "in progress" state: of two racing requests one commits and the other reads its record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// Owner.
    pub tenant_id: TenantId,
    /// The key.
    pub key: IdempotencyKey,
    /// Canonical form of the validated command ([`crate::NewTransaction::fingerprint`]).
    pub fingerprint: String,
    /// The first outcome, replayed for every later request with the key and fingerprint.
    pub response: StoredResponse,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_boundaries() {
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert_eq!(
            IdempotencyKey::parse(&"k".repeat(256)),
            Err(IdempotencyKeyError::TooLong)
        );
        assert_eq!(IdempotencyKey::parse(""), Err(IdempotencyKeyError::Empty));
        for bad in ["a b", "a\tb", "é", "a\u{7f}", "k,k"] {
            assert_eq!(
                IdempotencyKey::parse(bad),
                Err(IdempotencyKeyError::InvalidCharacters),
                "{bad:?}"
            );
        }
        assert!(IdempotencyKey::parse("!~\"{}").is_ok());
    }
}
