//! AWS envelopes: a client request → the event API Gateway, a Function URL or an ALB would deliver;
//! the function's response JSON → what the client receives.
//!
//! Modelled platform behaviour (see `shared/notes/aws-lambda.md` and `docs/conformance.md`):
//! * REST (v1): `path` percent-decoded, without the stage; header names as sent, `headers` holding the
//!   last value and `multiValueHeaders` all; query maps decoded (single map: last value); body as UTF-8
//!   text (no `binaryMediaTypes`), `null` when empty.
//! * HTTP API (v2) and Function URL: `rawPath` as sent (prefixed with `/{stage}` on a named stage),
//!   `rawQueryString` as sent, lower-case header names with repeated lines joined by `,`, `Cookie`
//!   moved to `cookies[]`; text bodies for textual media types that are valid UTF-8, base64 otherwise;
//!   no `body` member when empty.
//! * ALB: path and query values as sent (undecoded); lower-case header names; single-value mode keeps
//!   the last value of a repeated header or query key, multi-value mode keeps all; body text or base64
//!   as for HTTP APIs, `""` when empty.
//! * Responses: v1 from `multiValueHeaders` (merged over `headers`), v2 from `headers` plus `cookies` as
//!   `Set-Cookie`, ALB from the map its mode reads; base64 bodies decoded; no body for `HEAD`.

use super::Envelope;
use crate::request::{ClientRequest, ClientResponse};
use base64::Engine as _;
use paracell_domain::http::percent;
use serde_json::{Map, Value, json};

const REST_DOMAIN: &str = "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com";
const HTTP_DOMAIN: &str = "f6g7h8i9j0.execute-api.eu-west-1.amazonaws.com";
const URL_DOMAIN: &str = "k1l2m3n4o5p6q7r8s9t0.lambda-url.eu-west-1.on.aws";

/// The event for `request` on an AWS envelope.
pub fn event(envelope: Envelope, request: &ClientRequest) -> Value {
    match envelope {
        Envelope::AwsApigwV1 => rest_v1(request),
        Envelope::AwsApigwV2 => http_v2(request, "$default", HTTP_DOMAIN),
        Envelope::AwsApigwV2Stage => http_v2(request, "Prod", HTTP_DOMAIN),
        Envelope::AwsFunctionUrl => http_v2(request, "$default", URL_DOMAIN),
        Envelope::AwsAlb => alb(request, false),
        Envelope::AwsAlbMultivalue => alb(request, true),
        Envelope::Direct | Envelope::AzurePayload | Envelope::AzureForwarding => Value::Null,
    }
}

/// `(key, value)` pairs of a raw query, optionally decoded (`+` is a space in query values).
fn query_pairs(query: &str, decode: bool) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if decode {
                (
                    percent::decode_lossy(&k.replace('+', " ")),
                    percent::decode_lossy(&v.replace('+', " ")),
                )
            } else {
                (k.to_owned(), v.to_owned())
            }
        })
        .collect()
}

/// Groups lines by name (case-insensitive; `lower` lower-cases names), keeping first spellings and order.
fn group(lines: &[(String, String)], lower: bool) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (name, value) in lines {
        let name = if lower {
            name.to_ascii_lowercase()
        } else {
            name.clone()
        };
        match out.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(&name)) {
            Some((_, values)) => values.push(value.clone()),
            None => out.push((name, vec![value.clone()])),
        }
    }
    out
}

fn single_map(groups: &[(String, Vec<String>)]) -> Value {
    Value::Object(
        groups
            .iter()
            .map(|(n, v)| {
                (
                    n.clone(),
                    Value::from(v.last().cloned().unwrap_or_default()),
                )
            })
            .collect(),
    )
}

fn multi_map(groups: &[(String, Vec<String>)]) -> Value {
    Value::Object(
        groups
            .iter()
            .map(|(n, v)| (n.clone(), Value::from(v.clone())))
            .collect(),
    )
}

fn text_or_base64(request: &ClientRequest) -> (Value, bool) {
    if request.body_is_text() {
        (
            Value::from(String::from_utf8_lossy(&request.body).into_owned()),
            false,
        )
    } else {
        (
            Value::from(base64::engine::general_purpose::STANDARD.encode(&request.body)),
            true,
        )
    }
}

