//! The EventBridge publisher against moto (run under `scripts/dev-services.sh`, which exports
//! `PARACELL_TEST_DYNAMODB_ENDPOINT`; moto serves EventBridge and SQS on the same port): a custom
//! bus, a rule matching the CloudEvent's `source` and `detail-type`, an SQS queue as its target. The
//! relay publishes a cell's events; the test reads back exactly what the target received and
//! recovers each CloudEvent byte for byte with the domain's parser.
#![allow(clippy::unwrap_used, missing_docs)]

use paracell_aws::outbound::eventbridge::{EventBridgeBus, SdkEventBridge};
use paracell_aws::outbound::sqs::{SqsConfig, SqsDeadLetters};
use paracell_domain::events::TransactionAccepted;
use paracell_domain::http::ApiRequest;
use paracell_domain::memory::{self, MemoryDeadLetters, NoSleep};
use paracell_domain::ports::TransactionStore;
use paracell_domain::replication::relay::Relay;
use paracell_domain::{CellConfig, TenantId, TenantScope};
use std::sync::Arc;

fn endpoint() -> String {
    std::env::var("PARACELL_TEST_DYNAMODB_ENDPOINT").expect(
        "PARACELL_TEST_DYNAMODB_ENDPOINT is not set: run the AWS stand-in tests under scripts/dev-services.sh",
    )
}

#[tokio::test(flavor = "current_thread")]
async fn a_rule_on_the_bus_delivers_each_cloudevent_to_its_sqs_target_recoverable_byte_for_byte() {
    let endpoint = endpoint();
    let suffix = std::process::id();
    let bus_name = format!("cells-{suffix}");
    let eventbridge = SdkEventBridge::connect(Some(&endpoint)).await;
    let mut sqs_config = SqsConfig {
        queue_url: String::new(),
        endpoint: Some(endpoint.clone()),
    };
    sqs_config.queue_url = SqsDeadLetters::create_queue(&sqs_config, &format!("events-{suffix}"))
        .await
        .unwrap();
    let sqs = SqsDeadLetters::connect(&sqs_config).await;
    let arn = sqs.queue_arn().await.unwrap();
    eventbridge
        .create_bus_with_queue_target(&bus_name, "accepted", &arn)
        .await
        .unwrap();

    // A cell books 12 transactions (two PutEvents calls) and refuses one debit (no event).
    let (cell, store) = memory::deterministic(CellConfig::new("cell-a", TenantScope::All).unwrap());
    for (i, (kind, amount)) in (0..12)
        .map(|_| ("credit", "5.00"))
        .chain([("debit", "1000")])
        .enumerate()
    {
        let body = format!(
            r#"{{"account_id":"ACC-1","type":"{kind}","amount":"{amount}","currency":"EUR"}}"#
        );
        let request = ApiRequest::new("POST", "/v1/transactions")
            .with_header("Content-Type", "application/json")
            .with_header("X-Tenant-ID", "coop-1")
            .with_header("Idempotency-Key", format!("k-{i}"))
            .with_body(body.into_bytes());
        cell.handle(request).await;
    }
    let tenant = TenantId::parse("coop-1").unwrap();
    let entries = store.entries_after(&tenant, 0, 100).await.unwrap();
    assert_eq!(entries.len(), 13);
    let relay = Relay::new(
        vec![Arc::new(EventBridgeBus::new(
            &bus_name,
            Arc::new(eventbridge.clone()),
        ))],
        Arc::new(MemoryDeadLetters::new()),
        Arc::new(NoSleep),
        Arc::new(paracell_domain::ports::SystemClock),
    );
    let report = relay.relay(&entries).await;
    assert_eq!((report.delivered, report.dead_lettered), (12, 0));

    // Read back what the target received.
    let mut received: Vec<serde_json::Value> = Vec::new();
    for _ in 0..20 {
        let out = sqs
            .client()
            .receive_message()
            .queue_url(&sqs_config.queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        for message in out.messages() {
            received.push(serde_json::from_str(message.body().unwrap()).unwrap());
            sqs.client()
                .delete_message()
                .queue_url(&sqs_config.queue_url)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
        if received.len() >= 12 {
            break;
        }
    }
    assert_eq!(received.len(), 12, "one message per accepted transaction");
    let mut documents: Vec<String> = received
        .iter()
        .map(|envelope| {
            assert_eq!(envelope["source"], "/cells/cell-a");
            assert_eq!(
                envelope["detail-type"],
                "dev.paracell.transaction.accepted.v1"
            );
            TransactionAccepted::parse(&envelope["detail"].to_string())
                .unwrap()
                .document()
        })
        .collect();
    let mut expected: Vec<String> = entries
        .iter()
        .filter_map(|e| e.event().map(|e| e.into_owned()))
        .collect();
    documents.sort();
    expected.sort();
    assert_eq!(documents, expected, "every CloudEvent, byte for byte, once");
}
