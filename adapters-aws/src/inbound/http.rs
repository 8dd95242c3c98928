//! A raw Lambda HTTP event → the neutral request. Each source spells the same request differently;
//! the differences that matter are handled here, and only here:
//!
//! | source | path | query | headers | authorizer `tenant_id` |
//! |---|---|---|---|---|
//! | REST (v1) | `path` (never has the stage) | `multiValueQueryStringParameters`, else `queryStringParameters` (decoded: re-encoded here) | `multiValueHeaders` (all values), else `headers` | `requestContext.authorizer.tenant_id` (Lambda authorizer) or `.claims.tenant_id` (Cognito) |
//! | HTTP API (v2), Function URL | `rawPath`, minus `/{stage}` unless the stage is `$default` | `rawQueryString` as received | `headers` (repeated lines already comma-joined) plus `cookies[]` as one `cookie` header | `requestContext.authorizer.jwt.claims.tenant_id` or `.lambda.tenant_id` |
//! | ALB | `path` | multi-value map, else single map (values arrive *undecoded*: kept as they are) | `multiValueHeaders` in multi-value mode, else `headers` | none |

use base64::Engine as _;
use paracell_domain::http::{ApiRequest, Headers, percent};
use serde_json::Value;

/// Which kind of event a request came as (decided by `lambda_http`, see [`crate::inbound::runtime`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// API Gateway REST API, payload format 1.0 (also HTTP APIs configured for payload 1.0).
    RestV1,
    /// API Gateway HTTP API, payload format 2.0, and Lambda Function URLs.
    HttpV2,
    /// Application Load Balancer, multi-value headers on or off.
    Alb,
}

/// Why an event could not become a request (answered with `400 malformed-request`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// `isBase64Encoded` is true but the body is not base64.
    #[error("The request body is marked base64-encoded but is not valid base64.")]
    InvalidBase64,
}

