use sha2::{Digest as _, Sha256};
use std::fmt;

/// A SHA-256 digest, rendered as 64 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest "before the first entry": 64 zeros.
    pub const ZERO: Digest = Digest([0; 32]);

    /// SHA-256 of `bytes`.
    ///
    /// ```
    /// use paracell_domain::replication::Digest;
    /// assert_eq!(Digest::of(b"").to_string(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    /// ```
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// The digest of `parts` concatenated (without building the concatenation).
    pub fn of_parts(parts: &[&[u8]]) -> Self {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update(part);
        }
        Self(hasher.finalize().into())
    }

    /// Parses 64 hex digits (either case).
    ///
    /// ```
    /// use paracell_domain::replication::Digest;
    /// let d = Digest::of(b"x");
    /// assert_eq!(Digest::parse(&d.to_string()), Some(d));
    /// assert_eq!(Digest::parse("00"), None);
    /// ```
    pub fn parse(hex: &str) -> Option<Self> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let nibble = |b: u8| {
            char::from(b)
                .to_digit(16)
                .and_then(|d| u8::try_from(d).ok())
        };
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
        }
        Some(Self(out))
    }

    /// Appends the 64 hex digits.
    pub fn push_hex(&self, out: &mut String) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for byte in self.0 {
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::with_capacity(64);
        self.push_hex(&mut text);
        f.write_str(&text)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// How far a tenant's replication log goes: the last entry's sequence number and digest. Entry `n`
/// names the digest of entry `n - 1`, so equal positions mean equal histories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    /// The last entry's sequence number (1-based; 0: none yet).
    pub seq: u64,
    /// The last entry's digest ([`Digest::ZERO`] when none).
    pub digest: Digest,
}

impl fmt::Display for Position {
    /// `seq 12 @ 3f9a1c2b4d5e` (the digest's first 12 hex digits).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digest = self.digest.to_string();
        write!(f, "seq {} @ {}", self.seq, &digest[..digest.len().min(12)])
    }
}

impl Position {
    /// Before the first entry.
    pub const GENESIS: Position = Position {
        seq: 0,
        digest: Digest::ZERO,
    };
}
