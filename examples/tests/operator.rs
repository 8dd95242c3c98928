//! `paracell-admin status` and `migrate` as an operator runs them: a tenant written on a cell whose
//! store is DynamoDB (moto) and replicated to a cell on Cosmos DB (the stand-in), moved there and
//! back through the binary, with the registry on DynamoDB. Run under `scripts/dev-services.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use paracell_aws::outbound::dynamodb::{DynamoConfig, DynamoStore};
use paracell_azure::outbound::cosmos::{CosmosConfig, CosmosStore};
use paracell_domain::http::ApiRequest;
use paracell_domain::ports::{SystemClock, TransactionStore, UuidV7};
use paracell_domain::testing::replicate;
use paracell_domain::{Cell, CellConfig, CellPorts, TenantScope};
use serde_json::Value;
use std::sync::Arc;

mod support;

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run under scripts/dev-services.sh"))
}

/// A cell under primary leases of two seconds, confirmed from the registry.
fn cell(
    id: &str,
    store: Arc<dyn TransactionStore>,
    registry: Arc<dyn paracell_domain::placement::registry::PlacementRegistry>,
) -> Cell {
    use paracell_domain::placement::lease::{Ownership, PlacementSource};
    Cell::new(
        CellConfig::new(id, TenantScope::All).unwrap(),
        CellPorts {
            store,
            clock: Arc::new(SystemClock),
            ids: Arc::new(UuidV7),
        },
    )
    .with_ownership(Ownership {
        source: PlacementSource::Registry(registry),
        ttl: std::time::Duration::from_secs(2),
    })
}

async fn create(cell: &Cell, key: &str) -> (u16, Value) {
    let response = cell
        .handle(
            ApiRequest::new("POST", "/v1/transactions")
                .with_header("content-type", "application/json")
                .with_header("x-tenant-id", "coop-1")
                .with_header("idempotency-key", key)
                .with_body(
                    br#"{"account_id":"ACC-1","type":"credit","amount":"10.00","currency":"EUR"}"#
                        .to_vec(),
                ),
        )
        .await;
    (
        response.status,
        serde_json::from_slice(&response.body).unwrap_or_default(),
    )
}

