//! The placement quorum on the three stand-ins it is deployed on: the witness (Cloud Storage, on
//! fake-gcs-server) against the acceptor contract every acceptor meets, the stand-in's own
//! conditional writes checked directly (it is a stand-in: we prove it refuses what the real service
//! refuses before trusting it), and the quorum registry over DynamoDB (moto), Cosmos DB
//! (`@vercel/cosmosdb-server`) and the witness against the registry contract — also with the
//! witness unreachable. Runs under `scripts/dev-services.sh` (and `.ci/run`); without the endpoints
//! it fails, it never skips. (It lives with the binaries because the HTTP client the witness is
//! reached through is theirs.)
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use paracell_aws::outbound::dynamodb::acceptor::DynamoSlots;
use paracell_aws::outbound::dynamodb::registry::DynamoRegistry;
use paracell_aws::outbound::dynamodb::{DynamoConfig, DynamoStore};
use paracell_azure::outbound::cosmos::acceptor::CosmosSlots;
use paracell_azure::outbound::cosmos::{CosmosConfig, CosmosStore};
use paracell_domain::placement::quorum::{
    Acceptor, AcceptorError, Ballot, CasAcceptor, QuorumRegistry, SlotStore, SlotWrite,
};
use paracell_domain::testing::store_contract::Executor;
use paracell_domain::testing::{acceptor_contract, registry_contract};
use paracell_examples::http_client::HyperClient;
use paracell_gcp::gcs::{GcsAuth, GcsConfig, GcsSlots};
use paracell_testkit::runtime::OnTokio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

fn runtime() -> OnTokio {
    OnTokio::multi_thread(2)
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the store tests under scripts/dev-services.sh")
    })
}

/// A unique name per store, so every check starts empty.
fn unique(kind: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{kind}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn witness_at(endpoint: String) -> GcsSlots {
    let config = GcsConfig::new(env("PARACELL_TEST_GCS_BUCKET"))
        .with_endpoint(endpoint)
        .with_prefix(format!("{}/", unique("quorum")));
    GcsSlots::new(
        config,
        GcsAuth::Anonymous,
        Arc::new(HyperClient::new()),
        "gcp",
    )
}

fn witness() -> GcsSlots {
    witness_at(env("PARACELL_TEST_GCS_ENDPOINT"))
}

fn aws(rt: &OnTokio) -> Arc<dyn Acceptor> {
    let table = unique("acceptor");
    let config =
        DynamoConfig::new(table.clone()).with_endpoint(env("PARACELL_TEST_DYNAMODB_ENDPOINT"));
    let registry = rt.block_on(DynamoRegistry::connect(&config));
    rt.block_on(registry.create_table())
        .expect("the acceptor table is created");
    let store = rt.block_on(DynamoStore::connect(&config));
    Arc::new(CasAcceptor::new(DynamoSlots::new(
        store.client().clone(),
        table,
        "aws",
    )))
}

fn azure(rt: &OnTokio) -> Arc<dyn Acceptor> {
    // Any well-formed (base64) key: the local server does not check signatures.
    let config = CosmosConfig::new(
        env("PARACELL_TEST_COSMOS_ENDPOINT"),
        "bG9jYWwtdGVzdC1rZXktbm90LWEtc2VjcmV0LWxvY2FsLXRlc3Qta2V5LW5vdC1h",
        "paracell-tests",
        unique("acceptor"),
    );
    rt.block_on(CosmosStore::provision(&config))
        .expect("the container is created");
    let store = rt
        .block_on(CosmosStore::connect(&config))
        .expect("the container opens");
    Arc::new(CasAcceptor::new(CosmosSlots::new(store, "azure")))
}

#[test]
fn the_witness_meets_the_acceptor_contract() {
    let rt = runtime();
    acceptor_contract::run_all(&rt, &|| Arc::new(CasAcceptor::new(witness())));
}

/// The stand-in's compare-and-swap, checked at the store port: create-only once, a stale generation
/// refused, the current one taken.
#[test]
fn the_witness_stand_in_refuses_a_stale_generation() {
    let rt = runtime();
    let slots = witness();
    assert_eq!(rt.block_on(slots.read("r")), Ok(None));
    assert_eq!(
        rt.block_on(slots.write("r", "{\"n\":1}", None)),
        Ok(SlotWrite::Written)
    );
    assert_eq!(
        rt.block_on(slots.write("r", "{\"n\":1}", None)),
        Ok(SlotWrite::Conflict),
        "a second create-only write"
    );
    let (document, first) = rt.block_on(slots.read("r")).unwrap().unwrap();
    assert_eq!(document, "{\"n\":1}");
    assert_eq!(
        rt.block_on(slots.write("r", "{\"n\":2}", Some(&first))),
        Ok(SlotWrite::Written)
    );
    assert_eq!(
        rt.block_on(slots.write("r", "{\"n\":3}", Some(&first))),
        Ok(SlotWrite::Conflict),
        "a stale generation"
    );
    let (document, second) = rt.block_on(slots.read("r")).unwrap().unwrap();
    assert_eq!(document, "{\"n\":2}");
    assert_ne!(first, second);
}

/// An object under a slot's name that is not a slot is reported, never read as an empty slot.
#[test]
fn a_foreign_object_in_the_witness_is_malformed() {
    let rt = runtime();
    let slots = witness();
    rt.block_on(slots.write("r", "not a slot", None)).unwrap();
    let acceptor = CasAcceptor::new(slots);
    let prepared = rt.block_on(acceptor.prepare(
        "r",
        Ballot {
            counter: 1,
            proposer: 1,
        },
    ));
    assert!(
        matches!(prepared, Err(AcceptorError::Malformed(_))),
        "{prepared:?}"
    );
}

#[test]
fn the_quorum_over_dynamodb_cosmos_and_the_witness_meets_the_registry_contract() {
    let rt = runtime();
    registry_contract::run_all(&rt, &|| {
        let acceptors = vec![
            aws(&rt),
            azure(&rt),
            Arc::new(CasAcceptor::new(witness())) as Arc<dyn Acceptor>,
        ];
        Arc::new(QuorumRegistry::new(acceptors, 1).unwrap())
    });
}

/// Any two acceptors decide: with the witness unreachable (nothing listens on its port), the
/// DynamoDB and Cosmos DB acceptors still meet the whole contract.
#[test]
fn the_quorum_meets_the_registry_contract_with_the_witness_unreachable() {
    let rt = runtime();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    registry_contract::run_all(&rt, &|| {
        let acceptors = vec![
            aws(&rt),
            azure(&rt),
            Arc::new(CasAcceptor::new(witness_at(dead.clone()))) as Arc<dyn Acceptor>,
        ];
        Arc::new(QuorumRegistry::new(acceptors, 1).unwrap())
    });
}
