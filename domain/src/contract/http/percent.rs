//! Percent-encoding (RFC 3986 §2.1), the one implementation every crate uses.

/// Decodes `%XX` escapes strictly: `None` on a malformed escape. (Paths: a malformed escape makes a
/// different, unknown path.)
///
/// ```
/// use paracell_domain::http::percent;
/// assert_eq!(percent::decode_strict("ACC%3A1").as_deref(), Some(&b"ACC:1"[..]));
/// assert_eq!(percent::decode_strict("%zz"), None);
/// ```
pub fn decode_strict(text: &str) -> Option<Vec<u8>> {
    decode(text, true)
}

/// Decodes `%XX` escapes leniently, keeping a malformed escape as it is (what servers do with
/// query strings), and returns text with invalid UTF-8 replaced by U+FFFD.
///
/// ```
/// use paracell_domain::http::percent;
/// assert_eq!(percent::decode_lossy("a%20b%zz"), "a b%zz");
/// ```
pub fn decode_lossy(text: &str) -> String {
    String::from_utf8_lossy(&decode(text, false).unwrap_or_default()).into_owned()
}

fn decode(text: &str, strict: bool) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None if strict => return None,
                None => {}
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    Some(out)
}

/// Encodes everything but RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`), as .NET's
/// `Uri.EscapeDataString` does.
///
/// ```
/// assert_eq!(paracell_domain::http::percent::encode_component("a b,c/é"), "a%20b%2Cc%2F%C3%A9");
/// ```
pub fn encode_component(text: &str) -> String {
    encode_except(text, b"-._~")
}

/// Encodes a decoded path back into a valid one: keeps what RFC 3986 allows in a path unescaped
/// (unreserved, sub-delims, `:`, `@`, `/`) and escapes everything else — `%` first of all, so a
/// literal `%41` in a decoded path stays three characters instead of becoming `A` when decoded again.
///
/// ```
/// use paracell_domain::http::percent;
/// assert_eq!(percent::encode_path("/v1/a b/%00/é:@!"), "/v1/a%20b/%2500/%C3%A9:@!");
/// assert_eq!(percent::decode_lossy(&percent::encode_path("/%41?#")), "/%41?#");
/// ```
pub fn encode_path(text: &str) -> String {
    encode_except(text, b"-._~!$&'()*+,;=:@/")
}

/// Escapes every byte but ASCII letters, digits and `keep`.
fn encode_except(text: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";