fn admin(args: &[&str], cells: &str, registry: &str) -> (bool, Value) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_paracell-admin"))
        .args(args)
        .env("PARACELL_ADMIN_CELLS", cells)
        .env("PARACELL_REGISTRY", registry)
        .env("PARACELL_STORE_PROVISION", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_moves_from_dynamodb_to_cosmos_and_back_through_paracell_admin() {
    let run = std::process::id();
    let (table, container, registry_table) = (
        format!("op-aws-{run}"),
        format!("op-azure-{run}"),
        format!("op-registry-{run}"),
    );
    let dynamo = DynamoStore::connect(
        &DynamoConfig::new(&table).with_endpoint(env("PARACELL_TEST_DYNAMODB_ENDPOINT")),
    )
    .await;
    dynamo.create_table().await.unwrap();
    let cosmos_config = CosmosConfig::from_lookup(|n| {
        if n == "PARACELL_COSMOS_CONTAINER" {
            Some(container.clone())
        } else {
            std::env::var(n).ok()
        }
    })
    .unwrap();
    CosmosStore::provision(&cosmos_config).await.unwrap();
    let cosmos = CosmosStore::connect(&cosmos_config).await.unwrap();
    let registry_store = paracell_aws::outbound::dynamodb::registry::DynamoRegistry::connect(
        &DynamoConfig::new(&registry_table).with_endpoint(env("PARACELL_TEST_DYNAMODB_ENDPOINT")),
    )
    .await;
    registry_store.create_table().await.unwrap();
    let registry_store: Arc<dyn paracell_domain::placement::registry::PlacementRegistry> =
        Arc::new(registry_store);
    let aws = cell("cell-aws", Arc::new(dynamo), registry_store.clone());
    let azure = cell("cell-azure", Arc::new(cosmos), registry_store.clone());
    let cells = format!("cell-aws=dynamodb:{table},cell-azure=cosmos:{container}");
    let registry = format!("dynamodb:{registry_table}");

    for i in 0..3 {
        assert_eq!(create(&aws, &format!("k-{i}")).await.0, 201);
    }
    let (ok, status) = admin(&["status", "coop-1", "--json"], &cells, &registry);
    assert!(ok);
    assert_eq!(status["cells"][1]["lag_entries"], 3, "{status}");
    replicate(&aws, &azure).await.unwrap();
    let (_, status) = admin(&["status", "coop-1", "--json"], &cells, &registry);
    assert_eq!(status["cells"][0]["head"]["role"], "primary");
    assert_eq!(status["cells"][1]["head"]["role"], "standby");
    assert_eq!(status["cells"][1]["lag_entries"], 0);
    assert_eq!(status["placement"], Value::Null);

    let (ok, moved) = admin(
        &[
            "migrate",
            "coop-1",
            "--to",
            "cell-azure",
            "--json",
            "--timeout-secs",
            "5",
        ],
        &cells,
        &registry,
    );
    assert!(ok, "{moved}");
    assert_eq!(
        (moved["from"].as_str(), moved["to"].as_str()),
        (Some("cell-aws"), Some("cell-azure"))
    );
    assert_eq!(
        (
            moved["epoch_before"].as_u64(),
            moved["epoch_after"].as_u64(),
            moved["seq"].as_u64()
        ),
        (Some(1), Some(2), Some(3))
    );

    let (status, body) = create(&aws, "k-after").await;
    assert_eq!(
        (status, body["primary_cell"].as_str()),
        (421, Some("cell-azure"))
    );
    assert_eq!(create(&azure, "k-after").await.0, 201);
    let (status, _) = create(&azure, "k-1").await;
    assert_eq!(status, 201, "a key booked on DynamoDB replays on Cosmos DB");

    // And back: the Azure cell's new entry reaches the AWS cell first.
    replicate(&azure, &aws).await.unwrap();
    // The standby on DynamoDB holds what the primary on Cosmos DB holds: same chain, each store's
    // state its log's, and at the same position the same checksum across the two databases.
    let (ok, verified) = admin(&["verify", "coop-1", "--json"], &cells, &registry);
    assert!(ok, "{verified}");
    assert_eq!(verified["verdict"], "agree", "{verified}");
    assert_eq!(verified["primary"]["cell"], "cell-azure");
    assert_eq!(verified["primary"]["seq"], 4);
    assert_eq!(verified["standbys"][0]["compared_at"], 4);
    assert_eq!(
        verified["primary"]["checksum"], verified["standbys"][0]["checksum"],
        "{verified}"
    );
    let (ok, back) = admin(
        &["migrate", "coop-1", "--to", "cell-aws", "--json"],
        &cells,
        &registry,
    );
    assert!(ok, "{back}");
    assert_eq!(
        (back["epoch_after"].as_u64(), back["seq"].as_u64()),
        (Some(3), Some(4))
    );
    assert_eq!(create(&aws, "k-last").await.0, 201);
    let (_, status) = admin(&["status", "coop-1", "--json"], &cells, &registry);
    assert_eq!(status["placement"]["primary"], "cell-aws");
    assert_eq!(status["placement"]["epoch"], 3);
    assert_eq!(status["cells"][1]["head"]["role"], "standby");
    assert_eq!(
        status["cells"][1]["lag_entries"], 1,
        "the last write is not replicated yet"
    );
    let (ok, verified) = admin(&["verify", "coop-1", "--json"], &cells, &registry);
    assert!(ok, "a lagging standby still agrees: {verified}");
    assert_eq!(
        (
            verified["primary"]["seq"].as_u64(),
            verified["standbys"][0]["compared_at"].as_u64()
        ),
        (Some(5), Some(4)),
        "{verified}"
    );

    // A target that is behind: the move rolls back and says so.
    let (ok, refused) = admin(
        &[
            "migrate",
            "coop-1",
            "--to",
            "cell-azure",
            "--json",
            "--timeout-secs",
            "1",
        ],
        &cells,
        &registry,
    );
    assert!(!ok);
    assert!(
        refused["error"].as_str().unwrap().contains("rolled back"),
        "{refused}"
    );
    assert_eq!(create(&aws, "k-still-here").await.0, 201);

    // Unplanned: cell-aws is cut off from the operator and the relay; the standby is promoted after
    // the lease (2 s) + invocation (1 s) wait. What cell-aws kept is counted and classified.
    let seq = |cell: &Cell| {
        let store = cell.ports().store.clone();
        async move {
            let tenant = paracell_domain::TenantId::parse("coop-1").unwrap();
            store.head(&tenant).await.unwrap().unwrap().position.seq
        }
    };
    let unreplicated = seq(&aws).await - seq(&azure).await;
    assert!(unreplicated >= 2, "{unreplicated}");
    let (ok, failed_over) = admin(
        &[
            "failover",
            "coop-1",
            "--to",
            "cell-azure",
            "--allow-data-loss",
            "--json",
            "--lease-secs",
            "2",
            "--skew-secs",
            "0",
            "--invocation-secs",
            "1",
        ],
        &cells,
        &registry,
    );
    assert!(ok, "{failed_over}");
    assert_eq!(failed_over["epoch_after"], 4);
    assert_eq!(failed_over["lost_entries"], unreplicated);
    assert!(failed_over["waited_ms"].as_i64().unwrap() >= 3_000);
    let (status, body) = create(&aws, "k-too-late").await;
    assert_eq!(
        (status, body["primary_cell"].as_str()),
        (421, Some("cell-azure")),
        "{body}"
    );
    assert_eq!(
        create(&azure, "k-still-here").await.0,
        201,
        "the client retries there"
    );

    let report = std::env::temp_dir().join(format!("reconcile-{run}.json"));
    let (ok, rec) = admin(
        &[
            "reconcile",
            "coop-1",
            "--json",
            "--report",
            report.to_str().unwrap(),
        ],
        &cells,
        &registry,
    );
    assert!(ok, "{rec}");
    assert_eq!(rec["counts"]["retried"], 1, "{rec}");
    // Every class is counted by name, even at zero.
    for class in paracell_domain::placement::reconcile::TailClass::ALL {
        let key = class.as_str().replace('-', "_");
        assert!(rec["counts"][key.as_str()].is_u64(), "{key} missing: {rec}");
    }
    assert_eq!(
        rec["counts"]["lost"].as_u64().unwrap() + 1,
        unreplicated,
        "{rec}"
    );
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(written["entries"], rec["entries"]);
    let (_, status) = admin(&["status", "coop-1", "--json"], &cells, &registry);
    assert_eq!(status["placement"]["state"], "active");
    assert_eq!(status["cells"][0]["head"]["role"], "fenced");
}

/// A registry stream event as Lambda delivers it: one record per placement, in order.
fn registry_stream_event(
    records: &[(
        &str,
        Option<&paracell_domain::placement::registry::Placement>,
    )],
) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|(sequence, placement)| {
            let image = match placement {
                Some(p) => serde_json::json!({"pk": {"S": format!("P#{}", p.tenant)}, "sk": {"S": "PLACEMENT"},
                    "doc": {"S": p.render()}, "version": {"N": p.version.to_string()}, "epoch": {"N": p.epoch.to_string()}}),
                None => serde_json::json!({"pk": {"S": "P#coop-9"}, "sk": {"S": "PLACEMENT"}}),
            };
            serde_json::json!({"eventID": sequence, "eventName": "MODIFY", "eventVersion": "1.1",
                "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
                "dynamodb": {"Keys": {"pk": image["pk"], "sk": image["sk"]}, "NewImage": image,
                    "SequenceNumber": sequence, "StreamViewType": "NEW_IMAGE"}})
        })
        .collect();
    serde_json::json!({ "Records": records })
}

