//! Turning a create-transaction body into a [`NewTransaction`], reporting every violation at once.
//!
//! Deriving `Deserialize` would stop at the first problem and silently keep the last of two duplicate
//! members, so the body is read into a duplicate-preserving JSON tree first and each member is then
//! parsed by the newtype that owns its rule.

use crate::money::{AmountText, Currency, CurrencyError};
use crate::transaction::{
    AccountId, Metadata, MetadataKey, MetadataValue, NewTransaction, Reference, TextError,
    TransactionKind,
};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;

/// A stable, machine-readable reason for one violation (the `code` of an `errors[]` entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationCode {
    /// A required member is missing or `null`.
    Required,
    /// The member has the wrong JSON type.
    InvalidType,
    /// `amount` was a JSON number: refused because binary floating point loses precision.
    AmountNotString,
    /// The text does not match the member's grammar.
    InvalidFormat,
    /// `amount` is zero.
    NotPositive,
    /// `amount` has more decimals than the currency's minor units.
    TooManyDecimals,
    /// Not an active ISO 4217 currency with minor units.
    UnsupportedCurrency,
    /// Text shorter or longer than allowed.
    InvalidLength,
    /// Text with characters outside the member's alphabet.
    InvalidCharacters,
    /// Text with control characters.
    ControlCharacters,
    /// A value outside the member's enumeration.
    InvalidValue,
    /// `metadata` has more than 16 entries.
    TooManyEntries,
    /// A `metadata` key outside `[A-Za-z0-9_.-]{1,40}`.
    InvalidKey,
    /// A member the contract does not define (a misspelling must not be dropped silently).
    UnknownField,
    /// The same member appears twice in one object.
    DuplicateField,
}

impl ViolationCode {
    /// Every code, in declaration order (the order `docs/openapi.yaml` lists them).
    pub const ALL: [ViolationCode; 15] = [
        Self::Required,
        Self::InvalidType,
        Self::AmountNotString,
        Self::InvalidFormat,
        Self::NotPositive,
        Self::TooManyDecimals,
        Self::UnsupportedCurrency,
        Self::InvalidLength,
        Self::InvalidCharacters,
        Self::ControlCharacters,
        Self::InvalidValue,
        Self::TooManyEntries,
        Self::InvalidKey,
        Self::UnknownField,
        Self::DuplicateField,
    ];

    /// The code as it appears in `errors[].code`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::InvalidType => "invalid_type",
            Self::AmountNotString => "amount_not_string",
            Self::InvalidFormat => "invalid_format",
            Self::NotPositive => "not_positive",
            Self::TooManyDecimals => "too_many_decimals",
            Self::UnsupportedCurrency => "unsupported_currency",
            Self::InvalidLength => "invalid_length",
            Self::InvalidCharacters => "invalid_characters",
            Self::ControlCharacters => "control_characters",
            Self::InvalidValue => "invalid_value",
            Self::TooManyEntries => "too_many_entries",
            Self::InvalidKey => "invalid_key",
            Self::UnknownField => "unknown_field",
            Self::DuplicateField => "duplicate_field",
        }
    }
}

/// One violation: where (an RFC 6901 JSON pointer into the body), why (a code), and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// JSON pointer to the offending member, e.g. `/amount` or `/metadata/key`.
    pub pointer: String,
    /// Stable code.
    pub code: ViolationCode,
    /// Human-readable explanation.
    pub detail: String,
}

/// Why a body could not be turned into a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Not JSON, or not a JSON object: the 400 `malformed-request` problem.
    Malformed(String),
    /// A JSON object that breaks one or more rules: the 422 `validation-failed` problem.
    Invalid(Vec<Violation>),
}

