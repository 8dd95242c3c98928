//! Host-shaped requests in, exact handler replies out: every fixture in `tests/fixtures/`, plus the
//! host's own samples from `shared/fixtures/azure-host` when they are present.
#![allow(clippy::unwrap_used, missing_docs)]

use paracell_azure::host_model::{self, HttpOutputBinding};
use paracell_azure::{AzureConfig, AzureHandler, HandlerReply, HostRequest, Mode, RoutePrefix};
use paracell_domain::memory::{MemoryStore, SequentialIds, SteppingClock};
use paracell_domain::{Cell, CellConfig, CellPorts, TenantId, TenantScope};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn cell() -> Cell {
    let tenants = TenantScope::Set([TenantId::parse("coop-1").unwrap()].into_iter().collect());
    Cell::new(
        CellConfig::new("cell-b", tenants).unwrap(),
        CellPorts {
            store: Arc::new(MemoryStore::new()),
            clock: Arc::new(SteppingClock::new(SteppingClock::CONFORMANCE_EPOCH, 1)),
            ids: Arc::new(SequentialIds::new(0x0190_0000_0000)),
        },
    )
}

fn config_from(fixture: &Value) -> AzureConfig {
    let c = &fixture["config"];
    AzureConfig {
        mode: if c["mode"] == "forwarding" {
            Mode::Forwarding
        } else {
            Mode::Payload
        },
        route_prefix: RoutePrefix::new(c["route_prefix"].as_str().unwrap_or("api")),
        trust_client_principal: c["trust_client_principal"].as_bool().unwrap_or(false),
        ..AzureConfig::default()
    }
}

fn host_request(r: &Value) -> HostRequest {
    let mut request = HostRequest::new(r["method"].as_str().unwrap(), r["path"].as_str().unwrap());
    for pair in r["headers"].as_array().unwrap() {
        request = request.with_header(pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
    }
    if let Some(body) = r["body"].as_str() {
        request = request.with_body(body.as_bytes().to_vec());
    } else if !r["body_json"].is_null() {
        request = request.with_body(serde_json::to_vec(&r["body_json"]).unwrap());
    }
    request
}

fn run(handler: &AzureHandler, request: HostRequest) -> HandlerReply {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(handler.invoke(request))
}

#[test]
fn every_fixture_gets_its_exact_reply() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 15, "fixtures missing from {}", dir.display());
    for file in files {
        let fixture: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let handler = AzureHandler::new(cell(), config_from(&fixture));
        let reply = run(&handler, host_request(&fixture["request"]));
        let expect = &fixture["expect"];
        assert_eq!(
            u64::from(reply.status),
            expect["status"].as_u64().unwrap(),
            "{name}: status"
        );
        for (header, value) in expect["headers"].as_object().unwrap() {
            assert_eq!(
                reply.header(header),
                value.as_str(),
                "{name}: header {header}"
            );
        }
        if let Some(body) = expect["body"].as_str() {
            assert_eq!(String::from_utf8_lossy(&reply.body), body, "{name}: body");
        } else {
            let actual: Value = serde_json::from_slice(&reply.body)
                .unwrap_or_else(|e| panic!("{name}: reply is not JSON: {e}"));
            assert_eq!(actual, expect["body_json"], "{name}: body");
        }
    }
}

