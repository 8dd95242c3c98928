//! A model of what the Azure Functions host does around a custom handler, from the host's source
//! (release 4.1037; see `shared/notes/azure-custom-handler.md`). The real host cannot run offline, so
//! the conformance suite drives the handler through this model instead:
//!
//! * [`payload_invocation`] / [`forwarded_request`]: a client's request → what the host sends us;
//! * [`payload_reply_to_client`] / [`forwarded_reply_to_client`]: our reply → what the client gets.

use crate::server::{HandlerReply, HostRequest};
use base64::Engine as _;
use paracell_domain::http::{essence, percent};
use serde_json::{Map, Value, json};

/// The host version the model reproduces.
pub const HOST_VERSION: &str = "4.1037.0.0";

/// A request as the public client sends it to the function app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientRequest {
    /// Method.
    pub method: String,
    /// Public path, route prefix included, raw (`/api/v1/transactions`).
    pub path: String,
    /// Raw query string, without `?`.
    pub query: String,
    /// Header lines as sent.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Sent with `Transfer-Encoding: chunked` (no `Content-Length`): the host then drops the body.
    pub chunked: bool,
}

/// What the client finally receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientResponse {
    /// Status.
    pub status: u16,
    /// Header lines (transport headers such as `Date` or `Content-Length` are not modelled).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// Which output binding carries the HTTP response in payload mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpOutputBinding {
    /// `"name": "res"` (what Paracell's function.json files use).
    Res,
    /// `"name": "$return"`.
    Return,
}

/// The public host name the model uses in `Url` and `Host`.
pub const PUBLIC_HOST: &str = "localhost:7071";

fn body_is_sent(client: &ClientRequest) -> bool {
    // The host copies a body only when the caller sent Content-Length > 0.
    !client.chunked && !client.body.is_empty()
}

/// Kestrel's spelling of well-known header names; other names stay as sent.
fn kestrel_name(name: &str) -> String {
    const KNOWN: [&str; 12] = [
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Authorization",
        "Cache-Control",
        "Connection",
        "Content-Length",
        "Content-Type",
        "Cookie",
        "Host",
        "User-Agent",
        "Transfer-Encoding",
    ];
    KNOWN
        .iter()
        .find(|k| k.eq_ignore_ascii_case(name))
        .map_or_else(|| name.to_owned(), |k| (*k).to_owned())
}

/// The caller's headers as the host sees them: Kestrel names, repeated lines grouped in order of
/// first appearance, plus `Host` and `Content-Length` as the transport set them.
fn host_view_of_headers(client: &ClientRequest) -> Vec<(String, Vec<String>)> {
    let mut grouped: Vec<(String, Vec<String>)> = Vec::new();
    let mut add = |name: &str, value: &str| {
        let name = kestrel_name(name);
        match grouped
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(&name))
        {
            Some((_, values)) => values.push(value.to_owned()),
            None => grouped.push((name, vec![value.to_owned()])),
        }
    };
    add("Host", PUBLIC_HOST);
    for (name, value) in &client.headers {
        if !name.eq_ignore_ascii_case("host") && !name.eq_ignore_ascii_case("content-length") {
            add(name, value);
        }
    }
    if body_is_sent(client) {
        add("Content-Length", &client.body.len().to_string());
    } else if client.chunked {
        add("Transfer-Encoding", "chunked");
    }
    grouped
}

/// Kestrel parses the query into key → values (`+` and `%XX` decoded), in order of first appearance.
fn parse_query(query: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (form_decode(k), form_decode(v));
        match out.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(&k)) {
            Some((_, values)) => values.push(v),
            None => out.push((k, vec![v])),
        }
    }
    out
}

fn form_decode(s: &str) -> String {
    percent::decode_lossy(&s.replace('+', " "))
}

