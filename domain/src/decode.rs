//! [`DecodeError`]: a stored document, wire format or value that is not in its format.

use std::fmt::Display;

/// A document or value that is not in its format: what was being read, and what is wrong with it.
/// Every reader of a Paracell format answers with it (a stored transaction, a placement record, a
/// dead letter, a replication batch, a route table), so a caller can tell "unreadable" apart from
/// every other failure without matching on text.
///
/// ```
/// use paracell_domain::Transaction;
/// let e = Transaction::from_json(b"[]").unwrap_err();
/// assert_eq!(e.what, "transaction");
/// assert!(e.to_string().starts_with("transaction: "));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {detail}")]
pub struct DecodeError {
    /// What was being read (`"transaction"`, `"placement"`, `"dead letter"`, `"route table"`, …).
    pub what: &'static str,
    /// What is wrong with it.
    pub detail: String,
}

impl DecodeError {
    pub(crate) fn new(what: &'static str, detail: impl Display) -> Self {
        Self {
            what,
            detail: detail.to_string(),
        }
    }
}
