//! Writing JSON directly into a `String`, for the few documents the cell renders on every request
//! (the transaction resource, the fingerprint, problems, events, replication entries).
//!
//! Writing by hand makes rendering infallible by construction (no `Result` to swallow with
//! `unwrap_or_default`, which would turn a bug into an empty fingerprint) and avoids serde's
//! machinery on the hot path. The escaping is exactly serde_json's, so the bytes are the same as
//! they always were; a property test holds the two together.

/// Appends `text` as a JSON string literal, escaped exactly as `serde_json` escapes it: `"` and `\`
/// with a backslash, `\b \t \n \f \r` by name, every other control character below U+0020 as
/// `\u00xx` (lower-case hex), everything else as it is.
///
/// ```
/// let mut out = String::new();
/// paracell_domain::contract::json::push_str(&mut out, "a\"b\\\u{1}é");
/// assert_eq!(out, r#""a\"b\\\u0001é""#);
/// ```
pub fn push_str(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let mut start = 0;
    for (i, byte) in text.bytes().enumerate() {
        let escape: &str = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            b'\t' => "\\t",
            b'\n' => "\\n",
            0x0c => "\\f",
            b'\r' => "\\r",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&text[start..i]);
        if escape.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&text[start..]);
    out.push('"');
}

/// Appends `"name":` (the name must need no escaping: a constant of ours).
pub(crate) fn push_name(out: &mut String, name: &str) {
    out.push('"');
    out.push_str(name);
    out.push_str("\":");
}

/// Appends `"name":"value"` with `value` escaped.
pub(crate) fn push_member(out: &mut String, name: &str, value: &str) {
    push_name(out, name);
    push_str(out, value);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn escapes_exactly_like_serde_json(text in any::<String>()) {
            let mut out = String::new();
            super::push_str(&mut out, &text);
            prop_assert_eq!(out, serde_json::to_string(&text).unwrap());
        }
    }

    #[test]
    fn every_control_character() {
        let text: String = (0u8..0x20)
            .map(char::from)
            .chain(['\u{7f}', '"', '\\', '/'])
            .collect();
        let mut out = String::new();
        super::push_str(&mut out, &text);
        assert_eq!(out, serde_json::to_string(&text).unwrap());
    }
}