fn rest_v1(request: &ClientRequest) -> Value {
    let path = percent::decode_lossy(&request.path);
    let headers = group(&request.headers, false);
    let query = group(&query_pairs(&request.query, true), false);
    let mut context = json!({
        "accountId": "123456789012", "apiId": "a1b2c3d4e5", "domainName": REST_DOMAIN, "domainPrefix": "a1b2c3d4e5",
        "httpMethod": request.method, "identity": {"sourceIp": "203.0.113.10", "userAgent": request.header("user-agent")},
        "path": format!("/Prod{path}"), "protocol": "HTTP/1.1", "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        "requestTimeEpoch": 1_767_225_600_000_u64, "resourceId": "proxy1", "resourcePath": "/{proxy+}", "stage": "Prod",
    });
    if let Some(tenant) = &request.authenticated_tenant {
        context["authorizer"] =
            json!({"principalId": "user-1", "tenant_id": tenant, "integrationLatency": 0});
    }
    let none_if_empty = |v: Value, empty: bool| if empty { Value::Null } else { v };
    json!({
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": request.method,
        "headers": none_if_empty(single_map(&headers), headers.is_empty()),
        "multiValueHeaders": none_if_empty(multi_map(&headers), headers.is_empty()),
        "queryStringParameters": none_if_empty(single_map(&query), query.is_empty()),
        "multiValueQueryStringParameters": none_if_empty(multi_map(&query), query.is_empty()),
        "pathParameters": {"proxy": path.trim_start_matches('/')},
        "stageVariables": null,
        "requestContext": context,
        "body": if request.body.is_empty() { Value::Null } else { Value::from(String::from_utf8_lossy(&request.body).into_owned()) },
        "isBase64Encoded": false,
    })
}

fn http_v2(request: &ClientRequest, stage: &str, domain: &str) -> Value {
    let raw_path = if stage == "$default" {
        request.path.clone()
    } else {
        format!("/{stage}{}", request.path)
    };
    let mut cookies: Vec<String> = Vec::new();
    let mut headers = Map::new();
    for (name, values) in group(&request.headers, true) {
        if name == "cookie" {
            cookies.extend(values.iter().flat_map(|v| v.split("; ").map(str::to_owned)));
        } else {
            headers.insert(name, Value::from(values.join(",")));
        }
    }
    let query = group(&query_pairs(&request.query, true), false);
    let mut context = json!({
        "accountId": "123456789012", "apiId": domain.split('.').next().unwrap_or_default(), "domainName": domain,
        "domainPrefix": domain.split('.').next().unwrap_or_default(),
        "http": {"method": request.method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10",
                 "userAgent": request.header("user-agent").unwrap_or_default()},
        "requestId": "JKJaXmPLvHcESHA=", "routeKey": "$default", "stage": stage,
        "time": "01/Jan/2026:00:00:00 +0000", "timeEpoch": 1_767_225_600_000_u64,
    });
    if let Some(tenant) = &request.authenticated_tenant {
        context["authorizer"] =
            json!({"jwt": {"claims": {"sub": "user-1", "tenant_id": tenant}, "scopes": null}});
    }
    let mut event = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": raw_path, "rawQueryString": request.query,
        "headers": headers, "requestContext": context, "isBase64Encoded": false,
    });
    if !cookies.is_empty() {
        event["cookies"] = Value::from(cookies);
    }
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(
            query
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.join(","))))
                .collect(),
        );
    }
    if !request.body.is_empty() {
        let (body, b64) = text_or_base64(request);
        event["body"] = body;
        event["isBase64Encoded"] = Value::Bool(b64);
    }
    event
}

fn alb(request: &ClientRequest, multi: bool) -> Value {
    let headers = group(&request.headers, true);
    let query = group(&query_pairs(&request.query, false), false);
    let (body, b64) = if request.body.is_empty() {
        (Value::from(""), false)
    } else {
        text_or_base64(request)
    };
    let mut event = json!({
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/paracell/73e2d6bc24d8a067"}},
        "httpMethod": request.method, "path": request.path, "body": body, "isBase64Encoded": b64,
    });
    if multi {
        event["multiValueHeaders"] = multi_map(&headers);
        event["multiValueQueryStringParameters"] = multi_map(&query);
    } else {
        event["headers"] = single_map(&headers);
        event["queryStringParameters"] = single_map(&query);
    }
    event
}

