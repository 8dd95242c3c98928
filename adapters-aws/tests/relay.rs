//! The relay behind Lambda: DynamoDB Streams batches of the cell table and replay-queue batches,
//! through the same `LambdaCell::handle_event` that runs in Lambda, to a standby cell in process.
#![allow(clippy::unwrap_used, missing_docs)]

use paracell_aws::LambdaCell;
use paracell_domain::http::ApiRequest;
use paracell_domain::memory::{self, MemoryDeadLetters, MemoryStore};
use paracell_domain::ports::TransactionStore;
use paracell_domain::replication::SealedEntry;
use paracell_domain::replication::relay::{DeadLetters, Relay};
use paracell_domain::replication::signature::PeerSecret;
use paracell_domain::testing::DeadLettersDown;
use paracell_domain::testing::InProcessHttp;
use paracell_domain::{Cell, CellConfig, CellId, TenantScope};
use serde_json::{Value, json};
use std::sync::Arc;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn cell(id: &str, peer: &str) -> (Cell, Arc<MemoryStore>) {
    let mut config = CellConfig::new(id, TenantScope::All).unwrap();
    config.replication.secrets =
        vec![PeerSecret::parse(CellId::parse(peer).unwrap(), SECRET).unwrap()];
    memory::deterministic(config)
}

fn relay(primary: &Cell, standby: Option<&Cell>, dead: Arc<dyn DeadLetters>) -> Relay {
    let mut http = InProcessHttp::default();
    if let Some(standby) = standby {
        http = http.with_cell("http://cell-b", standby.clone());
    }
    let secret = PeerSecret::parse(CellId::parse("cell-b").unwrap(), SECRET).unwrap();
    paracell_domain::testing::test_relay(primary, http, "http://cell-b", secret, dead, 2)
}

fn create(cell: &Cell, key: &str, amount: &str) {
    let request = ApiRequest::new("POST", "/v1/transactions")
        .with_header("content-type", "application/json")
        .with_header("x-tenant-id", "coop-1")
        .with_header("idempotency-key", key)
        .with_body(format!(
            r#"{{"account_id":"ACC-1","type":"credit","amount":"{amount}","currency":"EUR"}}"#
        ));
    assert_eq!(tokio_block(cell.handle(request)).status, 201);
}

