//! Payload mode: the host's envelope → the neutral request; the neutral response → the reply envelope.

use crate::config::AzureConfig;
#[cfg(doc)]
use crate::inbound::envelope::InvokeRequest;
use crate::inbound::envelope::{HttpOutput, HttpTrigger, InvokeResponse};
use base64::Engine as _;
use paracell_domain::http::{ApiRequest, ApiResponse, Headers};
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// Why an envelope could not be translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON, or not the `{"Data":…}` shape.
    #[error(
        "the Functions host envelope is not valid JSON of the form {{\"Data\":{{\"req\":…}}}}: {0}"
    )]
    NotAnEnvelope(String),
    /// No `Data.req`.
    #[error("the Functions host envelope has no Data.req HTTP trigger")]
    MissingTrigger,
    /// `Data.req` has the wrong shape.
    #[error("Data.req is not an HTTP trigger: {0}")]
    BadTrigger(String),
    /// `Body` is declared base64 (octet-stream/multipart) but is not.
    #[error("Data.req.Body is not valid base64")]
    BadBase64,
}

/// Parses an envelope and translates its `Data.req`.
pub fn request_from_envelope(
    bytes: &[u8],
    config: &AzureConfig,
) -> Result<ApiRequest, EnvelopeError> {
    // Only `Data.req` is read: `Metadata` and any other binding are skipped unparsed, and the
    // trigger is decoded straight from its own JSON text.
    let envelope: HttpEnvelope<'_> =
        serde_json::from_slice(bytes).map_err(|e| EnvelopeError::NotAnEnvelope(e.to_string()))?;
    let trigger = envelope.data.req.ok_or(EnvelopeError::MissingTrigger)?;
    let trigger: HttpTrigger = serde_json::from_str(trigger.get())
        .map_err(|e| EnvelopeError::BadTrigger(without_position(&e)))?;
    request_from_trigger(&trigger, config)
}

/// The error as the client reads it: what is wrong, not where in the host's re-serialised trigger
/// (the position is of our decoding, meaningless to the caller).
fn without_position(e: &serde_json::Error) -> String {
    let message = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    message
        .strip_suffix(&position)
        .map_or_else(|| message.clone(), str::to_owned)
}

/// An [`InvokeRequest`] as an HTTP function reads it.
#[derive(serde::Deserialize)]
struct HttpEnvelope<'a> {
    #[serde(rename = "Data", borrow)]
    data: HttpData<'a>,
}

#[derive(serde::Deserialize)]
struct HttpData<'a> {
    /// Present (even `null`: then it is a bad trigger, not a missing one) or absent.
    #[serde(borrow, default, deserialize_with = "present")]
    req: Option<&'a RawValue>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue as serde::Deserialize>::deserialize(d).map(Some)
}

/// Translates `Data.req` into the neutral request.
///
/// ```
/// use paracell_azure::{inbound::payload::request_from_trigger, inbound::envelope::HttpTrigger, AzureConfig};
/// let trigger: HttpTrigger = serde_json::from_str(r#"{"Url":"http://h/api/v1/x?tag=a&tag=b","Method":"GET",
///     "Query":{"tag":"a,b"},"Headers":{"X-Tenant-ID":["coop-1"]}}"#).unwrap();
/// let req = request_from_trigger(&trigger, &AzureConfig::default()).unwrap();
/// assert_eq!((req.path.as_str(), req.query.as_str()), ("/v1/x", "tag=a&tag=b"));
/// assert!(req.body.is_empty()); // no Body key: nothing was sent, or it was chunked
/// ```
pub fn request_from_trigger(
    trigger: &HttpTrigger,
    config: &AzureConfig,
) -> Result<ApiRequest, EnvelopeError> {
    let (path, query) = split_url(&trigger.url);
    let mut headers = Headers::default();
    for (name, values) in &trigger.headers {
        for value in values.iter() {
            headers.append(name.as_str(), value);
        }
    }
    let body = match &trigger.body {
        None => Vec::new(),
        Some(text) if is_base64_media_type(headers.get("content-type").as_deref()) => {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| EnvelopeError::BadBase64)?
        }
        Some(text) => text.clone().into_bytes(),
    };
    let authenticated_tenant = authenticated_tenant(&headers, config);
    Ok(ApiRequest {
        method: trigger.method.clone(),
        path: config.route_prefix.strip(path).to_owned(),
        query: query.to_owned(),
        headers,
        body,
        authenticated_tenant,
    })
}

