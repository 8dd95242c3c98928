//! A raw Lambda HTTP event → the neutral request. Each source spells the same request differently;
//! the differences that matter are handled here, and only here:
//!
//! | source | path | query | headers | authorizer `tenant_id` |
//! |---|---|---|---|---|
//! | REST (v1) | `path` (never has the stage; decoded: re-encoded here) | `multiValueQueryStringParameters`, else `queryStringParameters` (decoded: re-encoded here) | `multiValueHeaders` (all values), else `headers` | `requestContext.authorizer.tenant_id` (Lambda authorizer) or `.claims.tenant_id` (Cognito) |
//! | HTTP API (v2), Function URL | `rawPath`, minus `/{stage}` unless the stage is `$default` | `rawQueryString` as received | `headers` (repeated lines already comma-joined) plus `cookies[]` as one `cookie` header | `requestContext.authorizer.jwt.claims.tenant_id` or `.lambda.tenant_id` |
//! | ALB | `path` | multi-value map, else single map (values arrive *undecoded*: kept as they are) | `multiValueHeaders` in multi-value mode, else `headers` | none |

use crate::inbound::event_json::{Flag, Json, Lenient, List, Members};
use base64::Engine as _;
use paracell_domain::http::{ApiRequest, Headers, percent};
use serde::Deserialize;
use serde::de::IgnoredAny;

/// Which kind of event a request came as ([`HttpEvent::source`]).
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

/// A Lambda event as the HTTP front doors send it, decoded straight from its JSON text: only the
/// members a request is made of, borrowed where the JSON has no escapes; every other member is
/// skipped unparsed. Each member reads any JSON (see [`crate::inbound::event_json`]), so only text
/// that is not JSON, or a member that must be an object and is not, fails to decode.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpEvent<'a> {
    #[serde(borrow, default)]
    http_method: Json<'a>,
    #[serde(borrow, default)]
    path: Json<'a>,
    #[serde(borrow, default)]
    raw_path: Json<'a>,
    #[serde(borrow, default)]
    raw_query_string: Json<'a>,
    #[serde(borrow, default)]
    headers: Members<'a, Json<'a>>,
    #[serde(borrow, default)]
    multi_value_headers: Members<'a, List<'a>>,
    #[serde(borrow, default)]
    query_string_parameters: Members<'a, Json<'a>>,
    #[serde(borrow, default)]
    multi_value_query_string_parameters: Members<'a, List<'a>>,
    #[serde(borrow, default)]
    cookies: List<'a>,
    #[serde(borrow, default)]
    body: Json<'a>,
    #[serde(default)]
    is_base64_encoded: Flag,
    #[serde(borrow, default)]
    request_context: Lenient<RequestContext<'a>>,
    /// Stream and queue batches (not HTTP events) carry `Records`.
    #[serde(rename = "Records", default)]
    records: Option<IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestContext<'a> {
    #[serde(borrow, default)]
    http_method: Json<'a>,
    #[serde(borrow, default)]
    stage: Json<'a>,
    #[serde(borrow, default)]
    http: Lenient<HttpDescription<'a>>,
    #[serde(default)]
    elb: Option<IgnoredAny>,
    #[serde(borrow, default)]
    authorizer: Lenient<Authorizer<'a>>,
}

#[derive(Debug, Default, Deserialize)]
struct HttpDescription<'a> {
    #[serde(borrow, default)]
    method: Json<'a>,
}

/// Where each source's authorizer puts a `tenant_id` claim.
#[derive(Debug, Default, Deserialize)]
struct Authorizer<'a> {
    /// REST, Lambda authorizer context.
    #[serde(borrow, default)]
    tenant_id: Json<'a>,
    /// REST, Cognito user pool.
    #[serde(borrow, default)]
    claims: Lenient<Claims<'a>>,
    /// HTTP API, JWT authorizer.
    #[serde(borrow, default)]
    jwt: Lenient<Jwt<'a>>,
    /// HTTP API, Lambda authorizer.
    #[serde(borrow, default)]
    lambda: Lenient<Claims<'a>>,
}

#[derive(Debug, Default, Deserialize)]
struct Jwt<'a> {
    #[serde(borrow, default)]
    claims: Lenient<Claims<'a>>,
}

#[derive(Debug, Default, Deserialize)]
struct Claims<'a> {
    #[serde(borrow, default)]
    tenant_id: Json<'a>,
}

