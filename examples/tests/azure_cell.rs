//! The deployable `azure-cell` binary, started the way the Functions host starts it: environment
//! variables, `FUNCTIONS_APP_ROOT_PATH` pointing at the function app, readiness poll on `GET /`, then
//! host-shaped requests over loopback HTTP.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use paracell_azure::host_model::{self, ClientRequest, HttpOutputBinding};
use std::process::Command;
use support::*;

fn azure_cell(port: u16, mode: &str) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_azure-cell"));
    command
        .env_clear()
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env(
            "FUNCTIONS_APP_ROOT_PATH",
            concat!(env!("CARGO_MANIFEST_DIR"), "/azure/app"),
        )
        .env("FUNCTIONS_CUSTOMHANDLER_WORKER_ID", "e2e")
        .env("PARACELL_CELL_ID", "cell-az")
        .env("PARACELL_TENANTS", "coop-1")
        .env("PARACELL_AZURE_MODE", mode)
        .env("RUST_LOG", "warn");
    start_and_wait_ready(command, port)
}

fn client(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> ClientRequest {
    ClientRequest {
        method: method.into(),
        path: path.into(),
        query: String::new(),
        headers: headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect(),
        body: body.as_bytes().to_vec(),
        chunked: false,
    }
}

/// Sends a payload-mode invocation the way the host does (chunked JSON, no Content-Length).
fn invoke(port: u16, client: &ClientRequest) -> host_model::ClientResponse {
    let request = host_model::payload_invocation(client, "Transactions", "inv-e2e");
    let headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .filter(|(n, _)| n != "Host")
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let reply = send(
        port,
        &request.method,
        &request.path,
        &headers,
        &request.body,
        true,
    );
    assert_eq!(
        reply.status, 200,
        "payload mode always answers the host with 200"
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let handler_reply = paracell_azure::HandlerReply {
        status: reply.status,
        headers: reply.headers,
        body: reply.body,
    };
    host_model::payload_reply_to_client(&handler_reply, HttpOutputBinding::Res, &client.method)
}

const CREATE: &str = r#"{"account_id":"ACC-1","type":"credit","amount":"125.5","currency":"EUR"}"#;

#[test]
fn payload_mode_over_loopback() {
    let port = free_port();
    let _cell = azure_cell(port, "payload");
    let create = client(
        "POST",
        "/api/v1/transactions",
        &[
            ("Content-Type", "application/json"),
            ("X-Tenant-ID", "coop-1"),
            ("Idempotency-Key", "k-1"),
        ],
        CREATE,
    );
    let created = invoke(port, &create);
    assert_eq!(created.status, 201);
    let body: serde_json::Value = serde_json::from_slice(&created.body).unwrap();
    assert_eq!(
        (body["amount"].as_str(), body["cell_id"].as_str()),
        (Some("125.50"), Some("cell-az"))
    );
    let ct = created
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .unwrap();
    assert_eq!(
        ct.1, "application/json; charset=utf-8",
        "the host's charset rewrite leaves our header as it is"
    );

    // Header-name case variants are the same request: a replay.
    let lower = client(
        "POST",
        "/api/v1/transactions",
        &[
            ("content-type", "application/json"),
            ("x-tenant-id", "coop-1"),
            ("IDEMPOTENCY-KEY", "k-1"),
        ],
        CREATE,
    );
    let replay = invoke(port, &lower);
    assert_eq!((replay.status, &replay.body), (201, &created.body));

    // A chunked client upload reaches the handler without Body: an empty body.
    let mut chunked = client(
        "POST",
        "/api/v1/transactions",
        &[
            ("Content-Type", "application/json"),
            ("X-Tenant-ID", "coop-1"),
            ("Idempotency-Key", "k-2"),
        ],
        CREATE,
    );
    chunked.chunked = true;
    let refused = invoke(port, &chunked);
    assert_eq!(refused.status, 400);
    assert!(String::from_utf8_lossy(&refused.body).contains("malformed-request"));

    // An octet-stream body arrives base64-encoded, is decoded, and is 415 by contract.
    let binary = ClientRequest {
        body: vec![0, 0x9f, 0x92, 0x96, 0xff],
        ..client(
            "POST",
            "/api/v1/transactions",
            &[
                ("Content-Type", "application/octet-stream"),
                ("X-Tenant-ID", "coop-1"),
                ("Idempotency-Key", "k-3"),
            ],
            "",
        )
    };
    assert_eq!(invoke(port, &binary).status, 415);

    // Repeated query keys do not disturb the request.
    let mut query = client(
        "GET",
        "/api/v1/accounts/ACC-1/balances",
        &[("X-Tenant-ID", "coop-1")],
        "",
    );
    query.query = "tag=a&tag=b&x=%20".into();
    let balances = invoke(port, &query);
    assert_eq!(
        String::from_utf8_lossy(&balances.body),
        r#"{"account_id":"ACC-1","balances":[{"currency":"EUR","available":"125.50"}]}"#
    );

    // A malformed envelope still gets a valid envelope back.
    let reply = send(
        port,
        "POST",
        "/Transactions",
        &[("Content-Type", "application/json")],
        b"{\"Data\":7}",
        true,
    );
    assert_eq!(reply.status, 200);
    assert_eq!(json(&reply)["Outputs"]["res"]["statusCode"], 400);
}

#[test]
fn forwarding_mode_over_loopback_and_graceful_shutdown() {
    let port = free_port();
    let mut cell = azure_cell(port, "forwarding");
    // The host forwards the caller's request at its public path, route prefix included.
    let created = send(
        port,
        "POST",
        "/api/v1/transactions",
        &[
            ("Content-Type", "application/json"),
            ("x-tenant-id", "coop-1"),
            ("Idempotency-Key", "k-1"),
        ],
        CREATE.as_bytes(),
        true,
    );
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    assert_eq!(
        created.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(created.header("cache-control"), Some("no-store"));
    let location = created.header("location").unwrap().to_owned();
    let fetched = send(
        port,
        "GET",
        &format!("/api{location}?tag=a%2Cb"),
        &[("X-TENANT-ID", "coop-1")],
        b"",
        false,
    );
    assert_eq!((fetched.status, &fetched.body), (200, &created.body));
    let other = send(
        port,
        "GET",
        "/api/v1/transactions/01900000-0000-7000-8000-000000000001",
        &[("X-Tenant-ID", "coop-2")],
        b"",
        false,
    );
    assert_eq!(
        (other.status, json(&other)["cell_id"].as_str()),
        (421, Some("cell-az"))
    );

    // SIGTERM: the server stops accepting, finishes, and exits cleanly.
    let pid = cell.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = cell.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "azure-cell did not exit after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(25));
    };
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[test]
fn bad_configuration_is_a_clear_start_up_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_azure-cell"))
        .env_clear()
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", "1")
        .env("PARACELL_CELL_ID", "cell-az")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    // One JSON line, as every line a binary writes, naming the variable.
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line: serde_json::Value = serde_json::from_str(stderr.trim()).unwrap();
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["fields"]["message"], "start-up failed");
    assert_eq!(line["fields"]["binary"], "azure-cell");
    assert_eq!(line["fields"]["error"], "PARACELL_TENANTS is not set");
}