#[test]
#[ignore = "needs cargo-lambda and the stand-ins: .ci/run runs it with --ignored under scripts/dev-services.sh"]
fn the_placement_replicator_keeps_the_cosmos_replica_newest_first() {
    use paracell_azure::outbound::cosmos::CosmosPlacementReplica;
    use paracell_domain::placement::registry::{Placement, PlacementReplica, PlacementState};
    use paracell_domain::{CellId, TenantId};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let container = format!("replica-{}", std::process::id());
    let config = CosmosConfig::from_lookup(|n| {
        if n == "PARACELL_COSMOS_CONTAINER" {
            Some(container.clone())
        } else {
            std::env::var(n).ok()
        }
    })
    .unwrap();
    rt.block_on(CosmosStore::provision(&config)).unwrap();
    let mut function_env: Vec<(String, String)> = std::env::vars()
        .filter(|(n, _)| n.starts_with("PARACELL_COSMOS_") || n.starts_with("AZURE_COSMOS_"))
        .collect();
    function_env.push(("PARACELL_COSMOS_CONTAINER".into(), container.clone()));
    function_env.push(("RUST_LOG".into(), "off".into()));
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let replicator = paracell_conformance::binaries::start_function(
        workspace,
        std::path::Path::new(env!("CARGO_BIN_EXE_placement-replicator")),
        &function_env,
    )
    .unwrap();

    let cell = |c: &str| CellId::parse(c).unwrap();
    let v1 = Placement::new(
        TenantId::parse("coop-1").unwrap(),
        cell("cell-aws"),
        1,
        vec![cell("cell-azure")],
    );
    let v2 = v1.next(|p| {
        p.state = PlacementState::Migrating {
            to: cell("cell-azure"),
        }
    });
    let v3 = v2.next(|p| {
        p.primary = cell("cell-azure");
        p.epoch = 2;
        p.standbys = vec![cell("cell-aws")];
        p.state = PlacementState::Active;
    });
    // Out of order and repeated: the replica ends at the newest.
    let answer = replicator
        .invoke(&registry_stream_event(&[
            ("1", Some(&v1)),
            ("3", Some(&v3)),
            ("2", Some(&v2)),
            ("4", Some(&v3)),
        ]))
        .unwrap();
    assert_eq!(
        answer["batchItemFailures"],
        serde_json::json!([]),
        "{answer}"
    );
    let replica = CosmosPlacementReplica::new(rt.block_on(CosmosStore::connect(&config)).unwrap());
    assert_eq!(
        rt.block_on(replica.get(&v1.tenant)).unwrap(),
        Some(v3.clone())
    );
    // An item it cannot read fails the batch from there (retried, then the on-failure queue).
    let answer = replicator
        .invoke(&registry_stream_event(&[
            ("5", Some(&v3)),
            ("6", None),
            ("7", Some(&v1)),
        ]))
        .unwrap();
    assert_eq!(
        answer["batchItemFailures"],
        serde_json::json!([{"itemIdentifier": "6"}]),
        "{answer}"
    );
}

