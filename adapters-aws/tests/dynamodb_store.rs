//! The store contract against a real DynamoDB API: moto's server on loopback, started by
//! `scripts/dev-services.sh` (and `.ci/run`), which exports `PARACELL_TEST_DYNAMODB_ENDPOINT` and
//! test credentials. Built only with `--features dynamodb`; without the endpoint it fails, it never
//! skips.

use paracell_aws::outbound::dynamodb::{DynamoConfig, DynamoStore};
use paracell_domain::ports::{StoreError, TransactionStore};
use paracell_domain::testing::round_trips::{self, counts};
use paracell_domain::testing::store_contract::{self, Executor};
use paracell_testkit::runtime::OnTokio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

fn runtime() -> OnTokio {
    OnTokio::multi_thread(2)
}

fn endpoint() -> String {
    std::env::var("PARACELL_TEST_DYNAMODB_ENDPOINT").expect(
        "PARACELL_TEST_DYNAMODB_ENDPOINT is not set: run the store tests under scripts/dev-services.sh",
    )
}

/// A fresh table per store, so every check starts empty.
fn fresh_store(rt: &OnTokio) -> Arc<dyn TransactionStore> {
    Arc::new(fresh_table(rt))
}

fn fresh_table(rt: &OnTokio) -> DynamoStore {
    static TABLES: AtomicUsize = AtomicUsize::new(0);
    let table = format!(
        "contract-{}-{}",
        std::process::id(),
        TABLES.fetch_add(1, Ordering::Relaxed)
    );
    let store = rt.block_on(DynamoStore::connect(
        &DynamoConfig::new(table).with_endpoint(endpoint()),
    ));
    rt.block_on(store.create_table())
        .expect("the contract table is created");
    store
}

/// The fewest requests the contract allows: a create reads once (head, key, balance in one
/// `TransactGetItems`) and writes once; a replay only reads; a GET is one `GetItem`. Counted by the
/// stand-in, per table.
#[test]
fn each_answer_takes_the_fewest_dynamodb_requests() {
    let rt = runtime();
    let store = fresh_table(&rt);
    let url = format!("{}/_paracell/requests?table={}", endpoint(), store.table());
    let measured = round_trips::per_operation(&rt, Arc::new(store), &|| {
        round_trips::read_counts(&url).unwrap_or_else(|e| panic!("the stand-in's counter: {e}"))
    });
    let read_and_write = counts([("TransactGetItems", 1), ("TransactWriteItems", 1)]);
    assert_eq!(measured.create, read_and_write, "create");
    assert_eq!(measured.replay, counts([("TransactGetItems", 1)]), "replay");
    assert_eq!(measured.get, counts([("GetItem", 1)]), "GET");
    assert_eq!(measured.refused_debit, read_and_write, "refused debit");
}

#[test]
fn dynamodb_meets_the_store_contract() {
    let rt = runtime();
    store_contract::run_all(&rt, &|| fresh_store(&rt));
}

#[test]
fn an_unreachable_dynamodb_is_unavailable_not_a_failure() {
    let rt = runtime();
    // Nothing listens on port 9 of loopback: every attempt is refused, retried, then given up.
    let config = DynamoConfig::new("cell").with_endpoint("http://127.0.0.1:9");
    let store = rt.block_on(DynamoStore::connect(&config));
    store_contract::unreachable_store_is_unavailable(&rt, Arc::new(store));
}

#[test]
fn creating_the_table_twice_is_harmless() {
    let rt = runtime();
    let config =
        DynamoConfig::new(format!("twice-{}", std::process::id())).with_endpoint(endpoint());
    let store = rt.block_on(DynamoStore::connect(&config));
    rt.block_on(store.create_table()).expect("created");
    rt.block_on(store.create_table())
        .expect("already there is fine");
}