fn lines(map: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, value) in map.as_object().into_iter().flatten() {
        match value {
            Value::Array(values) => out.extend(
                values
                    .iter()
                    .map(|v| (name.clone(), v.as_str().unwrap_or_default().to_owned())),
            ),
            Value::String(v) => out.push((name.clone(), v.clone())),
            _ => {}
        }
    }
    out
}

/// What the client receives for the function's response JSON.
pub fn client_view(
    envelope: Envelope,
    method: &str,
    response: &Value,
) -> Result<ClientResponse, String> {
    let status = response["statusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .ok_or_else(|| format!("the function returned no valid statusCode: {response}"))?;
    let mut headers = match envelope {
        Envelope::AwsApigwV1 => {
            // multiValueHeaders wins over headers for the same name.
            let multi = lines(&response["multiValueHeaders"]);
            let mut all: Vec<(String, String)> = lines(&response["headers"])
                .into_iter()
                .filter(|(n, _)| !multi.iter().any(|(m, _)| m.eq_ignore_ascii_case(n)))
                .collect();
            all.extend(multi);
            all
        }
        Envelope::AwsAlbMultivalue => lines(&response["multiValueHeaders"]),
        _ => lines(&response["headers"]),
    };
    if matches!(
        envelope,
        Envelope::AwsApigwV2 | Envelope::AwsApigwV2Stage | Envelope::AwsFunctionUrl
    ) {
        for cookie in response["cookies"].as_array().into_iter().flatten() {
            headers.push((
                "set-cookie".into(),
                cookie.as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    let text = response["body"].as_str().unwrap_or_default();
    let body = if response["isBase64Encoded"].as_bool() == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("invalid base64 body in the response: {e}"))?
    } else {
        text.as_bytes().to_vec()
    };
    let body = if method.eq_ignore_ascii_case("HEAD") {
        Vec::new()
    } else {
        body
    };
    Ok(ClientResponse::new(status, headers, body))
}

/// A DynamoDB Streams event of the cell table, as Lambda delivers it to the relay: one `INSERT` of
/// each entry item (`NEW_IMAGE` view), with the given stream sequence numbers.
pub fn stream_event(records: &[(u64, &paracell_domain::replication::SealedEntry)]) -> Value {
    let pending: Vec<_> = records.iter().map(|(n, e)| (*n, *e, true)).collect();
    stream_event_of(&pending)
}

/// [`stream_event`] with entries that are not pending too: a standby's table streams the entries it
/// receives (inserted without `outbox`), which its relay must leave alone.
pub fn stream_event_of(
    records: &[(u64, &paracell_domain::replication::SealedEntry, bool)],
) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|(sequence, entry, pending)| {
            let keys = json!({
                "pk": {"S": format!("T#{}", entry.tenant())},
                "sk": {"S": format!("SEQ#{:020}", entry.seq())},
            });
            let mut image = keys.clone();
            image["doc"] = json!({"S": entry.document()});
            image["digest"] = json!({"S": entry.digest().to_string()});
            if *pending {
                image["outbox"] = json!({"S": "pending"});
            }
            json!({
                "eventID": format!("{sequence:032x}"),
                "eventName": "INSERT",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "eu-west-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": 1_767_225_600,
                    "Keys": keys,
                    "NewImage": image,
                    "SequenceNumber": sequence.to_string(),
                    "SizeBytes": entry.document().len() + 200,
                    "StreamViewType": "NEW_IMAGE",
                },
                "eventSourceARN": "arn:aws:dynamodb:eu-west-1:123456789012:table/cell/stream/2026-01-01T00:00:00.000",
            })
        })
        .collect();
    json!({ "Records": records })
}

/// An SQS event as the Lambda event source mapping of a queue delivers it (the relay's dead-letter
/// queue, replayed by the cell's function): one record per `(message id, body)`.
pub fn sqs_event(messages: &[(String, String)]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id,
                "receiptHandle": format!("AQEB{id}"),
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1767225600000",
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": "1767225600001"
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:cell-dead-letters",
                "awsRegion": "eu-west-1"
            })
        })
        .collect();
    json!({ "Records": records })
}
