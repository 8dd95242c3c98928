//! Any `tower::Service` as an `HttpService`: the request it sees, and the response made portable
//! (`paracell_domain::http::Workload`).
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use http_body_util::Full;
use paracell_domain::http::{ApiRequest, ApiResponse, AuthenticatedTenant, HttpService, Workload};
use paracell_domain::testing::block_on;
use std::convert::Infallible;

type Request = http::Request<Full<Bytes>>;

/// A workload that answers with `build`'s response to every request.
fn answering(
    build: fn() -> http::Response<Full<Bytes>>,
) -> Workload<
    impl tower::Service<
        Request,
        Response = http::Response<Full<Bytes>>,
        Error = Infallible,
        Future: Send,
    > + Clone
    + Send
    + 'static,
> {
    Workload::new(
        "test",
        tower::service_fn(move |_: Request| async move { Ok::<_, Infallible>(build()) }),
    )
}

fn call(workload: &impl HttpService, request: ApiRequest) -> ApiResponse {
    block_on(workload.handle(request))
}

fn header<'a>(response: &'a ApiResponse, name: &str) -> Vec<&'a str> {
    response
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn the_service_sees_the_request_as_sent_with_the_vouched_tenant_as_an_extension() {
    let echo = tower::service_fn(|request: Request| async move {
        let tenant = request
            .extensions()
            .get::<AuthenticatedTenant>()
            .map(|t| t.0.clone());
        let seen = serde_json::json!({
            "method": request.method().as_str(),
            "uri": request.uri().to_string(),
            "accept": request.headers().get_all("accept").iter().map(|v| v.to_str().unwrap()).collect::<Vec<_>>(),
            "tenant": tenant,
        });
        let body = http_body_util::BodyExt::collect(request.into_body())
            .await
            .unwrap()
            .to_bytes();
        let mut seen = seen;
        seen["body"] = serde_json::Value::from(String::from_utf8(body.to_vec()).unwrap());
        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(
            seen.to_string(),
        ))))
    });
    let workload = Workload::new("echo", echo);
    let mut request = ApiRequest::new("PATCH", "/v1/a%20b")
        .with_query("x=1&x=2")
        .with_header("Accept", "text/plain")
        .with_header("accept", "application/json")
        .with_body(b"hello".to_vec());
    request.authenticated_tenant = Some("coop-1".into());
    let answer = call(&workload, request);
    assert_eq!(answer.status, 200);
    let seen: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(
        seen,
        serde_json::json!({"method": "PATCH", "uri": "/v1/a%20b?x=1&x=2",
            "accept": ["text/plain", "application/json"], "tenant": "coop-1", "body": "hello"})
    );
}

#[test]
fn content_types_state_utf8_and_a_missing_one_is_text_plain() {
    let plain = answering(|| http::Response::new(Full::new(Bytes::from("hi"))));
    assert_eq!(
        header(&call(&plain, ApiRequest::new("GET", "/")), "content-type"),
        ["text/plain; charset=utf-8"]
    );
    let json = answering(|| {
        http::Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from("{}")))
            .unwrap()
    });
    assert_eq!(
        header(&call(&json, ApiRequest::new("GET", "/")), "content-type"),
        ["application/json; charset=utf-8"]
    );
    let latin1 = answering(|| {
        http::Response::builder()
            .header("content-type", "text/csv; charset=latin1; header=present")
            .body(Full::new(Bytes::from("a,b")))
            .unwrap()
    });
    assert_eq!(
        header(&call(&latin1, ApiRequest::new("GET", "/")), "content-type"),
        ["text/csv; charset=utf-8; header=present"]
    );
}

#[test]
fn repeated_lines_are_joined_and_framing_headers_dropped() {
    let workload = answering(|| {
        http::Response::builder()
            .status(201)
            .header("vary", "accept")
            .header("vary", "x-tenant-id")
            .header("content-length", "2")
            .header("connection", "close")
            .header("transfer-encoding", "chunked")
            .header("location", "/v1/x/1")
            .body(Full::new(Bytes::from("ok")))
            .unwrap()
    });
    let answer = call(&workload, ApiRequest::new("POST", "/v1/x"));
    assert_eq!(answer.status, 201);
    assert_eq!(header(&answer, "vary"), ["accept, x-tenant-id"]);
    assert_eq!(header(&answer, "location"), ["/v1/x/1"]);
    for framing in ["content-length", "connection", "transfer-encoding"] {
        assert!(header(&answer, framing).is_empty(), "{framing} was copied");
    }
}

#[test]
fn what_one_cloud_cannot_carry_is_a_500_everywhere() {
    let binary = answering(|| http::Response::new(Full::new(Bytes::from_static(&[0xff, 0xfe]))));
    let answer = call(&binary, ApiRequest::new("GET", "/"));
    assert_eq!(answer.status, 500);
    assert!(
        answer
            .telemetry
            .cause
            .as_deref()
            .unwrap()
            .contains("not UTF-8")
    );
    let cookies = answering(|| {
        http::Response::builder()
            .header("set-cookie", "a=1")
            .header("set-cookie", "b=2")
            .body(Full::new(Bytes::from("")))
            .unwrap()
    });
    let answer = call(&cookies, ApiRequest::new("GET", "/"));
    assert_eq!(answer.status, 500);
    assert!(
        answer
            .telemetry
            .cause
            .as_deref()
            .unwrap()
            .contains("more than one cookie")
    );
}

#[test]
fn a_request_http_cannot_represent_is_a_400_and_a_failing_service_a_500() {
    let workload = answering(|| http::Response::new(Full::new(Bytes::new())));
    let answer = call(&workload, ApiRequest::new("GE T", "/"));
    assert_eq!(answer.status, 400);
    assert!(String::from_utf8_lossy(&answer.body).contains("unrepresentable-request"));
    let answer = call(
        &workload,
        ApiRequest::new("GET", "/").with_header("x-bad\n", "v"),
    );
    assert_eq!(answer.status, 400);
    let failing = Workload::new(
        "failing",
        tower::service_fn(|_: Request| async {
            Err::<http::Response<Full<Bytes>>, _>(std::io::Error::other("database down"))
        }),
    );
    let answer = call(&failing, ApiRequest::new("GET", "/"));
    assert_eq!(answer.status, 500);
    assert!(
        answer
            .telemetry
            .cause
            .as_deref()
            .unwrap()
            .contains("database down")
    );
}

#[test]
fn the_body_limit_is_the_workloads_and_capped() {
    let workload = answering(|| http::Response::new(Full::new(Bytes::new())));
    assert_eq!(workload.max_body_bytes(), 262_144);
    let small = answering(|| http::Response::new(Full::new(Bytes::new()))).with_max_body_bytes(10);
    assert_eq!(small.max_body_bytes(), 10);
    assert_eq!(small.oversized_request().status, 413);
    let huge =
        answering(|| http::Response::new(Full::new(Bytes::new()))).with_max_body_bytes(usize::MAX);
    assert_eq!(huge.max_body_bytes(), 4_194_304);
}
