//! The consumer examples as deployed: `azure-consumer` as the Functions host invokes an Event Grid
//! trigger (payload mode, one event or a `cardinality: many` string), and `lambda-consumer` under
//! cargo-lambda's Runtime API emulator with EventBridge deliveries. Each reads the CloudEvent back
//! with the domain's parser, applies it once per `source` + `id`, and fails what it cannot read.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use paracell_domain::events::TransactionAccepted;
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use support::*;

/// The `n`th distinct event (its own id, balance version `n`).
fn event(n: u64) -> TransactionAccepted {
    let tx = paracell_domain::testing::sample_transaction();
    TransactionAccepted {
        event_id: uuid::Uuid::from_u128(u128::from(n)),
        source_cell: tx.cell_id.clone(),
        tenant_seq: n,
        balance_version: n,
        transaction: tx,
        trace: None,
    }
}

fn as_json(event: &TransactionAccepted) -> Value {
    serde_json::from_str(&event.document()).unwrap()
}

fn invoke_function(port: u16, data: &Value) -> (u16, Value) {
    let body = serde_json::to_vec(&json!({"Data": data, "Metadata": {}})).unwrap();
    let reply = send(
        port,
        "POST",
        "/TransactionAccepted",
        &[("Content-Type", "application/json")],
        &body,
        true,
    );
    (reply.status, json(&reply))
}

#[test]
fn the_azure_consumer_applies_each_event_once_and_fails_what_it_cannot_read() {
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_azure-consumer"));
    command
        .env_clear()
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _consumer = start_and_wait_ready(command, port);

    let (status, reply) = invoke_function(port, &json!({"event": as_json(&event(1))}));
    assert_eq!(status, 200, "{reply}");
    let lines = reply["ReturnValue"]["lines"].as_array().unwrap();
    assert!(
        lines[0].as_str().unwrap().starts_with("applied "),
        "{lines:?}"
    );
    assert_eq!(reply["Logs"], reply["ReturnValue"]["lines"]);

    // The same event again (a redelivery), then a batch as a `cardinality: many` string.
    let (_, reply) = invoke_function(port, &json!({"event": as_json(&event(1))}));
    assert!(
        reply["ReturnValue"]["lines"][0]
            .as_str()
            .unwrap()
            .starts_with("duplicate ")
    );
    let many = json!([as_json(&event(3)), as_json(&event(2)), as_json(&event(1))]).to_string();
    let (status, reply) = invoke_function(port, &json!({"events": many}));
    assert_eq!(status, 200);
    let seen: Vec<&str> = reply["ReturnValue"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().split(' ').next().unwrap())
        .collect();
    assert_eq!(seen, ["applied", "applied", "duplicate"]);
    let projection = &reply["ReturnValue"]["projection"];
    assert_eq!(
        (
            projection["events"].as_u64(),
            projection["duplicates"].as_u64()
        ),
        (Some(3), Some(2))
    );
    let (_, balance) = projection["balances"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .unwrap();
    assert_eq!(
        balance["version"], 3,
        "the newest version wins, whatever the order"
    );

    // Not ours, or not readable: a failed invocation (Event Grid retries, then dead-letters).
    let mut tampered = as_json(&event(4));
    tampered["tenantseq"] = json!(0);
    for data in [
        json!({"event": tampered}),
        json!({"event": {"specversion": "1.0", "id": "1", "source": "/x", "type": "Microsoft.Storage.BlobCreated"}}),
        json!({}),
    ] {
        let (status, reply) = invoke_function(port, &data);
        assert_eq!(status, 500, "{data}: {reply}");
        assert!(!reply["Logs"][0].as_str().unwrap().is_empty());
    }
    // The function's name is checked too.
    let reply = send(port, "POST", "/Other", &[], br#"{"Data":{}}"#, false);
    assert_eq!(reply.status, 500);
}