#[test]
fn a_panic_on_the_request_path_is_a_500_problem_in_both_modes() {
    use paracell_domain::testing::faults::FaultyStore;
    let panicking =
        |_| -> Result<(), paracell_domain::ports::StoreError> { panic!("bug in a store") };
    let exploding = || {
        Cell::new(
            CellConfig::new("cell-b", TenantScope::All).unwrap(),
            CellPorts {
                store: Arc::new(FaultyStore::new(
                    Arc::new(paracell_domain::memory::MemoryStore::new()),
                    panicking,
                )),
                clock: Arc::new(paracell_domain::ports::SystemClock),
                ids: Arc::new(paracell_domain::ports::UuidV7),
            },
        )
    };
    let internal = r#"{"type":"urn:paracell:problem:internal","title":"Internal error","status":500,"detail":"An unexpected error occurred."}"#;

    let forwarding = AzureHandler::new(
        exploding(),
        AzureConfig {
            mode: Mode::Forwarding,
            ..AzureConfig::default()
        },
    );
    let reply = run(
        &forwarding,
        HostRequest::new(
            "GET",
            "/api/v1/transactions/01900000-0000-7000-8000-000000000001",
        )
        .with_header("X-Tenant-ID", "coop-1"),
    );
    assert_eq!(
        (reply.status, String::from_utf8_lossy(&reply.body).as_ref()),
        (500, internal)
    );

    let payload = AzureHandler::new(exploding(), AzureConfig::default());
    let client = host_model::ClientRequest {
        method: "GET".into(),
        path: "/api/v1/transactions/01900000-0000-7000-8000-000000000001".into(),
        headers: vec![("X-Tenant-ID".into(), "coop-1".into())],
        ..Default::default()
    };
    let reply = run(
        &payload,
        host_model::payload_invocation(&client, "Transactions", "inv-1"),
    );
    assert_eq!(
        reply.status, 200,
        "the host leg stays 2xx, or the host would turn it into its own bare 500"
    );
    let seen = host_model::payload_reply_to_client(&reply, HttpOutputBinding::Res, "GET");
    assert_eq!(
        (seen.status, String::from_utf8_lossy(&seen.body).as_ref()),
        (500, internal)
    );

    // The handler keeps serving after a panic.
    let reply = run(&forwarding, HostRequest::new("GET", "/api/health"));
    assert_eq!(reply.status, 200);
}

#[test]
fn logs_name_route_status_and_tenant_but_never_secrets() {
    let handler = AzureHandler::new(cell(), AzureConfig::default());
    let client = host_model::ClientRequest {
        method: "POST".into(),
        path: "/api/v1/transactions".into(),
        query: "code=function-key-secret".into(),
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("X-Tenant-ID".into(), "coop-1".into()),
            ("Idempotency-Key".into(), "idem-secret".into()),
            ("x-functions-key".into(), "key-secret".into()),
            ("Authorization".into(), "Bearer token-secret".into()),
        ],
        body: br#"{"account_id":"ACC-1","type":"credit","amount":"1","currency":"EUR","reference":"body-secret"}"#.to_vec(),
        chunked: false,
    };
    let reply = run(
        &handler,
        host_model::payload_invocation(&client, "Transactions", "inv-1"),
    );
    let envelope: Value = serde_json::from_slice(&reply.body).unwrap();
    let logs = envelope["Logs"].to_string();
    assert_eq!(logs, r#"["POST /v1/transactions -> 201 (tenant coop-1)"]"#);
    assert!(!logs.contains("secret"));
}

#[test]
fn the_hosts_request_samples_are_answered_inside_valid_envelopes() {
    let Some(dir) = paracell_domain::testing::shared_fixtures("azure-host") else {
        return;
    };
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let sample: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if sample["direction"] != "host->handler" {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let url = sample["http"]["url"].as_str().unwrap();
        let host_path = &url[url.find("}").map_or(0, |i| i + 1)..];
        let mut request = HostRequest::new(sample["http"]["method"].as_str().unwrap(), host_path);
        for (n, v) in sample["http"]["headers"].as_object().unwrap() {
            if !n.eq_ignore_ascii_case("transfer-encoding") && !n.eq_ignore_ascii_case("host") {
                request = request.with_header(n, v.as_str().unwrap());
            }
        }
        match &sample["body"] {
            Value::Null => {}
            Value::String(raw) => request = request.with_body(raw.as_bytes().to_vec()),
            other => request = request.with_body(serde_json::to_vec(other).unwrap()),
        }
        let forwarded = sample["mode"] == "forwarded";
        let config = AzureConfig {
            mode: if forwarded {
                Mode::Forwarding
            } else {
                Mode::Payload
            },
            ..AzureConfig::default()
        };
        let reply = run(&AzureHandler::new(cell(), config), request);
        if host_path == "/" {
            assert_eq!(reply.status, 200, "{name}: readiness");
        } else if forwarded {
            // No X-Tenant-ID and a path outside the contract: the domain's 404 problem, as plain HTTP.
            assert_eq!(reply.status, 404, "{name}");
            assert_eq!(
                reply.header("content-type"),
                Some("application/problem+json; charset=utf-8"),
                "{name}"
            );
        } else {
            assert_eq!(
                (reply.status, reply.header("content-type")),
                (200, Some("application/json")),
                "{name}"
            );
            let seen = host_model::payload_reply_to_client(&reply, HttpOutputBinding::Res, "POST");
            assert_eq!(
                seen.status, 404,
                "{name}: the sample's route is not part of the contract"
            );
        }
        replayed += 1;
    }
    assert!(replayed >= 6, "only {replayed} host samples replayed");
}

