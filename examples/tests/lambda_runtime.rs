//! The deployable `bootstrap` (built by `cargo lambda build --release --bin lambda-cell`) under
//! cargo-lambda's Lambda Runtime API emulator (`cargo lambda watch --only-lambda-apis`), invoked with
//! every event fixture of the AWS adapter: the real runtime client, the real binary.
//!
//! Needs cargo-lambda and the built bootstrap, so it is `#[ignore]`d in a plain `cargo test`;
//! `.ci/run` installs both and runs it with `--ignored`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use paracell_conformance::binaries::LambdaProcess;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `bootstrap` under an emulator of its own, with `env` besides Lambda's variables.
fn function(bootstrap: &Path, env: &[(&str, &str)]) -> LambdaProcess {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    paracell_conformance::binaries::start_function(&workspace(), bootstrap, &env)
        .unwrap_or_else(|e| panic!("{e} (install cargo-lambda: pip install cargo-lambda)"))
}

fn invoke(function: &LambdaProcess, event: &Value) -> Value {
    function
        .invoke(event)
        .unwrap_or_else(|e| panic!("invoke failed: {e}"))
}

#[test]
#[ignore = "needs cargo-lambda and the release bootstrap: .ci/run runs it with --ignored"]
fn the_release_bootstrap_answers_every_fixture_under_the_runtime_emulator() {
    let bootstrap = std::env::var_os("PARACELL_LAMBDA_BOOTSTRAP")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/lambda/lambda-cell/bootstrap"));
    assert!(
        bootstrap.is_file(),
        "{} is missing: run cargo lambda build --release --bin lambda-cell",
        bootstrap.display()
    );
    let lambda = function(
        &bootstrap,
        &[
            ("PARACELL_CELL_ID", "cell-a"),
            ("PARACELL_TENANTS", "coop-1"),
            ("RUST_LOG", "warn"),
        ],
    );

    let dir = workspace().join("adapters-aws/tests/fixtures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut checked = 0;
    for file in files {
        let fixture: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if !fixture["max_body_bytes"].is_null() {
            continue; // needs another cell configuration; the 413 is checked below with the default limit
        }
        let expected = &fixture["expect"];
        let actual = invoke(&lambda, &fixture["event"]);
        assert_eq!(actual["statusCode"], expected["statusCode"], "{name}");
        assert_eq!(actual["isBase64Encoded"], false, "{name}");
        let status = expected["statusCode"].as_u64().unwrap();
        if status == 201 {
            // Real clock and UUIDv7 ids here; an earlier fixture may have used the same key (a replay).
            let (a, e): (Value, Value) = (
                serde_json::from_str(actual["body"].as_str().unwrap()).unwrap(),
                serde_json::from_str(expected["body"].as_str().unwrap()).unwrap(),
            );
            for member in [
                "tenant_id",
                "account_id",
                "type",
                "amount",
                "currency",
                "status",
                "balance_after",
                "cell_id",
            ] {
                assert_eq!(a[member], e[member], "{name}: {member}");
            }
        } else {
            assert_eq!(actual["body"], expected["body"], "{name}");
            assert_eq!(actual["headers"], expected["headers"], "{name}");
            assert_eq!(
                actual["multiValueHeaders"], expected["multiValueHeaders"],
                "{name}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 23, "only {checked} fixtures checked");

    // The contract's 413 wins long before Lambda's 6 MB limit.
    let big = serde_json::json!({"version": "2.0", "routeKey": "$default", "rawPath": "/v1/transactions", "rawQueryString": "",
        "headers": {"content-type": "application/json", "x-tenant-id": "coop-1", "idempotency-key": "big"},
        "requestContext": {"http": {"method": "POST", "path": "/v1/transactions", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
            "stage": "$default", "requestId": "r", "routeKey": "$default", "accountId": "1", "apiId": "a", "domainName": "d", "domainPrefix": "d", "time": "t", "timeEpoch": 0},
        "body": "x".repeat(262_145), "isBase64Encoded": false});
    let answer = invoke(&lambda, &big);
    assert_eq!(answer["statusCode"], 413);
}

/// An EventBridge delivery of `event`, as a rule's target receives it.
fn eventbridge_delivery(event: &paracell_domain::events::TransactionAccepted, id: &str) -> Value {
    let detail: Value = serde_json::from_str(&event.document()).unwrap();
    serde_json::json!({"version": "0", "id": id, "detail-type": detail["type"],
        "source": detail["source"], "account": "123456789012", "time": "2026-11-29T12:00:00Z",
        "region": "eu-west-1", "resources": [], "detail": detail})
}

#[test]
#[ignore = "needs cargo-lambda: .ci/run runs it with --ignored"]
fn the_lambda_consumer_applies_each_delivery_once_under_the_runtime_emulator() {
    let lambda = function(
        Path::new(env!("CARGO_BIN_EXE_lambda-consumer")),
        &[("RUST_LOG", "off")],
    );
    let tx = paracell_domain::testing::sample_transaction();
    let event = |n: u64| paracell_domain::events::TransactionAccepted {
        event_id: uuid::Uuid::from_u128(u128::from(n)),
        source_cell: tx.cell_id.clone(),
        tenant_seq: n,
        balance_version: n,
        transaction: tx.clone(),
        trace: None,
    };
    let first = invoke(&lambda, &eventbridge_delivery(&event(2), "eb-1"));
    assert_eq!(first["seen"], "applied", "{first}");
    // EventBridge may deliver twice (its own id differs; the CloudEvent's source + id does not).
    let again = invoke(&lambda, &eventbridge_delivery(&event(2), "eb-2"));
    assert_eq!(again["seen"], "duplicate", "{again}");
    let late = invoke(&lambda, &eventbridge_delivery(&event(1), "eb-3"));
    assert_eq!(late["seen"], "applied");
    let (_, balance) = late["projection"]["balances"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .unwrap();
    assert_eq!(
        balance["version"], 2,
        "an older event arriving late does not win"
    );
    // A delivery it cannot read fails the invocation (Lambda retries, then dead-letters it).
    let mut foreign = eventbridge_delivery(&event(3), "eb-4");
    foreign["detail-type"] = "Scheduled Event".into();
    let failure = lambda.invoke(&foreign).unwrap_err();
    assert!(failure.contains("Scheduled Event"), "{failure}");
}

#[test]
#[ignore = "needs cargo-lambda: .ci/run runs it with --ignored"]
fn edge_router_as_a_lambda_behind_a_function_url_routes_to_its_cell() {
    use paracell_conformance::Envelope;
    use paracell_conformance::request::ClientRequest;
    // The cell the router forwards to: local-cell over loopback.
    let port = paracell_conformance::wire::free_port().unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_local-cell"));
    command
        .env("PORT", port.to_string())
        .env("PARACELL_CELL_ID", "cell-a")
        .env("PARACELL_TENANTS", "*")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let _cell = paracell_conformance::binaries::Running(command.spawn().unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "local-cell did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let registry = std::env::temp_dir().join(format!("edge-lambda-{}.json", std::process::id()));
    std::fs::write(
        &registry,
        format!(r#"{{"tenants": {{"coop-1": {{"cell": "cell-a", "cloud": "aws", "url": "http://127.0.0.1:{port}", "epoch": 1}}}}}}"#),
    )
    .unwrap();
    let router = function(
        Path::new(env!("CARGO_BIN_EXE_edge-router")),
        &[
            ("PARACELL_REGISTRY", &format!("file:{}", registry.display())),
            ("PARACELL_EDGE_ID", "edge-aws"),
            ("RUST_LOG", "warn"),
        ],
    );
    let create = ClientRequest {
        method: "POST".into(),
        path: "/v1/transactions".into(),
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("X-Tenant-ID".into(), "coop-1".into()),
            ("Idempotency-Key".into(), "k-edge".into()),
        ],
        body: br#"{"account_id":"ACC-1","type":"credit","amount":"10","currency":"EUR"}"#.to_vec(),
        ..ClientRequest::default()
    };
    let answer = invoke(
        &router,
        &paracell_conformance::envelopes::aws::event(Envelope::AwsFunctionUrl, &create),
    );
    assert_eq!(answer["statusCode"], 201, "{answer}");
    assert_eq!(answer["headers"]["x-paracell-cell"], "cell-a", "{answer}");
    let unknown = ClientRequest {
        method: "GET".into(),
        path: "/v1/accounts/ACC-1/balances".into(),
        headers: vec![("X-Tenant-ID".into(), "coop-2".into())],
        ..ClientRequest::default()
    };
    let answer = invoke(
        &router,
        &paracell_conformance::envelopes::aws::event(Envelope::AwsFunctionUrl, &unknown),
    );
    assert_eq!(answer["statusCode"], 404, "{answer}");
    assert!(
        answer["body"]
            .as_str()
            .unwrap()
            .contains("tenant-not-allocated"),
        "{answer}"
    );
}