impl<'a> HttpEvent<'a> {
    /// Decodes an event's JSON text.
    ///
    /// # Errors
    /// Text that is not JSON, or a JSON value that is not an event object.
    pub fn parse(text: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Whether the event is a batch (`Records`: DynamoDB Streams, SQS), not an HTTP event.
    pub fn is_batch(&self) -> bool {
        self.records.is_some()
    }

    /// Which front door sent the event, by the members that name each source, tried in the order
    /// `lambda_http` tries them: REST (`httpMethod` and `requestContext.httpMethod`), then HTTP API
    /// and Function URL (`requestContext.http.method`), then ALB (`requestContext.elb`). `None`:
    /// not an HTTP event (a WebSocket or VPC Lattice event, a response, a scheduled event).
    pub fn source(&self) -> Option<Source> {
        let context = &self.request_context.0;
        if self.http_method.as_str().is_some() && context.http_method.as_str().is_some() {
            Some(Source::RestV1)
        } else if context.http.0.method.as_str().is_some() {
            Some(Source::HttpV2)
        } else if context.elb.is_some() {
            Some(Source::Alb)
        } else {
            None
        }
    }
}

/// Translates a decoded event of a known source.
///
/// ```
/// use paracell_aws::inbound::http::{translate, HttpEvent, Source};
/// let v2 = r#"{"rawPath": "/Prod/v1/transactions", "rawQueryString": "a=1&a=2",
///     "headers": {"x-tenant-id": "coop-1"}, "cookies": ["s=1", "t=2"],
///     "requestContext": {"stage": "Prod", "http": {"method": "GET"}}}"#;
/// let event = HttpEvent::parse(v2).unwrap();
/// assert_eq!(event.source(), Some(Source::HttpV2));
/// let req = translate(Source::HttpV2, event).unwrap();
/// assert_eq!((req.method.as_str(), req.path.as_str(), req.query.as_str()), ("GET", "/v1/transactions", "a=1&a=2"));
/// assert_eq!(req.headers.get("cookie").as_deref(), Some("s=1; t=2"));
/// ```
pub fn translate(source: Source, event: HttpEvent<'_>) -> Result<ApiRequest, TranslateError> {
    let context = event.request_context.0;
    let authorizer = context.authorizer.0;
    let no_cookies = List::default();
    let (method, path, query, headers, authenticated_tenant) = match source {
        Source::RestV1 => (
            event.http_method.into_text(),
            // REST hands over the path decoded: re-encoded, or a literal `%` would be decoded twice.
            percent::encode_path(event.path.text()),
            encode_query(
                &event.multi_value_query_string_parameters,
                &event.query_string_parameters,
                true,
            ),
            headers(&event.multi_value_headers, &event.headers, &no_cookies),
            authorizer
                .tenant_id
                .claim()
                .or_else(|| authorizer.claims.0.tenant_id.claim()),
        ),
        Source::HttpV2 => (
            context.http.0.method.into_text(),
            strip_stage(event.raw_path.text(), context.stage.as_str()),
            event.raw_query_string.into_text(),
            headers(&Members::default(), &event.headers, &event.cookies),
            authorizer
                .jwt
                .0
                .claims
                .0
                .tenant_id
                .claim()
                .or_else(|| authorizer.lambda.0.tenant_id.claim()),
        ),
        Source::Alb => (
            event.http_method.into_text(),
            event.path.into_text(),
            encode_query(
                &event.multi_value_query_string_parameters,
                &event.query_string_parameters,
                false,
            ),
            headers(&event.multi_value_headers, &event.headers, &no_cookies),
            None,
        ),
    };
    let body = match event.body {
        Json::Str(body) if event.is_base64_encoded.0 => base64::engine::general_purpose::STANDARD
            .decode(body.trim_end())
            .map_err(|_| TranslateError::InvalidBase64)?,
        Json::Str(body) => body.into_owned().into_bytes(),
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

/// HTTP API paths carry the stage (`/Prod/...`) unless it is `$default`; REST `path` never does.
/// Only an exact `/{stage}` segment is removed, and nothing depends on process-wide settings.
fn strip_stage(raw_path: &str, stage: Option<&str>) -> String {
    match stage {
        Some(stage) if stage != "$default" && !stage.is_empty() => {
            let rest = raw_path
                .strip_prefix('/')
                .and_then(|p| p.strip_prefix(stage));
            match rest {
                Some("") => "/".to_owned(),
                Some(rest) if rest.starts_with('/') => rest.to_owned(),
                _ => raw_path.to_owned(),
            }
        }
        _ => raw_path.to_owned(),
    }
}

fn headers(multi: &Members<List>, single: &Members<Json>, cookies: &List) -> Headers {
    let mut out = Headers::default();
    if multi.is_empty() {
        for (name, value) in &single.0 {
            if !(cookies.is_array && name.eq_ignore_ascii_case("cookie")) {
                out.append(name.as_ref(), value.text().to_owned());
            }
        }
    } else {
        for (name, values) in &multi.0 {
            for value in &values.items {
                out.append(name.as_ref(), value.text().to_owned());
            }
        }
    }
    if !cookies.items.is_empty() {
        let joined: Vec<&str> = cookies.items.iter().map(Json::text).collect();
        out.append("cookie", joined.join("; "));
    }
    out
}

/// Rebuilds a raw query string from the query maps (multi-value preferred). REST values arrive
/// decoded and are percent-encoded again; ALB values arrive as sent and are kept.
fn encode_query(multi: &Members<List>, single: &Members<Json>, encode: bool) -> String {
    let mut query = String::new();
    let mut pair = |k: &str, v: &str| {
        if !query.is_empty() {
            query.push('&');
        }
        if encode {
            query.push_str(&percent::encode_component(k));
            query.push('=');
            query.push_str(&percent::encode_component(v));
        } else {
            query.push_str(k);
            query.push('=');
            query.push_str(v);
        }
    };
    if multi.is_empty() {
        for (k, v) in &single.0 {
            pair(k, v.text());
        }
    } else {
        for (k, values) in &multi.0 {
            for v in &values.items {
                pair(k, v.text());
            }
        }
    }
    query
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tr(source: Source, event: serde_json::Value) -> Result<ApiRequest, TranslateError> {
        translate(source, HttpEvent::parse(&event.to_string()).unwrap())
    }

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
        let req = tr(Source::RestV1, event.clone()).unwrap();
        assert_eq!(req.headers.get("x-tenant-id").as_deref(), Some("a, b"));
    }

    #[test]
    fn queries_per_source() {
        let rest = json!({"httpMethod": "GET", "path": "/", "multiValueQueryStringParameters": {"q": ["a b", "c&d"]}, "queryStringParameters": {"q": "c&d"}});
        assert_eq!(
            tr(Source::RestV1, rest.clone()).unwrap().query,
            "q=a%20b&q=c%26d"
        );
        let alb =
            json!({"httpMethod": "GET", "path": "/", "queryStringParameters": {"q": "a%20b"}});
        assert_eq!(tr(Source::Alb, alb.clone()).unwrap().query, "q=a%20b");
    }

    #[test]
    fn bodies() {
        let ok =
            json!({"httpMethod": "POST", "path": "/", "body": "e30=", "isBase64Encoded": true});
        assert_eq!(tr(Source::RestV1, ok.clone()).unwrap().body, b"{}");
        let bad = json!({"httpMethod": "POST", "path": "/", "body": "not base64!!", "isBase64Encoded": true});
        assert_eq!(
            tr(Source::RestV1, bad.clone()),
            Err(TranslateError::InvalidBase64)
        );
        let empty = json!({"httpMethod": "POST", "path": "/", "body": ""});
        let missing = json!({"httpMethod": "POST", "path": "/", "body": null});
        assert_eq!(
            tr(Source::RestV1, empty.clone()).unwrap().body,
            tr(Source::RestV1, missing.clone()).unwrap().body
        );
    }

    #[test]
    fn authorizer_claims() {
        let jwt = json!({"rawPath": "/", "requestContext": {"http": {"method": "GET"}, "authorizer": {"jwt": {"claims": {"tenant_id": "coop-1"}}}}});
        assert_eq!(
            tr(Source::HttpV2, jwt.clone())
                .unwrap()
                .authenticated_tenant
                .as_deref(),
            Some("coop-1")
        );
        let lambda = json!({"rawPath": "/", "requestContext": {"http": {"method": "GET"}, "authorizer": {"lambda": {"tenant_id": "coop-2"}}}});
        assert_eq!(
            tr(Source::HttpV2, lambda.clone())
                .unwrap()
                .authenticated_tenant
                .as_deref(),
            Some("coop-2")
        );
        let rest = json!({"httpMethod": "GET", "path": "/", "requestContext": {"authorizer": {"tenant_id": "coop-3", "principalId": "u"}}});
        assert_eq!(
            tr(Source::RestV1, rest.clone())
                .unwrap()
                .authenticated_tenant
                .as_deref(),
            Some("coop-3")
        );
        let cognito = json!({"httpMethod": "GET", "path": "/", "requestContext": {"authorizer": {"claims": {"tenant_id": "coop-4"}}}});
        assert_eq!(
            tr(Source::RestV1, cognito.clone())
                .unwrap()
                .authenticated_tenant
                .as_deref(),
            Some("coop-4")
        );
        let none = json!({"httpMethod": "GET", "path": "/"});
        assert_eq!(
            tr(Source::Alb, none.clone()).unwrap().authenticated_tenant,
            None
        );
    }

    #[test]
    fn a_rest_path_is_re_encoded_so_a_literal_percent_is_not_decoded_twice() {
        // The client sent `/v1/transactions/%2541%20x`; REST hands the function `.../%41 x`.
        let event = json!({"httpMethod": "GET", "path": "/v1/transactions/%41 x"});
        let req = tr(Source::RestV1, event).unwrap();
        assert_eq!(req.path, "/v1/transactions/%2541%20x");
        // ALB and HTTP API paths arrive as sent and are kept.
        let alb = json!({"httpMethod": "GET", "path": "/v1/transactions/%41"});
        assert_eq!(tr(Source::Alb, alb).unwrap().path, "/v1/transactions/%41");
    }
}
