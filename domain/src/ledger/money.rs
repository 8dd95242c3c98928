//! Money: ISO 4217 currencies with their minor units, and exact decimal amounts.
//!
//! Amounts travel as JSON *strings* and live as [`rust_decimal::Decimal`]; no value on the money path
//! ever passes through binary floating point. An [`Amount`] can only be built from text that matches
//! the contract's grammar, and it is always rendered with exactly its currency's minor-unit digits.

use rust_decimal::Decimal;
use std::fmt;

/// An active ISO 4217 currency that has defined minor units.
///
/// Codes without minor units (XAU, XDR, XXX …), special-purpose `X` codes and superseded codes
/// (HRK, BGN …) are refused: their amounts cannot be rendered canonically, or they are no longer legal tender.
///
/// ```
/// use paracell_domain::Currency;
/// assert_eq!(Currency::parse("EUR").unwrap().minor_units(), 2);
/// assert_eq!(Currency::parse("JPY").unwrap().minor_units(), 0);
/// assert_eq!(Currency::parse("BHD").unwrap().minor_units(), 3);
/// assert!(Currency::parse("XAU").is_err());
/// assert!(Currency::parse("eur").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: iso_currency::Currency,
    minor_units: u8,
}

/// Why a currency code was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CurrencyError {
    /// Not three upper-case ASCII letters.
    #[error("must be an upper-case ISO 4217 alphabetic code such as \"EUR\"")]
    NotUpperCase,
    /// Not an active ISO 4217 code with defined minor units.
    #[error("is not an active ISO 4217 currency with defined minor units")]
    Unsupported,
}

impl Currency {
    /// Parses an upper-case ISO 4217 alphabetic code.
    pub fn parse(code: &str) -> Result<Self, CurrencyError> {
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(CurrencyError::NotUpperCase);
        }
        let iso = iso_currency::Currency::from_code(code).ok_or(CurrencyError::Unsupported)?;
        let retired = iso.flags().iter().any(|flag| {
            matches!(
                flag,
                iso_currency::Flag::Special | iso_currency::Flag::Superseded(_)
            )
        });
        match iso.exponent() {
            Some(exp) if !retired => Ok(Self {
                code: iso,
                minor_units: u8::try_from(exp).map_err(|_| CurrencyError::Unsupported)?,
            }),
            _ => Err(CurrencyError::Unsupported),
        }
    }

    /// The three-letter code.
    pub fn code(self) -> &'static str {
        self.code.code()
    }

    /// Digits after the decimal point (EUR 2, JPY 0, BHD 3, CLF 4).
    pub fn minor_units(self) -> u8 {
        self.minor_units
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl PartialOrd for Currency {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Currency {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.code().cmp(other.code())
    }
}

impl serde::Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

/// Why an amount was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Does not match `^(0|[1-9][0-9]{0,11})(\.[0-9]+)?$`.
    #[error(
        "must be a decimal string such as \"125.50\": digits, an optional fraction, no sign, exponent or leading zeros, at most 12 integer digits"
    )]
    InvalidFormat,
    /// Zero.
    #[error("must be greater than zero")]
    NotPositive,
    /// More fraction digits than the currency has minor units.
    #[error("has more decimal places than the currency's {0} minor units")]
    TooManyDecimals(u8),
}

/// The textual shape of an amount, checked but not yet tied to a currency.
///
/// Splitting the grammar from the currency rule lets validation report a bad amount and a bad
/// currency in the same response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmountText<'a> {
    integer: &'a str,
    fraction: &'a str,
}

