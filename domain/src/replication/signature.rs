//! Authenticating deliveries between cells: the Standard Webhooks scheme (standardwebhooks.com).
//!
//! The sender signs `{webhook-id}.{webhook-timestamp}.{body}` with HMAC-SHA256 under a secret it
//! shares with the receiving cell, and sends `webhook-id`, `webhook-timestamp` (Unix seconds) and
//! `webhook-signature: v1,<base64>`. The receiver accepts a delivery only when one of its peers'
//! secrets gives one of the listed signatures (several secrets per peer make rotation seamless), the
//! timestamp is within [`TOLERANCE_SECS`] of its clock, and it has not seen the same signature
//! before ([`ReplayGuard`]).

use crate::tenancy::CellId;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

/// How far a delivery's timestamp may be from the receiver's clock, either way.
pub const TOLERANCE_SECS: i64 = 300;

/// The secret prefix Standard Webhooks uses.
const PREFIX: &str = "whsec_";

/// A secret shared with one peer cell. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct PeerSecret {
    /// The peer.
    pub cell: CellId,
    key: Vec<u8>,
}

impl fmt::Debug for PeerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerSecret({}, <redacted>)", self.cell)
    }
}

/// Why a secret could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Not `whsec_` followed by base64.
    #[error("a peer secret must be whsec_ followed by base64")]
    Format,
    /// Fewer than 24 bytes once decoded.
    #[error("a peer secret must hold at least 24 random bytes")]
    TooShort,
}

impl PeerSecret {
    /// Reads `whsec_<base64 of at least 24 bytes>`.
    ///
    /// ```
    /// use paracell_domain::{CellId, replication::signature::PeerSecret};
    /// let cell = CellId::parse("cell-b").unwrap();
    /// assert!(PeerSecret::parse(cell.clone(), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
    /// assert!(PeerSecret::parse(cell, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
    /// ```
    pub fn parse(cell: CellId, text: &str) -> Result<Self, SecretError> {
        let encoded = text.strip_prefix(PREFIX).ok_or(SecretError::Format)?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::Format)?;
        if key.len() < 24 {
            return Err(SecretError::TooShort);
        }
        Ok(Self { cell, key })
    }

    /// The `v1,<base64>` signature of a delivery.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self.mac(id, timestamp, body).finalize().into_bytes();
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(tag)
        )
    }

    /// The MAC over `{id}.{timestamp}.{body}`, the signed content of Standard Webhooks.
    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    fn verifies_tag(&self, id: &str, timestamp: i64, body: &[u8], encoded: &str) -> bool {
        let Ok(tag) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
            return false;
        };
        self.mac(id, timestamp, body).verify_slice(&tag).is_ok() // constant time
    }
}

/// The three headers of a signed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    /// `webhook-id`: identifies the delivery (stable across retries of the same batch).
    pub id: String,
    /// `webhook-timestamp`: Unix seconds when it was signed.
    pub timestamp: i64,
    /// `webhook-signature`: space-separated `v1,<base64>` signatures.
    pub signature: String,
}

impl SignatureHeaders {
    /// Signs `body` for a delivery with `secret`.
    pub fn sign(secret: &PeerSecret, id: &str, unix_secs: i64, body: &[u8]) -> Self {
        Self {
            id: id.to_owned(),
            timestamp: unix_secs,
            signature: secret.sign(id, unix_secs, body),
        }
    }

    /// As `(name, value)` header lines.
    pub fn lines(&self) -> [(&'static str, String); 3] {
        [
            ("webhook-id", self.id.clone()),
            ("webhook-timestamp", self.timestamp.to_string()),
            ("webhook-signature", self.signature.clone()),
        ]
    }
}

/// Why a delivery was not accepted as coming from a peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A `webhook-*` header is missing or malformed.
    #[error("the delivery lacks a valid {0} header")]
    Missing(&'static str),
    /// The timestamp is too far from this cell's clock.
    #[error(
        "the delivery's webhook-timestamp is {0} s away from this cell's clock (at most {TOLERANCE_SECS} s allowed)"
    )]
    Expired(i64),
    /// No configured peer secret gives any listed signature.
    #[error("no peer's secret verifies the webhook-signature")]
    BadSignature,
    /// This exact signed delivery was accepted before.
    #[error("this signed delivery was already received")]
    Replayed,
}

