//! Raw events in, exact Lambda response JSON out: every fixture in `tests/fixtures/`, plus every HTTP
//! event in `shared/fixtures/aws-upstream` and `aws-derived` when present.
//!
//! `PARACELL_BLESS=1 cargo test -p paracell-aws --test wire` writes the current responses into the
//! fixtures' `expect` (review the diff before committing).
#![allow(clippy::unwrap_used, missing_docs)]

use paracell_aws::LambdaCell;
use paracell_domain::memory::{MemoryStore, SequentialIds, SteppingClock};
use paracell_domain::{Cell, CellConfig, CellPorts, TenantId, TenantScope};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn lambda(max_body_bytes: Option<usize>) -> LambdaCell {
    let tenants = TenantScope::Set([TenantId::parse("coop-1").unwrap()].into_iter().collect());
    let mut config = CellConfig::new("cell-a", tenants).unwrap();
    if let Some(limit) = max_body_bytes {
        config.limits.max_body_bytes = limit;
    }
    LambdaCell::new(Cell::new(
        config,
        CellPorts {
            store: Arc::new(MemoryStore::new()),
            clock: Arc::new(SteppingClock::new(SteppingClock::CONFORMANCE_EPOCH, 1)),
            ids: Arc::new(SequentialIds::new(0x0190_0000_0000)),
        },
    ))
}

fn invoke(cell: &LambdaCell, event: &Value) -> Result<Value, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(cell.invoke(&serde_json::to_vec(event).unwrap()))
        .map(|bytes| serde_json::from_slice(&bytes).unwrap())
        .map_err(|e| e.to_string())
}

#[test]
fn every_fixture_gets_its_exact_wire_response() {
    let bless = std::env::var_os("PARACELL_BLESS").is_some();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 24, "fixtures missing from {}", dir.display());
    for file in files {
        let mut fixture: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let limit = fixture["max_body_bytes"]
            .as_u64()
            .map(|n| usize::try_from(n).unwrap());
        let actual =
            invoke(&lambda(limit), &fixture["event"]).unwrap_or_else(|e| panic!("{name}: {e}"));
        if bless {
            fixture["expect"] = actual;
            std::fs::write(
                &file,
                serde_json::to_string_pretty(&fixture).unwrap() + "\n",
            )
            .unwrap();
            continue;
        }
        assert_eq!(
            actual, fixture["expect"],
            "{name}: {}",
            fixture["description"]
        );
        // Whatever the source, the body is text, never base64 (every response has a JSON Content-Type).
        assert_eq!(actual["isBase64Encoded"], false, "{name}");
    }
}

#[test]
fn sources_that_agree_on_a_request_agree_on_the_answer() {
    // The same create through each source: the status and body bytes are identical.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let read = |n: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(n)).unwrap()).unwrap()
    };
    let answers: Vec<(u64, String)> = [
        "rest-v1-create.json",
        "function-url.json",
        "alb-multi-value.json",
        "http-v2-header-case.json",
        "http-v2-base64-json-body.json",
    ]
    .iter()
    .map(|n| {
        let r = invoke(&lambda(None), &read(n)["event"]).unwrap();
        (
            r["statusCode"].as_u64().unwrap(),
            r["body"].as_str().unwrap().to_owned(),
        )
    })
    .collect();
    assert_eq!(answers[0].0, 201);
    for a in &answers {
        assert_eq!(a, &answers[0]);
    }
    let missing = invoke(&lambda(None), &read("http-v2-missing-body.json")["event"]).unwrap();
    let empty = invoke(&lambda(None), &read("http-v2-empty-body.json")["event"]).unwrap();
    assert_eq!(missing, empty);
}

#[test]
fn events_that_are_not_http_events_are_refused_with_a_clear_error() {
    let cell = lambda(None);
    let scheduled = serde_json::json!({"version": "0", "detail-type": "Scheduled Event",
        "source": "aws.events", "detail": {}});
    let err = invoke(&cell, &scheduled).unwrap_err();
    assert!(
        err.contains("not an API Gateway (REST or HTTP API), Function URL or ALB event"),
        "{err}"
    );
    // Stream and queue batches belong to the relay: a function without one says so.
    let sqs =
        serde_json::json!({"Records": [{"messageId": "1", "body": "x", "eventSource": "aws:sqs"}]});
    let err = invoke(&cell, &sqs).unwrap_err();
    assert!(err.contains("without a relay"), "{err}");
    // P16: a hand-written REST event without requestContext.httpMethod is not recognised either.
    let hand_written =
        serde_json::json!({"httpMethod": "GET", "path": "/health", "requestContext": {}});
    assert!(invoke(&cell, &hand_written).is_err());
}

#[test]
fn every_upstream_http_event_gets_a_well_formed_response() {
    let mut replayed = 0;
    for sub in ["aws-upstream", "aws-derived"] {
        let Some(dir) = paracell_domain::testing::shared_fixtures(sub) else {
            return;
        };
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.extension().is_none_or(|e| e != "json") || name.contains("response") {
                continue;
            }
            let event: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            match invoke(&lambda(None), &event) {
                Ok(response) => {
                    let status = response["statusCode"]
                        .as_u64()
                        .unwrap_or_else(|| panic!("{name}: no statusCode"));
                    let body: Value = serde_json::from_str(response["body"].as_str().unwrap())
                        .unwrap_or_else(|e| panic!("{name}: body not JSON: {e}"));
                    assert_eq!(
                        body["status"].as_u64(),
                        Some(status),
                        "{name}: a problem body"
                    );
                    // Most samples carry no X-Tenant-ID: 400 missing-tenant (or 404 for paths outside the contract).
                    assert!(
                        [400, 404, 405].contains(&status),
                        "{name}: unexpected status {status}"
                    );
                    if name.contains("invalid-base64") {
                        assert_eq!(
                            body["type"], "urn:paracell:problem:malformed-request",
                            "{name}"
                        );
                    }
                    replayed += 1;
                }
                Err(e) => {
                    // Only events that are not HTTP events of an enabled source may be refused.
                    assert!(name.starts_with("vpc_lattice"), "{name}: refused: {e}");
                }
            }
        }
    }
    assert!(replayed >= 25, "only {replayed} upstream events replayed");
}