impl<'a> AmountText<'a> {
    /// Checks the grammar `^(0|[1-9][0-9]{0,11})(\.[0-9]+)?$`.
    pub fn parse(raw: &'a str) -> Result<Self, AmountError> {
        let (integer, fraction) = match raw.split_once('.') {
            Some((i, f)) if !f.is_empty() => (i, f),
            Some(_) => return Err(AmountError::InvalidFormat),
            None => (raw, ""),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let integer_ok =
            digits(integer) && integer.len() <= 12 && (integer == "0" || !integer.starts_with('0'));
        if !integer_ok || !(fraction.is_empty() || digits(fraction)) {
            return Err(AmountError::InvalidFormat);
        }
        Ok(Self { integer, fraction })
    }

    /// Ties the text to a currency: checks scale and sign, and produces the exact value.
    pub fn in_currency(self, currency: Currency) -> Result<Amount, AmountError> {
        let minor = currency.minor_units();
        if self.fraction.len() > usize::from(minor) {
            return Err(AmountError::TooManyDecimals(minor));
        }
        // At most 12 + 4 digits: always fits the 96-bit mantissa, so parsing cannot fail.
        let mut mantissa: i128 = 0;
        for b in self.integer.bytes().chain(self.fraction.bytes()) {
            mantissa = mantissa * 10 + i128::from(b - b'0');
        }
        if mantissa == 0 {
            return Err(AmountError::NotPositive);
        }
        let scale = u32::try_from(self.fraction.len()).map_err(|_| AmountError::InvalidFormat)?;
        let value = Decimal::try_from_i128_with_scale(mantissa, scale)
            .map_err(|_| AmountError::InvalidFormat)?;
        Ok(Amount { value, currency })
    }
}

/// A strictly positive amount of a currency, exact to the currency's minor units.
///
/// ```
/// use paracell_domain::{Amount, Currency};
/// let eur = Currency::parse("EUR").unwrap();
/// assert_eq!(Amount::parse("125.5", eur).unwrap().to_string(), "125.50");
/// let jpy = Currency::parse("JPY").unwrap();
/// assert_eq!(Amount::parse("500", jpy).unwrap().to_string(), "500");
/// assert!(Amount::parse("0.5", jpy).is_err());
/// assert!(Amount::parse("1e3", eur).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount {
    value: Decimal,
    currency: Currency,
}

impl Amount {
    /// Parses contract text in a currency.
    pub fn parse(raw: &str, currency: Currency) -> Result<Self, AmountError> {
        AmountText::parse(raw)?.in_currency(currency)
    }

    /// The exact value.
    pub fn value(self) -> Decimal {
        self.value
    }

    /// The currency.
    pub fn currency(self) -> Currency {
        self.currency
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render(self.value, self.currency))
    }
}

impl serde::Serialize for Amount {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // `serialize_str` on the rendered text: `collect_str` escapes every `fmt` fragment.
        serializer.serialize_str(&render(self.value, self.currency))
    }
}

/// Renders a value with exactly the currency's minor-unit digits ("125.5" EUR → "125.50").
pub fn render(value: Decimal, currency: Currency) -> String {
    let mut v = value;
    v.rescale(u32::from(currency.minor_units()));
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        Currency::parse("EUR").unwrap()
    }

    #[test]
    fn grammar_boundaries() {
        for ok in ["0.01", "1", "10", "999999999999", "999999999999.99", "0.1"] {
            assert!(Amount::parse(ok, eur()).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".5",
            "5.",
            "01",
            "00.5",
            "+1",
            "-1",
            "1e2",
            " 1",
            "1 ",
            "1,00",
            "1000000000000",
            "١",
            "0x10",
            "1.2.3",
        ] {
            assert_eq!(
                Amount::parse(bad, eur()),
                Err(AmountError::InvalidFormat),
                "{bad:?}"
            );
        }
        assert_eq!(Amount::parse("0", eur()), Err(AmountError::NotPositive));
        assert_eq!(Amount::parse("0.00", eur()), Err(AmountError::NotPositive));
        assert_eq!(
            Amount::parse("1.001", eur()),
            Err(AmountError::TooManyDecimals(2))
        );
        assert_eq!(Amount::parse("1.10", eur()).unwrap().to_string(), "1.10");
    }

    #[test]
    fn renders_minor_units_per_currency() {
        let cases = [
            ("JPY", "7", "7"),
            ("BHD", "1.5", "1.500"),
            ("CLF", "2", "2.0000"),
            ("EUR", "3", "3.00"),
        ];
        for (code, raw, rendered) in cases {
            let c = Currency::parse(code).unwrap();
            assert_eq!(Amount::parse(raw, c).unwrap().to_string(), rendered);
        }
    }

    #[test]
    fn refuses_currencies_without_minor_units_or_retired() {
        for code in ["XAU", "XXX", "XDR", "XTS", "HRK", "ABC"] {
            assert_eq!(
                Currency::parse(code),
                Err(CurrencyError::Unsupported),
                "{code}"
            );
        }
        for code in ["eur", "EU", "EURO", "Eur"] {
            assert_eq!(
                Currency::parse(code),
                Err(CurrencyError::NotUpperCase),
                "{code}"
            );
        }
    }
}
