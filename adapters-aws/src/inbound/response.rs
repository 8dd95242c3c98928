//! A neutral response → the JSON a front door expects back from the function, in the response
//! shape of the event's source ([`aws_lambda_events`]' public response types):
//!
//! | source | headers | extra |
//! |---|---|---|
//! | REST (v1) | `multiValueHeaders` only (`headers` empty) | |
//! | HTTP API (v2), Function URL | `headers` (`multiValueHeaders` empty) | `set-cookie` lines moved to `cookies` |
//! | ALB | both `headers` and `multiValueHeaders` | `statusDescription` (`"201 Created"`) |
//!
//! These are the shapes `lambda_http` emits for each source, field for field, so the wire fixtures
//! did not change when this module replaced it. A body is text when the response has no
//! `Content-Type` or a textual one (`text/*`, JSON, JavaScript, XML, YAML, `+json`/`+xml`/`+yaml`)
//! and no `Content-Encoding`; anything else is sent base64-encoded (`isBase64Encoded: true`).

use crate::inbound::http::Source;
use aws_lambda_events::alb::AlbTargetGroupResponse;
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, SET_COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use paracell_domain::http::ApiResponse;
use serde_json::value::RawValue;

const TEXT_PREFIXES: [&str; 5] = [
    "text",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/yaml",
];
const TEXT_SUFFIXES: [&str; 3] = ["+xml", "+yaml", "+json"];

/// Renders `response` as the JSON `source` expects, straight to the text the runtime posts.
///
/// ```
/// use paracell_aws::inbound::{http::Source, response::render};
/// use paracell_domain::http::ApiResponse;
/// let ok = ApiResponse::json(200, br#"{"status":"ok"}"#.to_vec());
/// let alb = render(Source::Alb, ok).unwrap();
/// assert!(alb.get().contains(r#""statusDescription":"200 OK""#));
/// ```
///
/// # Errors
/// Only if serialisation fails, which the response types do not do.
pub fn render(source: Source, response: ApiResponse) -> Result<Box<RawValue>, serde_json::Error> {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut headers = HeaderMap::with_capacity(response.headers.len());
    for (name, value) in response.headers {
        // One value per name, the last one (the domain never repeats a response header).
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.insert(name, value);
        }
    }
    let (body, is_base64_encoded) = body(&headers, response.body);
    let status_code = i64::from(status.as_u16());
    let json = match source {
        Source::RestV1 => {
            let mut out = ApiGatewayProxyResponse::default();
            out.status_code = status_code;
            out.multi_value_headers = headers;
            out.body = Some(body);
            out.is_base64_encoded = is_base64_encoded;
            serde_json::to_string(&out)?
        }
        Source::HttpV2 => {
            let cookies = headers
                .get_all(SET_COOKIE)
                .iter()
                .map(|v| v.to_str().unwrap_or_default().to_owned())
                .collect();
            headers.remove(SET_COOKIE);
            let mut out = ApiGatewayV2httpResponse::default();
            out.status_code = status_code;
            out.headers = headers;
            out.cookies = cookies;
            out.body = Some(body);
            out.is_base64_encoded = is_base64_encoded;
            serde_json::to_string(&out)?
        }
        Source::Alb => {
            let mut out = AlbTargetGroupResponse::default();
            out.status_code = status_code;
            out.status_description = Some(format!(
                "{} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or_default()
            ));
            out.multi_value_headers = headers.clone();
            out.headers = headers;
            out.body = Some(body);
            out.is_base64_encoded = is_base64_encoded;
            serde_json::to_string(&out)?
        }
    };
    RawValue::from_string(json)
}

/// The body as text or as binary (base64 on the wire), by the response's headers.
fn body(headers: &HeaderMap, bytes: Vec<u8>) -> (Body, bool) {
    let textual = headers.get(CONTENT_ENCODING).is_none()
        && match headers.get(CONTENT_TYPE) {
            None => true,
            Some(value) => {
                let content_type = value.to_str().unwrap_or_default();
                let mime = content_type.trim().split(';').next().unwrap_or_default();
                TEXT_PREFIXES.iter().any(|p| content_type.starts_with(p))
                    || TEXT_SUFFIXES.iter().any(|s| mime.ends_with(s))
                    || headers
                        .get("x-lambda-http-content-encoding")
                        .is_some_and(|v| v == "text")
            }
        };
    if textual {
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        (Body::Text(text), false)
    } else {
        (Body::Binary(bytes), true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_encoded_bodies_are_base64() {
        let png = ApiResponse {
            status: 200,
            headers: vec![("content-type".into(), "image/png".into())],
            body: vec![0x89, b'P'],
            ..ApiResponse::json(200, Vec::new())
        };
        let raw = render(Source::RestV1, png).unwrap();
        let v: serde_json::Value = serde_json::from_str(raw.get()).unwrap();
        assert_eq!(v["isBase64Encoded"], true);
        assert_eq!(v["body"], "iVA=");
        let gz = ApiResponse {
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("content-encoding".into(), "gzip".into()),
            ],
            ..ApiResponse::json(200, b"{}".to_vec())
        };
        let v: serde_json::Value =
            serde_json::from_str(render(Source::Alb, gz).unwrap().get()).unwrap();
        assert_eq!(v["isBase64Encoded"], true);
    }

    #[test]
    fn http_api_cookies_leave_the_headers() {
        let r = ApiResponse {
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("set-cookie".into(), "a=1".into()),
            ],
            ..ApiResponse::json(200, b"{}".to_vec())
        };
        let v: serde_json::Value =
            serde_json::from_str(render(Source::HttpV2, r).unwrap().get()).unwrap();
        assert_eq!(v["cookies"], serde_json::json!(["a=1"]));
        assert!(v["headers"].get("set-cookie").is_none());
    }
}
