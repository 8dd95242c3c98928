//! The store contract against a real Cosmos DB API: `@vercel/cosmosdb-server` behind the
//! repository's compatibility layer (`services/cosmosdb/`), on loopback, started by
//! `scripts/dev-services.sh` (and `.ci/run`), which exports `PARACELL_TEST_COSMOS_ENDPOINT`. Built
//! only with `--features cosmos`; without the endpoint it fails, it never skips.

use paracell_azure::outbound::cosmos::{CosmosConfig, CosmosStore};
use paracell_domain::ports::{StoreError, TransactionStore};
use paracell_domain::testing::round_trips::{self, counts};
use paracell_domain::testing::store_contract::{self, Executor};
use paracell_domain::{AccountId, Currency, TenantId};
use paracell_testkit::runtime::OnTokio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

fn runtime() -> OnTokio {
    OnTokio::multi_thread(2)
}

const LOCAL_KEY: &str = "bG9jYWwtdGVzdC1rZXktbm90LWEtc2VjcmV0LWxvY2FsLXRlc3Qta2V5LW5vdC1h";

fn config(container: String) -> CosmosConfig {
    let endpoint = std::env::var("PARACELL_TEST_COSMOS_ENDPOINT").expect(
        "PARACELL_TEST_COSMOS_ENDPOINT is not set: run the store tests under scripts/dev-services.sh",
    );
    // Any well-formed (base64) key: the local server does not check signatures.
    CosmosConfig::new(endpoint, LOCAL_KEY, "paracell-tests", container)
}

/// A fresh container per store, so every check starts empty.
fn fresh(rt: &OnTokio, name: &str) -> (CosmosConfig, CosmosStore) {
    static CONTAINERS: AtomicUsize = AtomicUsize::new(0);
    let config = config(format!(
        "{name}-{}-{}",
        std::process::id(),
        CONTAINERS.fetch_add(1, Ordering::Relaxed)
    ));
    rt.block_on(CosmosStore::provision(&config))
        .expect("the container is created");
    let store = rt
        .block_on(CosmosStore::connect(&config))
        .expect("the container opens");
    (config, store)
}

#[test]
fn cosmos_meets_the_store_contract() {
    let rt = runtime();
    store_contract::run_all(&rt, &|| {
        Arc::new(fresh(&rt, "contract").1) as Arc<dyn TransactionStore>
    });
}

/// The fewest requests the contract allows: a create reads once (head, key, balance in one
/// single-partition query, with their etags) and writes once (one transactional batch, guarded by
/// those etags); a replay only reads; a GET is one point read. Counted by the stand-in, per
/// container.
#[test]
fn each_answer_takes_the_fewest_cosmos_requests() {
    let rt = runtime();
    let (config, store) = fresh(&rt, "round-trips");
    let url = format!(
        "{}/_paracell/requests?container={}",
        config.endpoint, config.container
    );
    let measured = round_trips::per_operation(&rt, Arc::new(store), &|| {
        round_trips::read_counts(&url).unwrap_or_else(|e| panic!("the stand-in's counter: {e}"))
    });
    let read_and_write = counts([("query", 1), ("batch", 1)]);
    assert_eq!(measured.create, read_and_write, "create");
    assert_eq!(measured.replay, counts([("query", 1)]), "replay");
    assert_eq!(measured.get, counts([("read", 1)]), "GET");
    assert_eq!(measured.refused_debit, read_and_write, "refused debit");
}

/// A server of our own (the shared one must stay up), stopped once the store is connected.
#[test]
fn an_unreachable_cosmos_is_unavailable_not_a_failure() {
    use std::io::BufRead;
    let rt = runtime();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../services/cosmosdb/server.js"
    );
    let mut server = std::process::Command::new("node")
        .args([script, "--host", "127.0.0.1", "--port", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node starts the local Cosmos DB server");
    let mut ready = String::new();
    std::io::BufReader::new(server.stdout.take().expect("stdout"))
        .read_line(&mut ready)
        .expect("the server says where it listens");
    let endpoint = ready
        .split_whitespace()
        .last()
        .expect("listening on <url>")
        .to_owned();
    let mut config = config("unreachable".into());
    config.endpoint = endpoint;
    rt.block_on(CosmosStore::provision(&config))
        .expect("provisioned");
    let store = rt.block_on(CosmosStore::connect(&config)).expect("opens");
    server.kill().expect("the server stops");
    server.wait().expect("and is gone");
    store_contract::unreachable_store_is_unavailable(&rt, Arc::new(store));
}

#[test]
fn provisioning_twice_is_harmless() {
    let rt = runtime();
    let (config, _) = fresh(&rt, "twice");
    rt.block_on(CosmosStore::provision(&config))
        .expect("already there is fine");
}

#[test]
fn missing_configuration_is_a_clear_error() {
    let err =
        CosmosConfig::from_lookup(|name| (name != "PARACELL_COSMOS_KEY").then(|| "x".to_string()))
            .unwrap_err();
    assert!(err.contains("PARACELL_COSMOS_KEY"), "{err}");
    let debug = format!("{:?}", CosmosConfig::new("e", "secret-key", "d", "c"));
    assert!(
        !debug.contains("secret-key"),
        "the key is never printed: {debug}"
    );
    let _ = (
        StoreError::Failed(String::new()),
        TenantId::parse("coop-1"),
        AccountId::parse("a"),
        Currency::parse("EUR"),
    );
}

#[test]
fn cosmos_dead_letters_meet_their_contract() {
    use paracell_azure::outbound::cosmos::CosmosDeadLetters;
    let rt = runtime();
    let (_, store) = fresh(&rt, "dead-letters");
    store_contract::dead_letters_keep_full_entries(&rt, &CosmosDeadLetters::new(store));
}

#[test]
fn the_cosmos_placement_replica_keeps_the_newest_record() {
    use paracell_azure::outbound::cosmos::CosmosPlacementReplica;
    let rt = runtime();
    let (_, store) = fresh(&rt, "replica");
    paracell_domain::testing::registry_contract::replica_keeps_the_newest_record(
        &rt,
        &CosmosPlacementReplica::new(store),
    );
}

/// The Azure member of the placement quorum on the same stand-in: the acceptor contract every
/// acceptor meets (memory, DynamoDB and the witness run the same checks).
#[test]
fn cosmos_meets_the_acceptor_contract() {
    use paracell_azure::outbound::cosmos::acceptor::CosmosSlots;
    use paracell_domain::placement::quorum::CasAcceptor;
    let rt = runtime();
    paracell_domain::testing::acceptor_contract::run_all(&rt, &|| {
        let (_, store) = fresh(&rt, "acceptor");
        Arc::new(CasAcceptor::new(CosmosSlots::new(store, "azure")))
    });
}
