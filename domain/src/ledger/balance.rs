//! Ledger arithmetic: how a transaction changes an available balance. Balances never go negative.

use crate::Amount;
use crate::transaction::TransactionKind;
use rust_decimal::Decimal;

/// Why a transaction cannot be booked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// A debit larger than the available balance.
    #[error("the debit exceeds the available balance")]
    InsufficientFunds,
    /// A credit that would exceed the largest representable balance (28 significant digits).
    #[error("the balance would exceed the largest representable amount")]
    Overflow,
}

/// The available balance after applying a transaction to `available`, exact: both operands
/// carry at most the currency's minor units.
///
/// ```
/// use paracell_domain::{ledger::{apply, LedgerError}, Amount, Currency, TransactionKind};
/// use rust_decimal::Decimal;
/// let eur = Currency::parse("EUR").unwrap();
/// let ten = Amount::parse("10", eur).unwrap();
/// assert_eq!(apply(Decimal::ZERO, TransactionKind::Credit, ten).unwrap().to_string(), "10.00");
/// assert_eq!(apply(Decimal::ZERO, TransactionKind::Debit, ten), Err(LedgerError::InsufficientFunds));
/// ```
pub fn apply(
    available: Decimal,
    kind: TransactionKind,
    amount: Amount,
) -> Result<Decimal, LedgerError> {
    let next = match kind {
        TransactionKind::Credit => available
            .checked_add(amount.value())
            .ok_or(LedgerError::Overflow)?,
        TransactionKind::Debit => {
            let next = available
                .checked_sub(amount.value())
                .ok_or(LedgerError::Overflow)?;
            if next.is_sign_negative() && !next.is_zero() {
                return Err(LedgerError::InsufficientFunds);
            }
            next
        }
    };
    // Canonical scale, so stored and rendered balances read the same on every store. Both operands
    // have at most this scale, so rescaling only adds trailing zeros.
    let mut next = next;
    next.rescale(u32::from(amount.currency().minor_units()));
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Currency;

    #[test]
    fn exact_to_the_last_minor_unit() {
        let eur = Currency::parse("EUR").unwrap();
        let a = |s| Amount::parse(s, eur).unwrap();
        let mut balance = Decimal::ZERO;
        for _ in 0..10 {
            balance = apply(balance, TransactionKind::Credit, a("0.10")).unwrap();
        }
        assert_eq!(balance.to_string(), "1.00");
        balance = apply(balance, TransactionKind::Debit, a("1")).unwrap();
        assert_eq!(balance.to_string(), "0.00");
        assert_eq!(
            apply(balance, TransactionKind::Debit, a("0.01")),
            Err(LedgerError::InsufficientFunds)
        );
    }
}