/// Translates a raw event of a known source.
///
/// ```
/// use paracell_aws::inbound::http::{translate, Source};
/// let v2 = serde_json::json!({"rawPath": "/Prod/v1/transactions", "rawQueryString": "a=1&a=2",
///     "headers": {"x-tenant-id": "coop-1"}, "cookies": ["s=1", "t=2"],
///     "requestContext": {"stage": "Prod", "http": {"method": "GET"}}});
/// let req = translate(Source::HttpV2, &v2).unwrap();
/// assert_eq!((req.method.as_str(), req.path.as_str(), req.query.as_str()), ("GET", "/v1/transactions", "a=1&a=2"));
/// assert_eq!(req.headers.get("cookie").as_deref(), Some("s=1; t=2"));
/// ```
pub fn translate(source: Source, event: &Value) -> Result<ApiRequest, TranslateError> {
    let context = &event["requestContext"];
    let (method, path, query, headers, authenticated_tenant) = match source {
        Source::RestV1 => (
            text(&event["httpMethod"]),
            text(&event["path"]),
            encode_query(
                &event["multiValueQueryStringParameters"],
                &event["queryStringParameters"],
                true,
            ),
            headers(&event["multiValueHeaders"], &event["headers"], &Value::Null),
            claim(&context["authorizer"]["tenant_id"])
                .or_else(|| claim(&context["authorizer"]["claims"]["tenant_id"])),
        ),
        Source::HttpV2 => (
            text(&context["http"]["method"]),
            strip_stage(&text(&event["rawPath"]), context["stage"].as_str()),
            text(&event["rawQueryString"]),
            headers(&Value::Null, &event["headers"], &event["cookies"]),
            claim(&context["authorizer"]["jwt"]["claims"]["tenant_id"])
                .or_else(|| claim(&context["authorizer"]["lambda"]["tenant_id"])),
        ),
        Source::Alb => (
            text(&event["httpMethod"]),
            text(&event["path"]),
            encode_query(
                &event["multiValueQueryStringParameters"],
                &event["queryStringParameters"],
                false,
            ),
            headers(&event["multiValueHeaders"], &event["headers"], &Value::Null),
            None,
        ),
    };
    let body = match &event["body"] {
        Value::String(body) if event["isBase64Encoded"].as_bool() == Some(true) => {
            base64::engine::general_purpose::STANDARD
                .decode(body.trim_end())
                .map_err(|_| TranslateError::InvalidBase64)?
        }
        Value::String(body) => body.clone().into_bytes(),
        _ => Vec::new(),
    };
    Ok(ApiRequest {
        method,
        path: if path.is_empty() { "/".into() } else { path },
        query,
        headers,
        body,
        authenticated_tenant,
    })
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A claim value: strings as they are, numbers and booleans as text (authorizer contexts allow them).
fn claim(value: &Value) -> Option<String> {
    match value {
        Value::Null | Value::Array(_) | Value::Object(_) => None,
        other => Some(text(other)),
    }
}

/// HTTP API paths carry the stage (`/Prod/...`) unless it is `$default`; REST `path` never does.
/// Only an exact `/{stage}` segment is removed, and nothing depends on process-wide settings.
fn strip_stage(raw_path: &str, stage: Option<&str>) -> String {
    match stage {
        Some(stage) if stage != "$default" && !stage.is_empty() => {
            let prefix = format!("/{stage}");
            match raw_path.strip_prefix(&prefix) {
                Some("") => "/".to_owned(),
                Some(rest) if rest.starts_with('/') => rest.to_owned(),
                _ => raw_path.to_owned(),
            }
        }
        _ => raw_path.to_owned(),
    }
}

fn headers(multi: &Value, single: &Value, cookies: &Value) -> Headers {
    let mut out = Headers::default();
    match multi.as_object().filter(|m| !m.is_empty()) {
        Some(multi) => {
            for (name, values) in multi {
                for value in values.as_array().into_iter().flatten() {
                    out.append(name.as_str(), text(value));
                }
            }
        }
        None => {
            for (name, value) in single.as_object().into_iter().flatten() {
                if !(cookies.is_array() && name.eq_ignore_ascii_case("cookie")) {
                    out.append(name.as_str(), text(value));
                }
            }
        }
    }
    if let Some(cookies) = cookies.as_array().filter(|c| !c.is_empty()) {
        let joined: Vec<String> = cookies.iter().map(text).collect();
        out.append("cookie", joined.join("; "));
    }
    out
}

/// Rebuilds a raw query string from the query maps (multi-value preferred). REST values arrive
/// decoded and are percent-encoded again; ALB values arrive as sent and are kept.
fn encode_query(multi: &Value, single: &Value, encode: bool) -> String {
    let escape = |s: &str| {
        if encode {
            percent::encode_component(s)
        } else {
            s.to_owned()
        }
    };
    let mut pairs = Vec::new();
    match multi.as_object().filter(|m| !m.is_empty()) {
        Some(multi) => {
            for (k, values) in multi {
                for v in values.as_array().into_iter().flatten() {
                    pairs.push(format!("{}={}", escape(k), escape(&text(v))));
                }
            }
        }
        None => {
            for (k, v) in single.as_object().into_iter().flatten() {
                pairs.push(format!("{}={}", escape(k), escape(&text(v))));
            }
        }
    }
    pairs.join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stage_prefix_is_removed_only_as_a_whole_segment() {
        assert_eq!(strip_stage("/Prod/health", Some("Prod")), "/health");
        assert_eq!(strip_stage("/Prod", Some("Prod")), "/");
        assert_eq!(
            strip_stage("/Production/health", Some("Prod")),
            "/Production/health"
        );
        assert_eq!(strip_stage("/health", Some("$default")), "/health");
        assert_eq!(
            strip_stage("/$default/health", Some("$default")),
            "/$default/health"
        );
    }

    #[test]
    fn rest_keeps_every_repeated_header_value() {
        let event = json!({"httpMethod": "GET", "path": "/health",
            "headers": {"X-Tenant-ID": "b"}, "multiValueHeaders": {"X-Tenant-ID": ["a", "b"]}});
        let req = translate(Source::RestV1, &event).unwrap();
        assert_eq!(req.headers.get("x-tenant-id").as_deref(), Some("a, b"));
    }

    #[test]
    fn queries_per_source() {
        let rest = json!({"httpMethod": "GET", "path": "/", "multiValueQueryStringParameters": {"q": ["a b", "c&d"]}, "queryStringParameters": {"q": "c&d"}});
        assert_eq!(
            translate(Source::RestV1, &rest).unwrap().query,
            "q=a%20b&q=c%26d"
        );
        let alb =
            json!({"httpMethod": "GET", "path": "/", "queryStringParameters": {"q": "a%20b"}});
        assert_eq!(translate(Source::Alb, &alb).unwrap().query, "q=a%20b");
    }

    #[test]
    fn bodies() {
        let ok =
            json!({"httpMethod": "POST", "path": "/", "body": "e30=", "isBase64Encoded": true});
        assert_eq!(translate(Source::RestV1, &ok).unwrap().body, b"{}");
        let bad = json!({"httpMethod": "POST", "path": "/", "body": "not base64!!", "isBase64Encoded": true});
        assert_eq!(
            translate(Source::RestV1, &bad),
            Err(TranslateError::InvalidBase64)
        );
        let empty = json!({"httpMethod": "POST", "path": "/", "body": ""});
        let missing = json!({"httpMethod": "POST", "path": "/", "body": null});
        assert_eq!(
            translate(Source::RestV1, &empty).unwrap().body,
            translate(Source::RestV1, &missing).unwrap().body
        );
    }

    #[test]
    fn authorizer_claims() {
        let jwt = json!({"rawPath": "/", "requestContext": {"http": {"method": "GET"}, "authorizer": {"jwt": {"claims": {"tenant_id": "coop-1"}}}}});
        assert_eq!(
            translate(Source::HttpV2, &jwt)
                .unwrap()
                .authenticated_tenant
                .as_deref(),
            Some("coop-1")
        );
        let lambda = json!({"rawPath": "/", "requestContext": {"http": {"method": "GET"}, "authorizer": {"lambda": {"tenant_id": "coop-2"}}}});
        assert_eq!(
            translate(Source::HttpV2, &lambda)
                .unwrap()
                .authenticated_tenant
                .as_deref(),
            Some("coop-2")
        );
        let rest = json!({"httpMethod": "GET", "path": "/", "requestContext": {"authorizer": {"tenant_id": "coop-3", "principalId": "u"}}});
        assert_eq!(
            translate(Source::RestV1, &rest)
                .unwrap()
                .authenticated_tenant
                .as_deref(),
            Some("coop-3")
        );
        let cognito = json!({"httpMethod": "GET", "path": "/", "requestContext": {"authorizer": {"claims": {"tenant_id": "coop-4"}}}});
        assert_eq!(
            translate(Source::RestV1, &cognito)
                .unwrap()
                .authenticated_tenant
                .as_deref(),
            Some("coop-4")
        );
        let none = json!({"httpMethod": "GET", "path": "/"});
        assert_eq!(
            translate(Source::Alb, &none).unwrap().authenticated_tenant,
            None
        );
    }
}
