//! The `otlp` feature end to end: `local-cell`, with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at the
//! loopback receiver (`services/otlp/receiver.py`, started by `scripts/dev-services.sh`, which parses
//! every export with the official OpenTelemetry protobuf definitions and refuses what a Collector
//! refuses), exports its log events as OTLP log records: the `request` record of a create carries
//! the client's trace id, the tenant and the status, under the configured `service.name`, and no
//! idempotency key or body ever reaches the receiver.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use paracell_domain::ports::{HttpClient, OutboundRequest};
use paracell_examples::http_client::HyperClient;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{free_port, send, start_and_wait_ready};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn receiver() -> String {
    std::env::var("PARACELL_TEST_OTLP_ENDPOINT").expect(
        "PARACELL_TEST_OTLP_ENDPOINT is not set: run the stand-in tests under scripts/dev-services.sh",
    )
}

async fn received() -> Vec<serde_json::Value> {
    let answer = HyperClient::new()
        .send(OutboundRequest {
            method: "GET".into(),
            url: format!("{}/_otlp/logs", receiver()),
            headers: vec![],
            body: vec![],
            timeout: Duration::from_secs(5),
        })
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    serde_json::from_slice(&answer.body).unwrap()
}

#[tokio::test]
async fn a_cells_log_events_reach_an_otlp_receiver_with_their_trace_id() {
    let port = free_port();
    let service = format!("otlp-test-{}", std::process::id());
    let mut command = Command::new(env!("CARGO_BIN_EXE_local-cell"));
    command
        .env("PORT", port.to_string())
        .env("PARACELL_CELL_ID", "cell-otlp")
        .env("PARACELL_TENANTS", "*")
        .env("RUST_LOG", "info")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver())
        .env("OTEL_SERVICE_NAME", &service)
        .env("OTEL_BLRP_SCHEDULE_DELAY", "100")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _cell = start_and_wait_ready(command, port);
    let key = "otlp-secret-key-0001";
    let body = br#"{"account_id":"ACC-1","type":"credit","amount":"12.34","currency":"EUR"}"#;
    let traceparent = format!("00-{TRACE_ID}-00f067aa0ba902b7-01");
    let reply = send(
        port,
        "POST",
        "/v1/transactions",
        &[
            ("Content-Type", "application/json"),
            ("X-Tenant-ID", "coop-otlp"),
            ("Idempotency-Key", key),
            ("traceparent", &traceparent),
        ],
        body,
        false,
    );
    assert_eq!(reply.status, 201);

    let deadline = Instant::now() + Duration::from_secs(15);
    let mine = loop {
        let mine: Vec<serde_json::Value> = received()
            .await
            .into_iter()
            .filter(|r| r["service"] == service.as_str())
            .collect();
        // The create's record (the readiness poll's `GET /` is a request too).
        let create = |r: &serde_json::Value| {
            r["body"] == "request" && r["attributes"]["tenant"] == "coop-otlp"
        };
        if mine.iter().any(create) || Instant::now() > deadline {
            break mine;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let request = mine
        .iter()
        .find(|r| r["body"] == "request" && r["attributes"]["tenant"] == "coop-otlp")
        .unwrap_or_else(|| panic!("no request record exported: {mine:#?}"));
    assert_eq!(request["trace_id"], TRACE_ID);
    assert_eq!(request["severity_text"], "INFO");
    assert_eq!(request["severity_number"], 9);
    assert_eq!(request["scope"], "paracell");
    assert_eq!(request["attributes"]["tenant"], "coop-otlp");
    assert_eq!(request["attributes"]["status"], 201);
    assert_eq!(request["attributes"]["route"], "/v1/transactions");
    // Nothing secret travels: not the key, not the body.
    let everything = serde_json::to_string(&mine).unwrap();
    assert!(!everything.contains(key), "{everything}");
    assert!(!everything.contains("12.34"), "{everything}");
}