fn tokio_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// The stream record DynamoDB writes when an entry item is inserted (NEW_IMAGE view).
fn insert_record(sequence: u64, entry: &SealedEntry, pending: bool) -> Value {
    let mut image = json!({
        "pk": {"S": format!("T#{}", entry.tenant())},
        "sk": {"S": format!("SEQ#{:020}", entry.seq())},
        "doc": {"S": entry.document()},
        "digest": {"S": entry.digest().to_string()},
    });
    if pending {
        image["outbox"] = json!({"S": "pending"});
    }
    json!({"eventID": format!("e{sequence}"), "eventName": "INSERT", "eventVersion": "1.1",
        "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
        "dynamodb": {"ApproximateCreationDateTime": 1_767_225_600, "Keys": {"pk": image["pk"].clone(), "sk": image["sk"].clone()},
            "NewImage": image, "SequenceNumber": sequence.to_string(), "SizeBytes": 100, "StreamViewType": "NEW_IMAGE"},
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/cell-a/stream/x"})
}

fn pending(store: &MemoryStore) -> Vec<SealedEntry> {
    tokio_block(store.pending_entries(None, 100))
        .unwrap()
        .entries
}

fn invoke(lambda: &LambdaCell, event: &Value) -> Value {
    let bytes = tokio_block(lambda.invoke(&serde_json::to_vec(event).unwrap())).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn a_stream_batch_reaches_the_standby_and_marks_the_entries_relayed() {
    let (primary, primary_store) = cell("cell-a", "cell-b");
    let (standby, standby_store) = cell("cell-b", "cell-a");
    for (n, amount) in [(1, "10"), (2, "20"), (3, "30")] {
        create(&primary, &format!("k{n}"), amount);
    }
    let entries = pending(&primary_store);
    let mut records: Vec<Value> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| insert_record(100 + i as u64, e, true))
        .collect();
    // What the stream also carries and the relay must skip: the MODIFY of a mark, a received entry.
    let mut modify = insert_record(200, &entries[0], false);
    modify["eventName"] = json!("MODIFY");
    records.push(modify);
    records.push(insert_record(201, &entries[0], false));
    let lambda = LambdaCell::new(primary.clone()).with_relay(relay(
        &primary,
        Some(&standby),
        Arc::new(MemoryDeadLetters::new()),
    ));
    let answer = invoke(&lambda, &json!({"Records": records}));
    assert_eq!(answer, json!({"batchItemFailures": []}));
    assert!(pending(&primary_store).is_empty(), "marked relayed");
    let head = |store: &MemoryStore| {
        tokio_block(store.head(&paracell_domain::TenantId::parse("coop-1").unwrap()))
            .unwrap()
            .unwrap()
            .position
    };
    assert_eq!(
        head(&standby_store),
        head(&primary_store),
        "the standby is complete"
    );
    // The same batch again (Lambda retries successes too): duplicates, still success.
    let answer = invoke(
        &lambda,
        &json!({"Records": entries.iter().enumerate().map(|(i, e)| insert_record(100 + i as u64, e, true)).collect::<Vec<_>>()}),
    );
    assert_eq!(answer, json!({"batchItemFailures": []}));
}

#[test]
fn an_undeliverable_entry_is_dead_lettered_and_a_replay_delivers_it() {
    let (primary, primary_store) = cell("cell-a", "cell-b");
    create(&primary, "k1", "10");
    create(&primary, "k2", "20");
    let entries = pending(&primary_store);
    let batch = json!({"Records": entries.iter().enumerate().map(|(i, e)| insert_record(500 + i as u64, e, true)).collect::<Vec<_>>()});

    // The peer is unreachable and the dead-letter queue too: Lambda must retry from the first record.
    let lambda = LambdaCell::new(primary.clone()).with_relay(relay(
        &primary,
        None,
        Arc::new(DeadLettersDown),
    ));
    assert_eq!(
        invoke(&lambda, &batch),
        json!({"batchItemFailures": [{"itemIdentifier": "500"}]})
    );
    assert_eq!(
        pending(&primary_store).len(),
        2,
        "nothing marked: everything will be retried"
    );

    // The peer is unreachable, the queue works: both dead-lettered with the full entry, batch done.
    let dead = Arc::new(MemoryDeadLetters::new());
    let lambda = LambdaCell::new(primary.clone()).with_relay(relay(&primary, None, dead.clone()));
    assert_eq!(invoke(&lambda, &batch), json!({"batchItemFailures": []}));
    let letters = tokio_block(dead.list(10)).unwrap();
    assert_eq!(letters.len(), 2);
    assert!(pending(&primary_store).is_empty());

    // An operator moves them to the replay queue once the standby is back: delivered in order.
    let (standby, standby_store) = cell("cell-b", "cell-a");
    let lambda = LambdaCell::new(primary.clone()).with_relay(relay(&primary, Some(&standby), dead));
    let messages: Vec<Value> = letters
        .iter()
        .map(|(id, l)| json!({"messageId": id, "body": l.render(), "eventSource": "aws:sqs"}))
        .collect();
    assert_eq!(
        invoke(&lambda, &json!({"Records": messages})),
        json!({"batchItemFailures": []})
    );
    let t = paracell_domain::TenantId::parse("coop-1").unwrap();
    assert_eq!(
        tokio_block(standby_store.head(&t))
            .unwrap()
            .unwrap()
            .position
            .seq,
        2
    );
    let junk =
        json!({"Records": [{"messageId": "m9", "body": "not a letter", "eventSource": "aws:sqs"}]});
    assert_eq!(
        invoke(&lambda, &junk),
        json!({"batchItemFailures": [{"itemIdentifier": "m9"}]})
    );
}

#[test]
fn the_batch_answer_names_exactly_the_record_that_failed() {
    // Entries 1 and 2 of one tenant; only 2 fails (refused, and the dead-letter queue is down): the
    // partial-batch answer names record 2, so Lambda retries from there and record 1 is not resent.
    let (primary, primary_store) = cell("cell-a", "cell-b");
    create(&primary, "k1", "10");
    create(&primary, "k2", "20");
    let entries = pending(&primary_store);
    assert_eq!(
        entries.iter().map(SealedEntry::seq).collect::<Vec<_>>(),
        [1, 2]
    );
    let relay = Relay::new(
        vec![Arc::new(paracell_domain::testing::RefusesSeqs(vec![2]))],
        Arc::new(DeadLettersDown),
        Arc::new(memory::NoSleep),
        Arc::new(paracell_domain::ports::SystemClock),
    );
    let lambda = LambdaCell::new(primary.clone()).with_relay(relay);
    let records: Vec<Value> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| insert_record(300 + i as u64, e, true))
        .collect();
    let answer = invoke(&lambda, &json!({"Records": records}));
    assert_eq!(
        answer,
        json!({"batchItemFailures": [{"itemIdentifier": "301"}]})
    );
}
