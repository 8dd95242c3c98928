//! A tenant's write ceiling: every write of a tenant advances its head (the replication sequence),
//! so concurrent writers of one tenant serialise and some retry. This measures committed creates per
//! second, commit attempts per create and latency, for one and eight writers on one tenant (one
//! account and eight accounts) and for eight writers on eight tenants, on the in-memory store and, when
//! built with the store features and run under `scripts/dev-services.sh`, on the DynamoDB and Cosmos DB
//! stand-ins.
//!
//! ```sh
//! cargo bench -p paracell-examples --bench write_ceiling -- --seconds 5
//! scripts/dev-services.sh cargo bench -p paracell-examples --features dynamodb,cosmos --bench write_ceiling -- --seconds 10
//! ```
//! Writes `bench/out/write_ceiling.md` (the table in BENCHMARKS.md).
#![allow(clippy::unwrap_used, missing_docs)]

use paracell_domain::http::ApiRequest;
use paracell_domain::memory::MemoryStore;
use paracell_domain::ports::{StoreError, SystemClock, TransactionStore, UuidV7};
use paracell_domain::testing::faults::{FaultyStore, Operation};
use paracell_domain::{Cell, CellConfig, CellPorts, TenantScope};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

struct Scenario {
    name: &'static str,
    writers: usize,
    tenants: usize,
    accounts: usize,
}

const SCENARIOS: [Scenario; 4] = [
    Scenario {
        name: "1 writer, 1 tenant",
        writers: 1,
        tenants: 1,
        accounts: 1,
    },
    Scenario {
        name: "8 writers, 1 tenant, 1 account",
        writers: 8,
        tenants: 1,
        accounts: 1,
    },
    Scenario {
        name: "8 writers, 1 tenant, 8 accounts",
        writers: 8,
        tenants: 1,
        accounts: 8,
    },
    Scenario {
        name: "8 writers, 8 tenants",
        writers: 8,
        tenants: 8,
        accounts: 1,
    },
];

async fn fresh_store(kind: &str, n: usize) -> Result<Arc<dyn TransactionStore>, String> {
    let _ = n;
    match kind {
        "memory" => Ok(Arc::new(MemoryStore::new())),
        #[cfg(feature = "dynamodb")]
        "dynamodb" => {
            use paracell_aws::outbound::dynamodb::{DynamoConfig, DynamoStore};
            let endpoint = std::env::var("PARACELL_DYNAMODB_ENDPOINT")
                .map_err(|_| "run under scripts/dev-services.sh")?;
            let store = DynamoStore::connect(
                &DynamoConfig::new(format!("ceiling-{}-{n}", std::process::id()))
                    .with_endpoint(endpoint),
            )
            .await;
            store.create_table().await.map_err(|e| e.to_string())?;
            Ok(Arc::new(store))
        }
        #[cfg(feature = "cosmos")]
        "cosmos" => {
            use paracell_azure::outbound::cosmos::{CosmosConfig, CosmosStore};
            let config = CosmosConfig::from_lookup(|v| {
                if v == "PARACELL_COSMOS_CONTAINER" {
                    Some(format!("ceiling-{}-{n}", std::process::id()))
                } else {
                    std::env::var(v).ok()
                }
            })?;
            CosmosStore::provision(&config)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Arc::new(
                CosmosStore::connect(&config)
                    .await
                    .map_err(|e| e.to_string())?,
            ))
        }
        other => Err(format!(
            "store {other} is not built in (features dynamodb, cosmos)"
        )),
    }
}

fn create(tenant: usize, account: usize, key: u64) -> ApiRequest {
    ApiRequest::new("POST", "/v1/transactions")
        .with_header("content-type", "application/json")
        .with_header("x-tenant-id", format!("coop-{tenant}"))
        .with_header("idempotency-key", format!("w-{key}"))
        .with_body(format!(
            r#"{{"account_id":"ACC-{account}","type":"credit","amount":"1.00","currency":"EUR"}}"#
        ))
}

