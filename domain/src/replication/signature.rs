//! Authenticating deliveries between cells: the Standard Webhooks scheme (standardwebhooks.com).
//!
//! The sender signs `{webhook-id}.{webhook-timestamp}.{body}` with HMAC-SHA256 under a secret it
//! shares with the receiving cell, and sends `webhook-id`, `webhook-timestamp` (Unix seconds) and
//! `webhook-signature: v1,<base64>`. The receiver accepts a delivery only when one of its peers'
//! secrets gives one of the listed signatures (several secrets per peer make rotation seamless), the
//! timestamp is within [`TOLERANCE_SECS`] of its clock, and it has not accepted the same message id
//! from the same peer before ([`ReplayGuard`]).

use crate::tenancy::CellId;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::{HashMap, VecDeque};
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

/// Rotating a secret without downtime (`docs/security.md`, runbook): add the new secret beside the
/// old on both cells (`PARACELL_PEER_SECRETS=cell-b=whsec_old,cell-b=whsec_new`); from then on a
/// sender signs every delivery with both and a receiver accepts either, so the cells can be
/// redeployed in any order. Once both run with both secrets, remove the old one, again in any order.
/// A receiver that has neither answers `401`, which the relay treats as a configuration fault (kept
/// pending and alarmed, never dead-lettered).
///
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
        Self::sign_all(std::slice::from_ref(secret), id, unix_secs, body)
    }

    /// Signs `body` with each of `secrets` (a rotation in progress): the signatures, space-separated.
    pub fn sign_all(secrets: &[PeerSecret], id: &str, unix_secs: i64, body: &[u8]) -> Self {
        let signature = secrets
            .iter()
            .map(|s| s.sign(id, unix_secs, body))
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            id: id.to_owned(),
            timestamp: unix_secs,
            signature,
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
    /// A delivery with this message id was accepted from this peer before (within the window).
    #[error("this signed delivery (its webhook-id) was already received")]
    Replayed,
    /// The replay guard holds as many live message ids as it may: try again later.
    #[error("too many deliveries within the replay window; try again later")]
    Busy,
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

/// Remembers the message ids (`webhook-id`) accepted from each peer while their timestamps are
/// within the tolerance window, so the same signed delivery cannot be accepted twice (a captured
/// request replayed by someone else), however its signature header is re-spelled: the key is the
/// peer and the message id, never the header's text. Retries by the relay carry a fresh id and pass.
///
/// Memory is bounded by time and by count: an id is forgotten once its timestamp has left the
/// window (nobody can replay it then: [`verify`] refuses it as expired), expiry is a walk from the
/// front of a queue kept in expiry order (O(1) amortised per delivery, no full scans), and past
/// [`ReplayGuard::capacity`] live ids the guard refuses new deliveries as [`AuthError::Busy`] rather
/// than forget an id early. Only deliveries whose signature verified reach the guard, so only a peer
/// can fill it.
///
/// **After a restart** the guard is empty: a delivery captured less than [`TOLERANCE_SECS`] before
/// can be accepted once more. That is safe because a delivery carries replication entries, which a
/// standby applies exactly once by their digests: a replayed batch answers `duplicate` for every
/// entry and writes nothing (tested). Older captures are refused as expired, restart or not.
#[derive(Debug)]
pub struct ReplayGuard {
    state: Mutex<GuardState>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct GuardState {
    /// (peer, message id) → the instant (Unix seconds) after which it may be forgotten.
    live: HashMap<(CellId, String), i64>,
    /// The same keys in the order they expire.
    expiry: VecDeque<(i64, (CellId, String))>,
    /// The latest expiry queued: later insertions never expire before it, so the queue stays ordered
    /// even when a delivery's own timestamp is earlier than the previous one's.
    horizon: i64,
}

impl Default for ReplayGuard {
    fn default() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }
}

impl ReplayGuard {
    /// Live message ids kept by default: a peer relaying 1,000 deliveries a second for the whole
    /// two-window lifetime of an id stays under it (about 100 bytes an id: at most ~120 MB).
    pub const DEFAULT_CAPACITY: usize = 1_200_000;

    /// A guard that keeps at most `capacity` live ids.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            state: Mutex::new(GuardState::default()),
            capacity: capacity.max(1),
        }
    }

    /// How many live ids the guard keeps before it refuses new deliveries.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many ids it holds now.
    pub fn len(&self) -> usize {
        self.lock().live.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GuardState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a verified delivery from `peer`; `Err(Replayed)` if its message id was accepted from
    /// that peer within the window, `Err(Busy)` when the guard is full of live ids.
    pub fn admit(
        &self,
        peer: &CellId,
        headers: &SignatureHeaders,
        now_secs: i64,
    ) -> Result<(), AuthError> {
        let mut state = self.lock();
        // Forget what left the window: the queue is in expiry order, so this stops at the first live one.
        while let Some((at, _)) = state.expiry.front() {
            if *at >= now_secs {
                break;
            }
            if let Some((at, key)) = state.expiry.pop_front()
                && state.live.get(&key) == Some(&at)
            {
                state.live.remove(&key);
            }
        }
        let key = (peer.clone(), headers.id.clone());
        if state.live.contains_key(&key) {
            return Err(AuthError::Replayed);
        }
        if state.live.len() >= self.capacity {
            return Err(AuthError::Busy);
        }
        // The id can be presented until its timestamp leaves the window on this clock; keep it until
        // then (never less than what was queued before, so the queue stays in order).
        let until = headers
            .timestamp
            .saturating_add(TOLERANCE_SECS)
            .max(now_secs)
            .max(state.horizon);
        state.horizon = until;
        state.live.insert(key.clone(), until);
        state.expiry.push_back((until, key));
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
        let peer = CellId::parse("cell-b").unwrap();
        assert_eq!(guard.admit(&peer, &signed, 50), Ok(()));
        assert_eq!(guard.admit(&peer, &signed, 51), Err(AuthError::Replayed));
        let retry = SignatureHeaders::sign(&old, "msg-3", 52, b"x");
        assert_eq!(
            guard.admit(&peer, &retry, 52),
            Ok(()),
            "a retry signed afresh, under a new id, passes"
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

    /// Defect: the guard was keyed on the raw signature header, so re-spelling it (another order of
    /// the signatures, other whitespace, a merged comma form) turned a replay into a new delivery.
    #[test]
    fn a_replay_is_refused_however_its_signature_header_is_spelled() {
        let (old, new) = (secret("cell-b", 2), secret("cell-b", 3));
        let body = b"[1]";
        let a = old.sign("msg-9", 100, body);
        let b = new.sign("msg-9", 100, body);
        let guard = ReplayGuard::default();
        let secrets = [new.clone()];
        let spellings = [
            format!("{a} {b}"),
            format!("{b} {a}"),
            format!("  {b}\t{a} "),
            format!("{b},{a}"),
            b.clone(),
        ];
        for (i, spelling) in spellings.iter().enumerate() {
            let mut h = Headers::default();
            h.append("webhook-id", "msg-9");
            h.append("webhook-timestamp", "100");
            h.append("webhook-signature", spelling);
            let (peer, headers) = verify(&secrets, &h, body, 101).expect("verifies");
            let admitted = guard.admit(peer, &headers, 101);
            if i == 0 {
                assert_eq!(admitted, Ok(()));
            } else {
                assert_eq!(admitted, Err(AuthError::Replayed), "spelling {spelling:?}");
            }
        }
        // The same id from another peer is another message.
        let other = CellId::parse("cell-c").unwrap();
        let h = SignatureHeaders::sign(&secret("cell-c", 4), "msg-9", 100, body);
        assert_eq!(guard.admit(&other, &h, 101), Ok(()));
    }

    #[test]
    fn ids_are_forgotten_once_their_window_has_passed_and_memory_is_bounded() {
        let peer = CellId::parse("cell-b").unwrap();
        let s = secret("cell-b", 2);
        let guard = ReplayGuard::with_capacity(3);
        for (i, ts) in [1_000, 1_010, 990].into_iter().enumerate() {
            let h = SignatureHeaders::sign(&s, &format!("m{i}"), ts, b"");
            assert_eq!(guard.admit(&peer, &h, 1_000), Ok(()));
        }
        // Full: a new id is refused (never an early forget, which would let a replay through)...
        let fourth = SignatureHeaders::sign(&s, "m3", 1_000, b"");
        assert_eq!(guard.admit(&peer, &fourth, 1_000), Err(AuthError::Busy));
        // ...while a replay of a held one is still a replay.
        let first = SignatureHeaders::sign(&s, "m0", 1_000, b"");
        assert_eq!(guard.admit(&peer, &first, 1_200), Err(AuthError::Replayed));
        // Once every held timestamp is past the window (verify refuses them as expired from then
        // on), they are forgotten and room is made, without scanning what is still live.
        let later = 1_010 + TOLERANCE_SECS + 1;
        let fifth = SignatureHeaders::sign(&s, "m4", later, b"");
        assert_eq!(guard.admit(&peer, &fifth, later), Ok(()));
        assert_eq!(guard.len(), 1);
        assert!(verify(&[s], &first.lines().into_iter().collect(), b"", later).is_err());
    }
}