/// Parses and validates a create-transaction body.
///
/// ```
/// use paracell_domain::validation::{parse_new_transaction, BodyError};
/// let ok = parse_new_transaction(br#"{"account_id":"ACC-1","type":"credit","amount":"1.5","currency":"EUR"}"#);
/// assert_eq!(ok.unwrap().amount.to_string(), "1.50");
/// let Err(BodyError::Invalid(v)) = parse_new_transaction(br#"{"type":"loan","amount":1.5,"currency":"EUR"}"#) else { panic!() };
/// assert_eq!(v.len(), 3); // account_id missing, type invalid, amount is a number
/// ```
pub fn parse_new_transaction(body: &[u8]) -> Result<NewTransaction, BodyError> {
    if body.is_empty() {
        return Err(BodyError::Malformed(
            "the request body is empty; expected a JSON object".into(),
        ));
    }
    let members = match serde_json::from_slice::<Json>(body) {
        Ok(Json::Object(members)) => members,
        Ok(_) => {
            return Err(BodyError::Malformed(
                "the request body must be a JSON object".into(),
            ));
        }
        Err(e) => {
            return Err(BodyError::Malformed(format!(
                "the request body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            )));
        }
    };
    Validator::default().run(members)
}

const FIELDS: [&str; 6] = [
    "account_id",
    "type",
    "amount",
    "currency",
    "reference",
    "metadata",
];

#[derive(Default)]
struct Validator {
    violations: Vec<Violation>,
}

impl Validator {
    fn push(&mut self, pointer: String, code: ViolationCode, detail: impl Into<String>) {
        self.violations.push(Violation {
            pointer,
            code,
            detail: detail.into(),
        });
    }

    fn run(mut self, members: Vec<(String, Json)>) -> Result<NewTransaction, BodyError> {
        let mut fields: BTreeMap<&'static str, Json> = BTreeMap::new();
        let mut stray = Vec::new();
        for (name, value) in members {
            match FIELDS.iter().find(|f| **f == name) {
                Some(field) if fields.contains_key(field) => stray.push((
                    pointer(&[&name]),
                    ViolationCode::DuplicateField,
                    format!("{name} appears more than once"),
                )),
                Some(field) => {
                    fields.insert(field, value);
                }
                None => stray.push((
                    pointer(&[&name]),
                    ViolationCode::UnknownField,
                    format!(
                        "{name:?} is not a member of a transaction; allowed members are {}",
                        FIELDS.join(", ")
                    ),
                )),
            }
        }
        let mut take =
            |name: &'static str| fields.remove(name).filter(|v| !matches!(v, Json::Null));

        let account_id = self
            .required_string(take("account_id"), "account_id")
            .and_then(|raw| {
                AccountId::parse(&raw)
                    .map_err(|e| self.text_error("account_id", e, "[A-Za-z0-9._:-]"))
                    .ok()
            });
        let kind = self.required_string(take("type"), "type").and_then(|raw| {
            let kind = TransactionKind::parse(&raw);
            if kind.is_none() {
                self.push(
                    "/type".into(),
                    ViolationCode::InvalidValue,
                    "type must be \"credit\" or \"debit\"",
                );
            }
            kind
        });
        let amount_json = take("amount");
        // The amount's scale depends on the currency, but its violations are reported first
        // (document order), so the currency's own violation is pushed after the amount's.
        let currency_json = take("currency");
        let currency = match &currency_json {
            Some(Json::String(raw)) => Some(Currency::parse(raw)),
            _ => None,
        };
        let amount = self.amount(amount_json, currency.and_then(Result::ok));
        let currency = match currency {
            Some(Ok(c)) => Some(c),
            Some(Err(e @ CurrencyError::NotUpperCase)) => {
                self.push(
                    "/currency".into(),
                    ViolationCode::InvalidFormat,
                    format!("currency {e}"),
                );
                None
            }
            Some(Err(e @ CurrencyError::Unsupported)) => {
                self.push(
                    "/currency".into(),
                    ViolationCode::UnsupportedCurrency,
                    format!("currency {e}"),
                );
                None
            }
            None => {
                self.required_string(currency_json, "currency");
                None
            }
        };
        let reference = match take("reference") {
            None => Some(None),
            Some(Json::String(raw)) => Reference::parse(&raw)
                .map(Some)
                .map_err(|e| self.text_error("reference", e, ""))
                .ok(),
            Some(_) => {
                self.push(
                    "/reference".into(),
                    ViolationCode::InvalidType,
                    "reference must be a string",
                );
                None
            }
        };
        let metadata = match take("metadata") {
            None => Some(None),
            Some(Json::Object(entries)) => self.metadata(entries).map(Some),
            Some(_) => {
                self.push(
                    "/metadata".into(),
                    ViolationCode::InvalidType,
                    "metadata must be an object of strings",
                );
                None
            }
        };
        for (pointer, code, detail) in stray {
            self.push(pointer, code, detail);
        }

        match (account_id, kind, amount, currency, reference, metadata) {
            (
                Some(account_id),
                Some(kind),
                Some(amount),
                Some(currency),
                Some(reference),
                Some(metadata),
            ) if self.violations.is_empty() => Ok(NewTransaction {
                account_id,
                kind,
                amount,
                currency,
                reference,
                metadata,
            }),
            _ => Err(BodyError::Invalid(self.violations)),
        }
    }

    fn required_string(&mut self, value: Option<Json>, name: &str) -> Option<String> {
        match value {
            Some(Json::String(s)) => Some(s),
            None => {
                self.push(
                    pointer(&[name]),
                    ViolationCode::Required,
                    format!("{name} is required"),
                );
                None
            }
            Some(_) => {
                self.push(
                    pointer(&[name]),
                    ViolationCode::InvalidType,
                    format!("{name} must be a string"),
                );
                None
            }
        }
    }

    fn text_error(&mut self, name: &str, e: TextError, alphabet: &str) {
        let code = match e {
            TextError::TooShort(_) | TextError::TooLong(_) => ViolationCode::InvalidLength,
            TextError::InvalidCharacters => ViolationCode::InvalidCharacters,
            TextError::ControlCharacters => ViolationCode::ControlCharacters,
        };
        let detail = match e {
            TextError::InvalidCharacters if !alphabet.is_empty() => {
                format!("{name} may only contain {alphabet}")
            }
            other => format!("{name} {other}"),
        };
        self.push(pointer(&[name]), code, detail);
    }

    fn amount(&mut self, value: Option<Json>, currency: Option<Currency>) -> Option<crate::Amount> {
        let raw = match value {
            Some(Json::String(raw)) => raw,
            Some(Json::Number) => {
                self.push(
                    "/amount".into(),
                    ViolationCode::AmountNotString,
                    "amount must be a JSON string such as \"125.50\", not a JSON number: numbers are read as binary floating point and lose precision",
                );
                return None;
            }
            None => {
                self.push(
                    "/amount".into(),
                    ViolationCode::Required,
                    "amount is required",
                );
                return None;
            }
            Some(_) => {
                self.push(
                    "/amount".into(),
                    ViolationCode::InvalidType,
                    "amount must be a string such as \"125.50\"",
                );
                return None;
            }
        };
        let text = match AmountText::parse(&raw) {
            Ok(t) => t,
            Err(e) => {
                self.push(
                    "/amount".into(),
                    ViolationCode::InvalidFormat,
                    format!("amount {e}"),
                );
                return None;
            }
        };
        // Without a valid currency the scale rule cannot be judged; the currency's own violation says why.
        match text.in_currency(currency?) {
            Ok(amount) => Some(amount),
            Err(e) => {
                let code = match e {
                    crate::AmountError::NotPositive => ViolationCode::NotPositive,
                    crate::AmountError::TooManyDecimals(_) => ViolationCode::TooManyDecimals,
                    crate::AmountError::InvalidFormat => ViolationCode::InvalidFormat,
                };
                self.push("/amount".into(), code, format!("amount {e}"));
                None
            }
        }
    }

    fn metadata(&mut self, entries: Vec<(String, Json)>) -> Option<Metadata> {
        let before = self.violations.len();
        if entries.len() > Metadata::MAX_ENTRIES {
            self.push(
                "/metadata".into(),
                ViolationCode::TooManyEntries,
                format!(
                    "metadata may have at most {} entries, found {}",
                    Metadata::MAX_ENTRIES,
                    entries.len()
                ),
            );
        }
        let mut map = BTreeMap::new();
        let mut seen = std::collections::HashSet::new();
        for (key, value) in entries {
            let at = pointer(&["metadata", &key]);
            if !seen.insert(key.clone()) {
                self.push(
                    at,
                    ViolationCode::DuplicateField,
                    "metadata key appears more than once",
                );
                continue;
            }
            let parsed_key = match MetadataKey::parse(&key) {
                Ok(k) => Some(k),
                Err(_) => {
                    self.push(
                        at.clone(),
                        ViolationCode::InvalidKey,
                        "metadata keys must be 1-40 characters of [A-Za-z0-9_.-]",
                    );
                    None
                }
            };
            let parsed_value = match value {
                Json::String(v) => match MetadataValue::parse(&v) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        self.push(
                            at,
                            ViolationCode::InvalidLength,
                            format!("metadata value {e}"),
                        );
                        None
                    }
                },
                _ => {
                    self.push(
                        at,
                        ViolationCode::InvalidType,
                        "metadata values must be strings",
                    );
                    None
                }
            };
            if let (Some(k), Some(v)) = (parsed_key, parsed_value) {
                map.insert(k, v);
            }
        }
        if self.violations.len() > before {
            return None;
        }
        Metadata::from_entries(map)
    }
}

/// Builds an RFC 6901 JSON pointer from unescaped reference tokens.
pub fn pointer(tokens: &[&str]) -> String {
    let mut out = String::new();
    for token in tokens {
        out.push('/');
        out.push_str(&token.replace('~', "~0").replace('/', "~1"));
    }
    out
}

/// A JSON tree that keeps duplicate object members (serde_json's `Value` keeps only the last).
/// Numbers are not kept: no member of the contract accepts one.
enum Json {
    Null,
    Bool,
    Number,
    String(String),
    Array,
    Object(Vec<(String, Json)>),
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Json, E> {
        Ok(Json::Bool)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Json, E> {
        Ok(Json::Number)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Json, E> {
        Ok(Json::Number)
    }
    #[allow(clippy::float_arithmetic)]
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Json, E> {
        Ok(Json::Number)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        while seq.next_element::<Json>()?.is_some() {}
        Ok(Json::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Json>()? {
            members.push((k, v));
        }
        Ok(Json::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violations(body: &str) -> Vec<(String, ViolationCode)> {
        match parse_new_transaction(body.as_bytes()) {
            Err(BodyError::Invalid(v)) => v.into_iter().map(|v| (v.pointer, v.code)).collect(),
            other => panic!("expected violations, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_body_becomes_a_command() {
        let cmd = parse_new_transaction(
            br#"{"account_id":"ACC-1","type":"debit","amount":"7","currency":"JPY","reference":"rent","metadata":{"b":"2","a":"1"}}"#,
        )
        .unwrap();
        assert_eq!(cmd.amount.to_string(), "7");
        assert_eq!(cmd.metadata.as_ref().map(Metadata::len), Some(2));
        assert_eq!(
            cmd.fingerprint(),
            r#"{"account_id":"ACC-1","type":"debit","amount":"7","currency":"JPY","reference":"rent","metadata":{"a":"1","b":"2"}}"#
        );
    }

    #[test]
    fn reports_every_violation_at_once() {
        let v = violations(
            r#"{"account_id":"","type":"loan","amount":"1.001","currency":"EUR","refrence":"x","metadata":{"bad key":"v","n":1}}"#,
        );
        assert_eq!(
            v,
            vec![
                ("/account_id".into(), ViolationCode::InvalidLength),
                ("/type".into(), ViolationCode::InvalidValue),
                ("/amount".into(), ViolationCode::TooManyDecimals),
                ("/metadata/bad key".into(), ViolationCode::InvalidKey),
                ("/metadata/n".into(), ViolationCode::InvalidType),
                ("/refrence".into(), ViolationCode::UnknownField),
            ]
        );
    }

    #[test]
    fn a_json_number_amount_is_refused_with_the_reason() {
        let Err(BodyError::Invalid(v)) = parse_new_transaction(
            br#"{"account_id":"A","type":"credit","amount":125.5,"currency":"EUR"}"#,
        ) else {
            panic!()
        };
        assert_eq!(v[0].code, ViolationCode::AmountNotString);
        assert!(v[0].detail.contains("floating point"));
    }

    #[test]
    fn duplicates_are_refused_not_last_wins() {
        let v = violations(
            r#"{"account_id":"A","type":"credit","amount":"1","amount":"1000","currency":"EUR","metadata":{"k":"1","k":"2"}}"#,
        );
        assert_eq!(
            v,
            vec![
                ("/metadata/k".into(), ViolationCode::DuplicateField),
                ("/amount".into(), ViolationCode::DuplicateField)
            ]
        );
    }

    #[test]
    fn nulls_mean_absent() {
        assert!(parse_new_transaction(br#"{"account_id":"A","type":"credit","amount":"1","currency":"EUR","reference":null,"metadata":null}"#).is_ok());
        assert_eq!(
            violations(r#"{"account_id":null,"type":"credit","amount":"1","currency":"EUR"}"#),
            vec![("/account_id".into(), ViolationCode::Required)]
        );
    }

    #[test]
    fn currency_rules() {
        assert_eq!(
            violations(r#"{"account_id":"A","type":"credit","amount":"1","currency":"eur"}"#),
            vec![("/currency".into(), ViolationCode::InvalidFormat)]
        );
        assert_eq!(
            violations(r#"{"account_id":"A","type":"credit","amount":"1","currency":"XAU"}"#),
            vec![("/currency".into(), ViolationCode::UnsupportedCurrency)]
        );
    }

    #[test]
    fn malformed_bodies() {
        for body in [
            "",
            "not json",
            "[1]",
            "\"s\"",
            "{\"a\":",
            "{\"a\":\"\\ud800\"}",
        ] {
            assert!(
                matches!(
                    parse_new_transaction(body.as_bytes()),
                    Err(BodyError::Malformed(_))
                ),
                "{body:?}"
            );
        }
        assert!(matches!(
            parse_new_transaction(b"{\"a\":\"\xff\"}"),
            Err(BodyError::Malformed(_))
        ));
    }

    #[test]
    fn pointer_escapes_tokens() {
        assert_eq!(pointer(&["metadata", "a/b~c"]), "/metadata/a~1b~0c");
    }

    #[test]
    fn metadata_entry_limit_boundary() {
        let entries = |n: usize| {
            (0..n)
                .map(|i| format!("\"k{i}\":\"v\""))
                .collect::<Vec<_>>()
                .join(",")
        };
        let body = |n| {
            format!(
                r#"{{"account_id":"A","type":"credit","amount":"1","currency":"EUR","metadata":{{{}}}}}"#,
                entries(n)
            )
        };
        assert!(parse_new_transaction(body(16).as_bytes()).is_ok());
        assert_eq!(
            violations(&body(17)),
            vec![("/metadata".into(), ViolationCode::TooManyEntries)]
        );
    }
}