/// The host's payload-mode invocation of `function_name` for a client request.
pub fn payload_invocation(
    client: &ClientRequest,
    function_name: &str,
    invocation_id: &str,
) -> HostRequest {
    let mut headers = Map::new();
    for (name, values) in host_view_of_headers(client) {
        headers.insert(name, Value::from(values));
    }
    let query: Map<String, Value> = parse_query(&client.query)
        .into_iter()
        .map(|(k, v)| (k, Value::from(v.join(","))))
        .collect();
    let url = if client.query.is_empty() {
        format!("http://{PUBLIC_HOST}{}", client.path)
    } else {
        format!("http://{PUBLIC_HOST}{}?{}", client.path, client.query)
    };
    let mut req = Map::new();
    req.insert("Url".into(), Value::from(url));
    req.insert("Method".into(), Value::from(client.method.clone()));
    req.insert("Query".into(), Value::Object(query));
    req.insert("Headers".into(), Value::Object(headers));
    req.insert("Params".into(), json!({}));
    req.insert(
        "Identities".into(),
        json!([{"AuthenticationType": null, "IsAuthenticated": false, "Claims": [], "Name": null}]),
    );
    if body_is_sent(client) {
        let content_type = client
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.as_str());
        // The host's rule, stated here from its source, not borrowed from the adapter: a model that
        // shared the adapter's reading of the rule could never catch a mistake in it.
        let body = if host_sends_base64(content_type) {
            base64::engine::general_purpose::STANDARD.encode(&client.body)
        } else {
            // Read as UTF-8 text: lossy for anything that is not.
            String::from_utf8_lossy(&client.body).into_owned()
        };
        req.insert("Body".into(), Value::from(body));
    }
    let envelope = json!({
        "Data": {"req": Value::Object(req)},
        "Metadata": {"sys": {"MethodName": function_name, "UtcNow": "2026-01-01T00:00:00.0000000Z", "RandGuid": invocation_id}},
    });
    HostRequest::new("POST", &format!("/{function_name}"))
        .with_header("Host", "127.0.0.1")
        .with_header(
            "User-Agent",
            &format!("Azure-Functions-Host/{HOST_VERSION}"),
        )
        .with_header("X-Azure-Functions-HostVersion", HOST_VERSION)
        .with_header("X-Azure-Functions-InvocationId", invocation_id)
        .with_header("Content-Type", "application/json; charset=utf-8")
        .with_body(serde_json::to_vec(&envelope).unwrap_or_default())
}

/// The host's forwarded request (`enableForwardingHttpRequest`) for a client request.
pub fn forwarded_request(client: &ClientRequest, invocation_id: &str) -> HostRequest {
    // The query is rebuilt from the comma-joined dictionary (QueryHelpers.AddQueryString).
    let query: Vec<String> = parse_query(&client.query)
        .into_iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                percent::encode_component(&k),
                percent::encode_component(&v.join(","))
            )
        })
        .collect();
    let path = if query.is_empty() {
        client.path.clone()
    } else {
        format!("{}?{}", client.path, query.join("&"))
    };
    let mut request = HostRequest::new(&client.method, &path);
    for (name, values) in host_view_of_headers(client) {
        if name.eq_ignore_ascii_case("transfer-encoding") {
            continue;
        }
        // HttpClient joins a header's values with ", ", except Cookie, which it joins with "; "
        // as RFC 6265 §4.2 requires (dotnet/runtime `CookieHeaderParser`).
        let separator = if name.eq_ignore_ascii_case("cookie") {
            "; "
        } else {
            ", "
        };
        let mut value = values.join(separator);
        if name.eq_ignore_ascii_case("user-agent") {
            value = format!("{value} Azure-Functions-Host/{HOST_VERSION}");
        }
        request = request.with_header(&name, &value);
    }
    if !client
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("user-agent"))
    {
        request = request.with_header(
            "User-Agent",
            &format!("Azure-Functions-Host/{HOST_VERSION}"),
        );
    }
    request = request
        .with_header("X-Azure-Functions-HostVersion", HOST_VERSION)
        .with_header("X-Azure-Functions-InvocationId", invocation_id);
    if body_is_sent(client) {
        request = request.with_body(client.body.clone());
    }
    request
}

fn failed_invocation() -> ClientResponse {
    ClientResponse {
        status: 500,
        headers: Vec::new(),
        body: Vec::new(),
    }
}

/// Newtonsoft binds members case-insensitively.
fn member<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// `int.TryParse` on a status: an integer (or integer string) in range, else 200.
fn status_code(value: Option<&Value>) -> u16 {
    let parsed = match value {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    parsed
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| (100..=599).contains(n))
        .unwrap_or(200)
}

/// Newtonsoft's `Formatting.Indented` (two spaces, `\n` on Linux plans).
fn indented(value: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(value).unwrap_or_default()
}

