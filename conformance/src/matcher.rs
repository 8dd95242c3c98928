//! Expectation matching: JSON subsets, `"*"` wildcards and `${name}` captures.
//!
//! * objects: every expected member is present and matches; extra members are allowed;
//! * arrays: same length, matched element by element;
//! * `"*"` matches any value;
//! * `"${name}"` captures the value on first use and must equal it afterwards; inside a longer string
//!   (`"/v1/transactions/${tx}"`) it captures the text in its place.

use serde_json::Value;
use std::collections::BTreeMap;

/// Values captured so far in one envelope's run of a case.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Captures(BTreeMap<String, Value>);

impl Captures {
    /// Replaces every `${name}` in `text` with its captured value (strings as they are, other JSON as text).
    pub fn substitute(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (name, value) in &self.0 {
            let replacement = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out = out.replace(&format!("${{{name}}}"), &replacement);
        }
        out
    }

    /// Substitutes inside every string of a JSON value.
    pub fn substitute_json(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.substitute(s)),
            Value::Array(a) => Value::Array(a.iter().map(|v| self.substitute_json(v)).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| (k.clone(), self.substitute_json(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// Where and why an expectation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// JSON pointer (or header name) of the failure.
    pub at: String,
    /// What was expected and what was found.
    pub message: String,
}

/// Matches `actual` against `expected` at `at`.
pub fn match_json(
    expected: &Value,
    actual: &Value,
    captures: &mut Captures,
    at: &str,
) -> Result<(), Mismatch> {
    let fail = |message: String| {
        Err(Mismatch {
            at: at.to_owned(),
            message,
        })
    };
    match expected {
        Value::String(s) if s == "*" => Ok(()),
        Value::String(s) if whole_capture(s).is_some() => {
            let name = whole_capture(s).unwrap_or_default();
            match captures.0.get(name) {
                Some(v) if v == actual => Ok(()),
                Some(v) => fail(format!("${{{name}}} was {v}, found {actual}")),
                None => {
                    captures.0.insert(name.to_owned(), actual.clone());
                    Ok(())
                }
            }
        }
        Value::String(s) if s.contains("${") => match actual {
            Value::String(a) => match_template(s, a, captures).map_err(|message| Mismatch {
                at: at.to_owned(),
                message,
            }),
            other => fail(format!("expected a string matching {s:?}, found {other}")),
        },
        Value::Object(expected) => {
            let Value::Object(actual) = actual else {
                return fail(format!("expected an object, found {actual}"));
            };
            for (key, e) in expected {
                let child = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                match actual.get(key) {
                    Some(a) => match_json(e, a, captures, &child)?,
                    None => {
                        return Err(Mismatch {
                            at: child,
                            message: "missing".into(),
                        });
                    }
                }
            }
            Ok(())
        }
        Value::Array(expected) => {
            let Value::Array(actual) = actual else {
                return fail(format!("expected an array, found {actual}"));
            };
            if expected.len() != actual.len() {
                return fail(format!(
                    "expected {} elements, found {}",
                    expected.len(),
                    actual.len()
                ));
            }
            for (i, (e, a)) in expected.iter().zip(actual).enumerate() {
                match_json(e, a, captures, &format!("{at}/{i}"))?;
            }
            Ok(())
        }
        other if other == actual => Ok(()),
        other => fail(format!("expected {other}, found {actual}")),
    }
}

/// Matches a string with embedded `${name}` placeholders.
pub fn match_template(template: &str, actual: &str, captures: &mut Captures) -> Result<(), String> {
    if template == "*" {
        return Ok(());
    }
    let template = captures.substitute(template);
    let mut rest = actual;
    let mut pending: Option<String> = None;
    let mut remaining = template.as_str();
    let mut new = Vec::new();
    loop {
        let (literal, next) = match remaining.find("${") {
            Some(i) => (&remaining[..i], Some(&remaining[i + 2..])),
            None => (remaining, None),
        };
        match pending.take() {
            None => {
                rest = rest
                    .strip_prefix(literal)
                    .ok_or_else(|| format!("expected {template:?}, found {actual:?}"))?;
            }
            Some(name) => {
                // The placeholder takes everything up to the next literal (or to the end).
                let end = if literal.is_empty() && next.is_none() {
                    Some(rest.len())
                } else if literal.is_empty() {
                    None
                } else {
                    rest.find(literal)
                };
                let end = end.ok_or_else(|| format!("expected {template:?}, found {actual:?}"))?;
                if end == 0 {
                    return Err(format!("${{{name}}} would capture nothing in {actual:?}"));
                }
                new.push((name, rest[..end].to_owned()));
                rest = &rest[end + literal.len()..];
            }
        }
        let Some(after) = next else { break };
        let close = after
            .find('}')
            .ok_or_else(|| format!("unclosed placeholder in {template:?}"))?;
        pending = Some(after[..close].to_owned());
        remaining = &after[close + 1..];
    }
    if !rest.is_empty() {
        return Err(format!("expected {template:?}, found {actual:?}"));
    }
    for (name, value) in new {
        captures.0.insert(name, Value::String(value));
    }
    Ok(())
}

fn whole_capture(s: &str) -> Option<&str> {
    s.strip_prefix("${")
        .and_then(|r| r.strip_suffix('}'))
        .filter(|n| !n.contains(['{', '}', '$']))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_wildcards_and_captures() {
        let mut c = Captures::default();
        let actual = json!({"id": "abc", "n": 1, "extra": true, "list": [1, {"a": 2, "b": 3}]});
        assert!(
            match_json(
                &json!({"id": "${x}", "n": "*", "list": [1, {"a": 2}]}),
                &actual,
                &mut c,
                ""
            )
            .is_ok()
        );
        assert_eq!(c.substitute("/t/${x}"), "/t/abc");
        assert!(match_json(&json!({"id": "${x}"}), &json!({"id": "other"}), &mut c, "").is_err());
        assert_eq!(
            match_json(&json!({"list": [1]}), &actual, &mut c, "")
                .unwrap_err()
                .at,
            "/list"
        );
        assert_eq!(
            match_json(&json!({"missing": 1}), &actual, &mut c, "")
                .unwrap_err()
                .at,
            "/missing"
        );
    }

    #[test]
    fn templates_capture_the_text_in_place() {
        let mut c = Captures::default();
        assert!(
            match_template("/v1/transactions/${tx}", "/v1/transactions/0190-a", &mut c).is_ok()
        );
        assert_eq!(c.substitute("${tx}"), "0190-a");
        assert!(
            match_template("/v1/transactions/${tx}", "/v1/transactions/0190-a", &mut c).is_ok()
        );
        assert!(
            match_template("/v1/transactions/${tx}", "/v1/transactions/other", &mut c).is_err()
        );
        assert!(match_template("a${p}c${q}", "abbbcdd", &mut c).is_ok());
        assert_eq!(c.substitute("${p}-${q}"), "bbb-dd");
        assert!(match_template("x", "y", &mut c).is_err());
    }
}
