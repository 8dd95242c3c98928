//! Who a request is for (the tenant) and who answers it (the cell).
//!
//! A tenant is pinned to exactly one cell; the cell's configuration says which tenants it serves.
//! Both identifiers share one grammar so that they survive every platform's header and path handling
//! untouched: ASCII letters, digits, `.`, `_` and `-`, starting with a letter or digit, 1–64 long.

use std::fmt;

/// Why an identifier was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    /// The value is empty.
    #[error("must not be empty")]
    Empty,
    /// The value is longer than 64 characters.
    #[error("must be at most 64 characters")]
    TooLong,
    /// The value contains a character outside `[A-Za-z0-9._-]` or does not start with a letter or digit.
    #[error("must match [A-Za-z0-9][A-Za-z0-9._-]*")]
    InvalidCharacters,
}

fn parse_identifier(raw: &str) -> Result<(), IdentifierError> {
    let bytes = raw.as_bytes();
    let Some(first) = bytes.first() else {
        return Err(IdentifierError::Empty);
    };
    // Length is checked in characters, but any non-ASCII character is refused below anyway,
    // so counting chars here only matters for the error we report.
    if raw.chars().count() > 64 {
        return Err(IdentifierError::TooLong);
    }
    if !first.is_ascii_alphanumeric() {
        return Err(IdentifierError::InvalidCharacters);
    }
    if bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Ok(())
    } else {
        Err(IdentifierError::InvalidCharacters)
    }
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses a raw value; the only way to build one.
            pub fn parse(raw: &str) -> Result<Self, IdentifierError> {
                parse_identifier(raw).map(|()| Self(raw.to_owned()))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

identifier! {
    /// A tenant (for example a housing cooperative), as sent in `X-Tenant-ID`.
    ///
    /// ```
    /// use paracell_domain::TenantId;
    /// assert_eq!(TenantId::parse("coop-1").unwrap().as_str(), "coop-1");
    /// assert!(TenantId::parse("-coop").is_err());
    /// assert!(TenantId::parse("coop 1").is_err());
    /// ```
    TenantId
}

identifier! {
    /// The cell answering a request, from `PARACELL_CELL_ID`.
    ///
    /// ```
    /// use paracell_domain::CellId;
    /// assert_eq!(CellId::parse("cell-a").unwrap().to_string(), "cell-a");
    /// ```
    CellId
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_full_grammar() {
        assert!(TenantId::parse("a").is_ok());
        assert!(TenantId::parse("A9._-z").is_ok());
        assert!(TenantId::parse(&"x".repeat(64)).is_ok());
    }

    #[test]
    fn refuses_each_violation_with_its_reason() {
        assert_eq!(TenantId::parse(""), Err(IdentifierError::Empty));
        assert_eq!(
            TenantId::parse(&"x".repeat(65)),
            Err(IdentifierError::TooLong)
        );
        assert_eq!(
            TenantId::parse(".a"),
            Err(IdentifierError::InvalidCharacters)
        );
        assert_eq!(
            TenantId::parse("a,b"),
            Err(IdentifierError::InvalidCharacters)
        );
        assert_eq!(
            TenantId::parse("a b"),
            Err(IdentifierError::InvalidCharacters)
        );
        assert_eq!(
            TenantId::parse("café"),
            Err(IdentifierError::InvalidCharacters)
        );
        assert_eq!(
            TenantId::parse("a\u{0}"),
            Err(IdentifierError::InvalidCharacters)
        );
    }
}
