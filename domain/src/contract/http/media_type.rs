/// Why a `Content-Type` was refused (the 415 problem's detail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MediaTypeError {
    /// No `Content-Type`.
    #[error("Content-Type is required and must be application/json.")]
    Missing,
    /// A media type other than `application/json` (including `+json` types), or a malformed header.
    #[error("Content-Type must be application/json.")]
    NotJson,
    /// `application/json` with a charset other than utf-8.
    #[error("application/json must be encoded as utf-8; other charsets are not accepted.")]
    Charset,
}

/// The media type of a `Content-Type` value without parameters, lower-cased (`type/subtype`).
///
/// ```
/// assert_eq!(paracell_domain::http::essence(" Application/JSON ; charset=utf-8"), "application/json");
/// ```
pub fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim_matches([' ', '\t'])
        .to_ascii_lowercase()
}

/// `content_type` stating `charset=utf-8`: another charset's value replaced, else the parameter
/// appended — what ASP.NET Core's `MediaType.ReplaceEncoding(value, UTF8)` does to a string body's
/// `Content-Type` in the Functions host, and what the workload door applies so every platform sends
/// the same header.
///
/// ```
/// use paracell_domain::http::with_utf8_charset;
/// assert_eq!(with_utf8_charset("application/json"), "application/json; charset=utf-8");
/// assert_eq!(with_utf8_charset("application/json; charset=utf-8"), "application/json; charset=utf-8");
/// assert_eq!(with_utf8_charset("text/plain; charset=latin1; x=y"), "text/plain; charset=utf-8; x=y");
/// ```
pub fn with_utf8_charset(content_type: &str) -> String {
    let mut parts: Vec<String> = content_type.split(';').map(str::to_owned).collect();
    let mut found = false;
    for part in parts.iter_mut().skip(1) {
        if let Some((name, _)) = part.split_once('=')
            && name.trim().eq_ignore_ascii_case("charset")
        {
            *part = format!("{name}=utf-8");
            found = true;
        }
    }
    if found {
        parts.join(";")
    } else {
        format!("{content_type}; charset=utf-8")
    }
}

/// Accepts `application/json` (any case, optional parameters), with no charset or charset utf-8
/// (any case, optionally quoted). Everything else is 415.
///
/// ```
/// use paracell_domain::http::{require_json, MediaTypeError};
/// assert!(require_json(Some("application/json")).is_ok());
/// assert!(require_json(Some("Application/JSON; charset=\"UTF-8\"")).is_ok());
/// assert_eq!(require_json(Some("application/json; charset=latin1")), Err(MediaTypeError::Charset));
/// assert_eq!(require_json(Some("application/vnd.api+json")), Err(MediaTypeError::NotJson));
/// assert_eq!(require_json(None), Err(MediaTypeError::Missing));
/// ```
pub fn require_json(content_type: Option<&str>) -> Result<(), MediaTypeError> {
    require_media_type(content_type, "application/json")
}

/// Accepts the media type `expected` (lower-case `type/subtype`; the header in any case, optional
/// parameters), with no charset or charset utf-8. The errors' texts speak of `application/json`:
/// callers with another type write their own detail.
///
/// ```
/// use paracell_domain::http::require_media_type;
/// let batch = "application/cloudevents-batch+json";
/// assert!(require_media_type(Some("application/cloudevents-batch+json; charset=utf-8"), batch).is_ok());
/// assert!(require_media_type(Some("application/json"), batch).is_err());
/// ```
pub fn require_media_type(
    content_type: Option<&str>,
    expected: &str,
) -> Result<(), MediaTypeError> {
    let value = content_type.ok_or(MediaTypeError::Missing)?;
    if essence(value) != expected {
        return Err(MediaTypeError::NotJson);
    }
    let mut parts = value.split(';');
    parts.next();
    for param in parts {
        let param = param.trim_matches([' ', '\t']);
        if param.is_empty() {
            continue;
        }
        let (name, raw) = param.split_once('=').ok_or(MediaTypeError::NotJson)?;
        if !name
            .trim_end_matches([' ', '\t'])
            .eq_ignore_ascii_case("charset")
        {
            continue;
        }
        let raw = raw.trim_start_matches([' ', '\t']);
        let charset = match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            Some(quoted) => quoted.replace('\\', ""),
            None => raw.to_owned(),
        };
        if !charset.eq_ignore_ascii_case("utf-8") {
            return Err(MediaTypeError::Charset);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_spellings() {
        for ok in [
            "application/json",
            "APPLICATION/JSON",
            "application/json;charset=utf-8",
            "application/json ; charset=UTF-8",
            "application/json; charset=\"utf-8\"",
            "application/json; foo=bar",
            "application/json;",
        ] {
            assert_eq!(require_json(Some(ok)), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refused_spellings() {
        for (bad, why) in [
            ("text/json", MediaTypeError::NotJson),
            ("application/problem+json", MediaTypeError::NotJson),
            (
                "application/json, application/json",
                MediaTypeError::NotJson,
            ),
            ("application/jsonx", MediaTypeError::NotJson),
            ("application/json; charset", MediaTypeError::NotJson),
            ("application/json; charset=utf-16", MediaTypeError::Charset),
            (
                "application/json; charset=iso-8859-1",
                MediaTypeError::Charset,
            ),
            ("application/json; charset=utf8", MediaTypeError::Charset),
            ("multipart/form-data; boundary=x", MediaTypeError::NotJson),
            ("", MediaTypeError::NotJson),
        ] {
            assert_eq!(require_json(Some(bad)), Err(why), "{bad}");
        }
    }
}