/// `edge-router` with `PARACELL_REGISTRY=dynamodb:<table>` (the placement authority) and with
/// `cosmos:<container>` (its replica on Azure): each routes the tenant to the primary its registry
/// names, at that registry's epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_router_routes_by_the_dynamodb_registry_and_by_its_cosmos_replica() {
    use paracell_azure::outbound::cosmos::CosmosPlacementReplica;
    use paracell_domain::placement::registry::{Placement, PlacementRegistry, PlacementReplica};
    use paracell_domain::{CellId, TenantId};
    let run = std::process::id();
    let (registry_table, replica_container) = (
        format!("edge-registry-{run}"),
        format!("edge-replica-{run}"),
    );
    let registry = paracell_aws::outbound::dynamodb::registry::DynamoRegistry::connect(
        &DynamoConfig::new(&registry_table).with_endpoint(env("PARACELL_TEST_DYNAMODB_ENDPOINT")),
    )
    .await;
    registry.create_table().await.unwrap();
    let replica_config = CosmosConfig::from_lookup(|n| {
        if n == "PARACELL_COSMOS_CONTAINER" {
            Some(replica_container.clone())
        } else {
            std::env::var(n).ok()
        }
    })
    .unwrap();
    CosmosStore::provision(&replica_config).await.unwrap();
    let replica = CosmosPlacementReplica::new(CosmosStore::connect(&replica_config).await.unwrap());
    let cell = |c: &str| CellId::parse(c).unwrap();
    let placed = Placement::new(
        TenantId::parse("coop-1").unwrap(),
        cell("cell-aws"),
        1,
        vec![cell("cell-azure")],
    );
    registry.put(None, &placed).await.unwrap();
    // The replica has already seen a failover the authority will get later (it never goes back).
    let promoted = placed.next(|p| {
        p.primary = cell("cell-azure");
        p.epoch = 2;
    });
    assert!(replica.apply(&promoted).await.unwrap());

    let local_cell = |id: &str| {
        let port = support::free_port();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_local-cell"));
        command
            .env("PORT", port.to_string())
            .env("PARACELL_CELL_ID", id)
            .env("PARACELL_TENANTS", "*")
            .env("PARACELL_STORE", "memory")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        (support::start_and_wait_ready(command, port), port)
    };
    let (_aws, aws_port) = local_cell("cell-aws");
    let (_azure, azure_port) = local_cell("cell-azure");
    let cells = format!(
        "cell-aws=aws=http://127.0.0.1:{aws_port},cell-azure=azure=http://127.0.0.1:{azure_port}"
    );
    for (source, expected_cell, expected_cloud) in [
        (format!("dynamodb:{registry_table}"), "cell-aws", "aws"),
        (format!("cosmos:{replica_container}"), "cell-azure", "azure"),
    ] {
        let port = support::free_port();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_edge-router"));
        command
            .env("PORT", port.to_string())
            .env("PARACELL_REGISTRY", &source)
            .env("PARACELL_EDGE_CELLS", &cells)
            .env("PARACELL_EDGE_PROBE_SECS", "0")
            .env_remove("PARACELL_STORE")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let _router = support::start_and_wait_ready(command, port);
        let reply = support::send(
            port,
            "GET",
            "/v1/accounts/ACC-1/balances",
            &[("X-Tenant-ID", "coop-1")],
            b"",
            false,
        );
        assert_eq!(
            reply.status,
            404,
            "{source}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(
            reply.header("x-paracell-cell"),
            Some(expected_cell),
            "{source}"
        );
        assert_eq!(
            reply.header("x-paracell-cloud"),
            Some(expected_cloud),
            "{source}"
        );
        let unknown = support::send(
            port,
            "GET",
            "/v1/accounts/ACC-1/balances",
            &[("X-Tenant-ID", "coop-2")],
            b"",
            false,
        );
        assert_eq!(unknown.status, 404);
        assert!(
            String::from_utf8_lossy(&unknown.body).contains("tenant-not-allocated"),
            "{source}"
        );
    }
}