/// Checks a delivery against the peers' secrets. Returns the peer whose secret verified it.
pub fn verify<'a>(
    secrets: &'a [PeerSecret],
    headers: &crate::http::Headers,
    body: &[u8],
    now_secs: i64,
) -> Result<(&'a CellId, SignatureHeaders), AuthError> {
    let id = headers
        .get("webhook-id")
        .filter(|v| !v.is_empty() && v.len() <= 256)
        .ok_or(AuthError::Missing("webhook-id"))?
        .into_owned();
    let timestamp: i64 = headers
        .get("webhook-timestamp")
        .and_then(|v| v.parse().ok())
        .ok_or(AuthError::Missing("webhook-timestamp"))?;
    // Signatures are `v1,<base64>`, space-separated; hops may also have merged repeated lines with
    // commas. Reading tokens split on both, a `v1` token announces the signature that follows.
    let lines: Vec<&str> = headers.get_all("webhook-signature").collect();
    if lines.iter().all(|l| l.trim().is_empty()) {
        return Err(AuthError::Missing("webhook-signature"));
    }
    let signature = lines.join(" ");
    let skew = now_secs.saturating_sub(timestamp);
    if skew.abs() > TOLERANCE_SECS {
        return Err(AuthError::Expired(skew));
    }
    let tokens: Vec<&str> = signature
        .split([' ', '\t', ','])
        .filter(|s| !s.is_empty())
        .collect();
    let candidates: Vec<&str> = tokens
        .windows(2)
        .filter(|pair| pair[0] == "v1")
        .map(|pair| pair[1])
        .collect();
    for secret in secrets {
        if candidates
            .iter()
            .any(|c| secret.verifies_tag(&id, timestamp, body, c))
        {
            return Ok((
                &secret.cell,
                SignatureHeaders {
                    id,
                    timestamp,
                    signature,
                },
            ));
        }
    }
    Err(AuthError::BadSignature)
}

/// Remembers the signatures accepted within the tolerance window, so the same signed delivery cannot
/// be accepted twice (a captured request replayed by someone else). Retries by the relay are signed
/// afresh and pass. Per process: applying an entry twice has no effect anyway, so this is a second
/// line, not the guarantee.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: Mutex<HashMap<String, i64>>,
}

impl ReplayGuard {
    /// Records a verified delivery; `Err(Replayed)` if it was seen before.
    pub fn admit(&self, headers: &SignatureHeaders, now_secs: i64) -> Result<(), AuthError> {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if seen.len() > 10_000 {
            seen.retain(|_, at| now_secs - *at <= 2 * TOLERANCE_SECS);
        }
        let key = format!("{}.{}.{}", headers.id, headers.timestamp, headers.signature);
        if seen.insert(key, headers.timestamp).is_some() {
            return Err(AuthError::Replayed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Headers;

    fn secret(cell: &str, fill: u8) -> PeerSecret {
        let key = base64::engine::general_purpose::STANDARD.encode([fill; 32]);
        PeerSecret::parse(CellId::parse(cell).unwrap(), &format!("whsec_{key}")).unwrap()
    }

    fn headers(h: &SignatureHeaders) -> Headers {
        h.lines().into_iter().collect()
    }

    #[test]
    fn a_signed_delivery_verifies_and_names_its_peer() {
        let (a, b) = (secret("cell-a", 1), secret("cell-b", 2));
        let signed = SignatureHeaders::sign(&b, "msg-1", 1_000, b"[]");
        let secrets = [a.clone(), b];
        let (peer, _) = verify(&secrets, &headers(&signed), b"[]", 1_010).unwrap();
        assert_eq!(peer.as_str(), "cell-b");
        assert_eq!(
            verify(&secrets, &headers(&signed), b"[ ]", 1_010).unwrap_err(),
            AuthError::BadSignature,
            "the body is covered"
        );
        assert_eq!(
            verify(&[a], &headers(&signed), b"[]", 1_010).unwrap_err(),
            AuthError::BadSignature,
            "an unknown peer"
        );
        assert!(matches!(
            verify(
                &secrets,
                &headers(&signed),
                b"[]",
                1_000 + TOLERANCE_SECS + 1
            ),
            Err(AuthError::Expired(_))
        ));
        assert!(matches!(
            verify(&secrets, &Headers::default(), b"[]", 1_000),
            Err(AuthError::Missing("webhook-id"))
        ));
    }

    #[test]
    fn rotation_lists_several_signatures_and_replays_are_refused() {
        let old = secret("cell-b", 2);
        let new = secret("cell-b", 3);
        let mut signed = SignatureHeaders::sign(&new, "msg-2", 50, b"x");
        signed.signature = format!("{} {}", old.sign("msg-2", 50, b"x"), signed.signature);
        assert!(verify(&[new], &headers(&signed), b"x", 50).is_ok());
        let guard = ReplayGuard::default();
        assert_eq!(guard.admit(&signed, 50), Ok(()));
        assert_eq!(guard.admit(&signed, 51), Err(AuthError::Replayed));
        let resigned = SignatureHeaders::sign(&old, "msg-2", 52, b"x");
        assert_eq!(
            guard.admit(&resigned, 52),
            Ok(()),
            "a retry signed afresh passes"
        );
    }

    #[test]
    fn secrets_are_checked_and_never_printed() {
        let cell = CellId::parse("cell-b").unwrap();
        assert_eq!(
            PeerSecret::parse(cell.clone(), "whsec_AAAA"),
            Err(SecretError::TooShort)
        );
        assert_eq!(
            PeerSecret::parse(cell, "whsec_!!"),
            Err(SecretError::Format)
        );
        let s = secret("cell-b", 9);
        assert!(!format!("{s:?}").contains("CQkJ"));
    }
}