#[test]
fn a_corrupted_item_is_a_store_failure_not_a_wrong_answer() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use paracell_domain::{AccountId, Currency, TenantId};
    let rt = runtime();
    let table = format!("corrupt-{}", std::process::id());
    let store = rt.block_on(DynamoStore::connect(
        &DynamoConfig::new(&table).with_endpoint(endpoint()),
    ));
    rt.block_on(store.create_table()).expect("created");
    // A balance whose amount is not a decimal, written behind the store's back.
    let sdk = rt.block_on(async {
        let conf = aws_config::from_env().endpoint_url(endpoint()).load().await;
        aws_sdk_dynamodb::Client::new(&conf)
    });
    let text = |v: &str| AttributeValue::S(v.into());
    rt.block_on(
        sdk.put_item()
            .table_name(&table)
            .item("pk", text("T#coop-1"))
            .item("sk", text("BAL#ACC-1#EUR"))
            .item("currency", text("EUR"))
            .item("available", text("12.5O"))
            .item("version", AttributeValue::N("1".into()))
            .send(),
    )
    .expect("written");
    let read = rt.block_on(store.balance(
        &TenantId::parse("coop-1").unwrap(),
        &AccountId::parse("ACC-1").unwrap(),
        Currency::parse("EUR").unwrap(),
    ));
    assert!(
        matches!(&read, Err(StoreError::Failed(detail)) if detail.contains("available")),
        "{read:?}"
    );
}

#[test]
fn sqs_dead_letters_meet_their_contract() {
    use paracell_aws::outbound::sqs::{SqsConfig, SqsDeadLetters};
    let rt = runtime();
    let mut config = SqsConfig {
        queue_url: String::new(),
        endpoint: Some(endpoint()),
    };
    config.queue_url = rt
        .block_on(SqsDeadLetters::create_queue(
            &config,
            &format!("dlq-contract-{}", std::process::id()),
        ))
        .expect("the queue is created");
    let letters = rt.block_on(SqsDeadLetters::connect(&config));
    store_contract::dead_letters_keep_full_entries(&rt, &letters);
}

/// A fresh registry table per check.
fn fresh_registry(
    rt: &OnTokio,
) -> Arc<dyn paracell_domain::placement::registry::PlacementRegistry> {
    use paracell_aws::outbound::dynamodb::registry::DynamoRegistry;
    static TABLES: AtomicUsize = AtomicUsize::new(0);
    let table = format!(
        "registry-{}-{}",
        std::process::id(),
        TABLES.fetch_add(1, Ordering::Relaxed)
    );
    let registry = rt.block_on(DynamoRegistry::connect(
        &DynamoConfig::new(table).with_endpoint(endpoint()),
    ));
    rt.block_on(registry.create_table())
        .expect("the registry table is created");
    Arc::new(registry)
}

#[test]
fn the_dynamodb_registry_meets_the_registry_contract() {
    let rt = runtime();
    paracell_domain::testing::registry_contract::run_all(&rt, &|| fresh_registry(&rt));
}

/// The AWS member of the placement quorum on the same stand-in: the acceptor contract every
/// acceptor meets (memory, Cosmos DB and the witness run the same checks).
#[test]
fn dynamodb_meets_the_acceptor_contract() {
    use paracell_aws::outbound::dynamodb::acceptor::DynamoSlots;
    use paracell_aws::outbound::dynamodb::registry::DynamoRegistry;
    use paracell_domain::placement::quorum::CasAcceptor;
    use paracell_domain::testing::acceptor_contract;
    let rt = runtime();
    acceptor_contract::run_all(&rt, &|| {
        static TABLES: AtomicUsize = AtomicUsize::new(0);
        let table = format!(
            "acceptor-{}-{}",
            std::process::id(),
            TABLES.fetch_add(1, Ordering::Relaxed)
        );
        let config = DynamoConfig::new(table.clone()).with_endpoint(endpoint());
        let registry = rt.block_on(DynamoRegistry::connect(&config));
        rt.block_on(registry.create_table())
            .expect("the acceptor table is created");
        let store = rt.block_on(DynamoStore::connect(&config));
        Arc::new(CasAcceptor::new(DynamoSlots::new(
            store.client().clone(),
            table,
            "aws",
        )))
    });
}