#[test]
fn the_host_model_matches_the_hosts_reply_samples() {
    let Some(dir) = paracell_domain::testing::shared_fixtures("azure-host") else {
        return;
    };
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let sample: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if sample["direction"] != "handler->host" {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut headers = Vec::new();
        for (n, v) in sample["http"]["headers"].as_object().unwrap() {
            match v {
                Value::Array(values) => headers.extend(
                    values
                        .iter()
                        .map(|v| (n.clone(), v.as_str().unwrap().to_owned())),
                ),
                v => headers.push((n.clone(), v.as_str().unwrap().to_owned())),
            }
        }
        let body = match &sample["body"] {
            Value::String(s) => s.clone().into_bytes(),
            other => serde_json::to_vec(other).unwrap(),
        };
        let reply = HandlerReply {
            status: u16::try_from(sample["http"]["status"].as_u64().unwrap()).unwrap(),
            headers,
            body,
        };
        let seen = if sample["mode"] == "forwarded" {
            host_model::forwarded_reply_to_client(&reply, "POST")
        } else {
            let binding = if sample["function_json"]
                .as_str()
                .is_some_and(|f| f.contains("Return"))
            {
                HttpOutputBinding::Return
            } else {
                HttpOutputBinding::Res
            };
            host_model::payload_reply_to_client(&reply, binding, "POST")
        };
        let expected = &sample["expected_client_response"];
        assert_eq!(
            u64::from(seen.status),
            expected["status"].as_u64().unwrap(),
            "{name}: status"
        );
        assert_eq!(
            String::from_utf8_lossy(&seen.body),
            expected["body"].as_str().unwrap(),
            "{name}: body"
        );
        for (n, v) in expected["headers"].as_object().unwrap() {
            let values: Vec<&str> = seen
                .headers
                .iter()
                .filter(|(h, _)| h.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.as_str())
                .collect();
            let want: Vec<&str> = match v {
                Value::Array(a) => a.iter().map(|v| v.as_str().unwrap()).collect(),
                v => vec![v.as_str().unwrap()],
            };
            assert_eq!(values, want, "{name}: header {n}");
        }
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} reply samples checked");
}

#[test]
fn payload_mode_answers_only_what_the_host_sends_there() {
    // The host invokes `POST /{FunctionName}` in payload mode: one segment. Anything else is not an
    // invocation and gets a 404 problem without reaching the cell.
    let handler = AzureHandler::new(cell(), AzureConfig::default());
    assert!(handler.cell().is_some());
    for (method, path) in [
        ("POST", "/"),
        ("POST", "/Transactions/extra"),
        ("GET", "/Transactions"),
        ("PUT", "/Transactions"),
    ] {
        let reply =
            paracell_domain::testing::block_on(handler.invoke(HostRequest::new(method, path)));
        assert_eq!(reply.status, 404, "{method} {path}");
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        assert!(
            body["detail"].as_str().unwrap().contains("Payload mode"),
            "{method} {path}: {body}"
        );
    }
}