/// The authenticated tenant, when App Service authentication is on and its principal has one.
pub(crate) fn authenticated_tenant(headers: &Headers, config: &AzureConfig) -> Option<String> {
    if !config.trust_client_principal {
        return None;
    }
    headers
        .get("x-ms-client-principal")
        .and_then(|p| crate::inbound::principal::tenant_claim(&p))
}

/// The host sends bodies of these media types as base64, every other body as text.
pub fn is_base64_media_type(content_type: Option<&str>) -> bool {
    let essence = paracell_domain::http::essence(content_type.unwrap_or_default());
    essence == "application/octet-stream" || essence.starts_with("multipart/")
}

/// `scheme://host/path?query#…` → (`/path`, `query`), both raw.
fn split_url(url: &str) -> (&str, &str) {
    let after_scheme = url.find("://").map_or(url, |i| &url[i + 3..]);
    let path_and_query = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
    let path_and_query = path_and_query.split('#').next().unwrap_or_default();
    match path_and_query.split_once('?') {
        Some((path, query)) => (path, query),
        None => (path_and_query, ""),
    }
}

/// The reply envelope for a response. `logs` become the invocation's log lines.
pub fn envelope_from_response(response: &ApiResponse, logs: Vec<String>) -> InvokeResponse {
    let headers: BTreeMap<String, String> = response.headers.iter().cloned().collect();
    let output = HttpOutput {
        status_code: response.status,
        headers,
        // Domain bodies are always UTF-8 JSON (or empty).
        body: String::from_utf8_lossy(&response.body).into_owned(),
    };
    InvokeResponse {
        outputs: BTreeMap::from([("res".to_owned(), output)]),
        logs,
        return_value: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls() {
        assert_eq!(
            split_url("http://localhost:7071/api/x?a=1&a=2"),
            ("/api/x", "a=1&a=2")
        );
        assert_eq!(split_url("https://h"), ("/", ""));
        assert_eq!(split_url("/api/x?q"), ("/api/x", "q"));
        assert_eq!(split_url("http://h/p#frag"), ("/p", ""));
    }

    #[test]
    fn base64_only_for_octet_stream_and_multipart() {
        assert!(is_base64_media_type(Some("application/octet-stream")));
        assert!(is_base64_media_type(Some(
            "Multipart/Form-Data; boundary=x"
        )));
        assert!(!is_base64_media_type(Some("application/json")));
        assert!(!is_base64_media_type(None));
    }

    #[test]
    fn malformed_envelopes_are_errors_not_panics() {
        let c = AzureConfig::default();
        assert!(matches!(
            request_from_envelope(b"nope", &c),
            Err(EnvelopeError::NotAnEnvelope(_))
        ));
        assert!(matches!(
            request_from_envelope(b"[]", &c),
            Err(EnvelopeError::NotAnEnvelope(_))
        ));
        assert_eq!(
            request_from_envelope(br#"{"Data":{}}"#, &c),
            Err(EnvelopeError::MissingTrigger)
        );
        assert!(matches!(
            request_from_envelope(br#"{"Data":{"req":{"Url":1}}}"#, &c),
            Err(EnvelopeError::BadTrigger(_))
        ));
        let bad64 = br#"{"Data":{"req":{"Url":"http://h/api/x","Method":"POST","Headers":{"Content-Type":["application/octet-stream"]},"Body":"!!"}}}"#;
        assert_eq!(
            request_from_envelope(bad64, &c),
            Err(EnvelopeError::BadBase64)
        );
    }
}