/// What the client receives for a payload-mode reply.
pub fn payload_reply_to_client(
    reply: &HandlerReply,
    binding: HttpOutputBinding,
    client_method: &str,
) -> ClientResponse {
    // The reply must be 2xx with a JSON media type, or the invocation fails: the caller gets 500.
    let json_media = reply
        .header("content-type")
        .map(essence)
        .is_some_and(|e| e == "application/json" || e == "text/json");
    if !(200..300).contains(&reply.status) || !json_media {
        return failed_invocation();
    }
    let Ok(Value::Object(result)) = serde_json::from_slice::<Value>(&reply.body) else {
        return failed_invocation();
    };
    let output = match binding {
        HttpOutputBinding::Res => match member(&result, "Outputs") {
            None | Some(Value::Null) => {
                return ClientResponse {
                    status: 200,
                    headers: Vec::new(),
                    body: Vec::new(),
                };
            }
            Some(Value::Object(outputs)) => match member(outputs, "res") {
                None => return text_response(200, "{}".into()),
                Some(value) => value.clone(),
            },
            Some(_) => return failed_invocation(),
        },
        HttpOutputBinding::Return => match member(&result, "ReturnValue") {
            Some(Value::Object(o)) if member(o, "body").is_none() => {
                // Without a body key the whole object is the (200) body.
                return json_object_response(&Value::Object(o.clone()));
            }
            Some(value) => value.clone(),
            None => {
                return ClientResponse {
                    status: 200,
                    headers: Vec::new(),
                    body: Vec::new(),
                };
            }
        },
    };
    // `res` may be an object or a string containing one.
    let output = match output {
        Value::String(s) => match serde_json::from_str::<Value>(&s) {
            Ok(v @ Value::Object(_)) => v,
            _ => return failed_invocation(),
        },
        v @ Value::Object(_) => v,
        _ => return failed_invocation(),
    };
    let Value::Object(output) = output else {
        return failed_invocation();
    };
    let status = status_code(member(&output, "statusCode"));
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(Value::Object(h)) = member(&output, "headers") {
        for (name, value) in h {
            if headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                continue; // "duplicate header": the second spelling is dropped
            }
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(_) | Value::Bool(_) => value.to_string(),
                Value::Null => String::new(),
                // An array or object becomes multi-line JSON text: not a valid header value.
                _ => return failed_invocation(),
            };
            headers.push((name.clone(), text));
        }
    }
    let (body, is_string) = match member(&output, "body") {
        None | Some(Value::Null) => (Vec::new(), false),
        Some(Value::String(s)) => (s.clone().into_bytes(), true),
        Some(v @ (Value::Object(_) | Value::Array(_))) => (indented(v), true),
        Some(other) => (other.to_string().into_bytes(), true),
    };
    match headers
        .iter_mut()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        // ASP.NET Core's `MediaType.ReplaceEncoding(value, UTF8)`, which the core implements once.
        Some((_, ct)) if is_string => *ct = paracell_domain::http::with_utf8_charset(ct),
        Some(_) => {}
        None if is_string => {
            headers.push(("Content-Type".into(), "text/plain; charset=utf-8".into()))
        }
        None => {}
    }
    let body = if client_method.eq_ignore_ascii_case("HEAD") {
        Vec::new()
    } else {
        body
    };
    ClientResponse {
        status,
        headers,
        body,
    }
}

fn text_response(status: u16, body: String) -> ClientResponse {
    ClientResponse {
        status,
        headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
        body: body.into_bytes(),
    }
}

fn json_object_response(value: &Value) -> ClientResponse {
    ClientResponse {
        status: 200,
        headers: vec![(
            "Content-Type".into(),
            "application/json; charset=utf-8".into(),
        )],
        body: serde_json::to_vec(value).unwrap_or_default(),
    }
}

/// What the client receives for a forwarded reply: status, every header and the body, unchanged.
pub fn forwarded_reply_to_client(reply: &HandlerReply, client_method: &str) -> ClientResponse {
    let body = if client_method.eq_ignore_ascii_case("HEAD") {
        Vec::new()
    } else {
        reply.body.clone()
    };
    ClientResponse {
        status: reply.status,
        headers: reply.headers.clone(),
        body,
    }
}

/// Which request bodies the host puts in `Body` as base64 (`HttpRequestExtensions`, the
/// `IsMediaTypeOctetOrMultipart` check, notes/azure-custom-handler.md "Body rules"): the media type
/// — `Content-Type` without parameters, any case — is `application/octet-stream` or `multipart/*`.
fn host_sends_base64(content_type: Option<&str>) -> bool {
    let media_type = content_type
        .and_then(|value| value.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    media_type == "application/octet-stream" || media_type.starts_with("multipart/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_parsing_falls_back_to_200() {
        assert_eq!(status_code(Some(&json!(201))), 201);
        assert_eq!(status_code(Some(&json!("422"))), 422);
        assert_eq!(status_code(Some(&json!("4xx"))), 200);
        assert_eq!(status_code(Some(&json!(201.5))), 200);
        assert_eq!(status_code(None), 200);
    }

    #[test]
    fn forwarding_collapses_repeated_query_keys() {
        let client = ClientRequest {
            method: "GET".into(),
            path: "/api/x".into(),
            query: "tag=a&tag=b&q=x%20y".into(),
            ..Default::default()
        };
        assert_eq!(
            forwarded_request(&client, "i").path,
            "/api/x?tag=a%2Cb&q=x%20y"
        );
    }

    #[test]
    fn a_chunked_body_does_not_reach_the_handler() {
        let client = ClientRequest {
            method: "POST".into(),
            path: "/api/x".into(),
            body: b"{}".to_vec(),
            chunked: true,
            ..Default::default()
        };
        let envelope: Value =
            serde_json::from_slice(&payload_invocation(&client, "F", "i").body).unwrap();
        assert!(envelope["Data"]["req"].get("Body").is_none());
        assert!(forwarded_request(&client, "i").body.is_empty());
    }
}