struct Row {
    store: String,
    scenario: &'static str,
    creates: u64,
    per_second: f64,
    attempts: f64,
    unavailable: u64,
    p50: Duration,
    p99: Duration,
}

#[allow(clippy::cast_precision_loss, clippy::float_arithmetic)]
async fn run(kind: &str, n: usize, scenario: &Scenario, seconds: u64) -> Result<Row, String> {
    let commits = Arc::new(AtomicU64::new(0));
    let counter = commits.clone();
    let store = Arc::new(FaultyStore::new(fresh_store(kind, n).await?, move |op| {
        if op == Operation::Commit {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        Ok::<(), StoreError>(())
    }));
    let cell = Cell::new(
        CellConfig::new("cell-bench", TenantScope::All).map_err(|e| e.to_string())?,
        CellPorts {
            store,
            clock: Arc::new(SystemClock),
            ids: Arc::new(UuidV7),
        },
    );
    // As the binaries run it: on a database, a create that lost a race waits a random moment
    // before reading again (not in memory, see `paracell_examples::cell_with`).
    let cell = if kind == "memory" {
        cell
    } else {
        cell.with_retry_pause(Arc::new(paracell_examples::http_client::TokioSleep))
    };
    let keys = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..scenario.writers {
        let (cell, keys) = (cell.clone(), keys.clone());
        let (tenant, account) = (w % scenario.tenants, w % scenario.accounts);
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut unavailable, mut latencies) = (0u64, 0u64, Vec::new());
            while Instant::now() < deadline {
                let t = Instant::now();
                let key = keys.fetch_add(1, Ordering::Relaxed);
                match cell.handle(create(tenant, account, key)).await.status {
                    201 => {
                        ok += 1;
                        latencies.push(t.elapsed());
                    }
                    503 => unavailable += 1,
                    other => panic!("unexpected status {other}"),
                }
            }
            (ok, unavailable, latencies)
        }));
    }
    let (mut creates, mut unavailable, mut latencies) = (0, 0, Vec::new());
    for task in tasks {
        let (o, u, l) = task.await.map_err(|e| e.to_string())?;
        creates += o;
        unavailable += u;
        latencies.extend(l);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let at = |p: usize| {
        latencies
            .get((latencies.len().saturating_sub(1)) * p / 100)
            .copied()
            .unwrap_or_default()
    };
    Ok(Row {
        store: kind.to_owned(),
        scenario: scenario.name,
        creates,
        per_second: creates as f64 / elapsed,
        attempts: commits.load(Ordering::Relaxed) as f64 / (creates.max(1)) as f64,
        unavailable,
        p50: at(50),
        p99: at(99),
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let mut stores = vec!["memory"];
    if cfg!(feature = "dynamodb") && std::env::var_os("PARACELL_DYNAMODB_ENDPOINT").is_some() {
        stores.push("dynamodb");
    }
    if cfg!(feature = "cosmos") && std::env::var_os("PARACELL_COSMOS_ENDPOINT").is_some() {
        stores.push("cosmos");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut out = String::from(
        "| store | writers and tenants | creates | creates/s | commit attempts per create | 503 after 64 attempts | p50 | p99 |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut n = 0;
    for store in stores {
        for scenario in &SCENARIOS {
            n += 1;
            match rt.block_on(run(store, n, scenario, seconds)) {
                Ok(r) => {
                    let line = format!(
                        "| {} | {} | {} | {:.0} | {:.2} | {} | {:.1?} | {:.1?} |\n",
                        r.store,
                        r.scenario,
                        r.creates,
                        r.per_second,
                        r.attempts,
                        r.unavailable,
                        r.p50,
                        r.p99
                    );
                    print!("{line}");
                    out.push_str(&line);
                }
                Err(e) => eprintln!("{store}, {}: {e}", scenario.name),
            }
        }
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/out");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("write_ceiling.md"), out);
}
