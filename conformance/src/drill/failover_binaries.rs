//! The migration drill through the built binaries on the local stand-ins (run it under
//! `scripts/dev-services.sh`): a tenant written on `lambda-cell` (DynamoDB on moto, its real stream
//! relayed by the function the drill invokes as Lambda's event source mapping would) is moved to
//! `azure-cell` (the Cosmos DB stand-in, relaying by polling its store) and back, with the operator's
//! `migrate` on the real stores and a DynamoDB registry, while a client that never stops writes
//! through the cells' front doors (following `421`, waiting out `503 tenant-frozen`).
//!
//! Checks: both moves completed; nothing lost (every acknowledged write is on the final primary byte
//! for byte, and the balances are the acknowledged sum); nothing duplicated (one log entry per
//! acknowledged write); both stores end at the same position; and how long writes paused.

use super::replication_binaries::{Disorder, FrontDoor, SECRET, serve_front_door};
use super::stream::StreamReader;
use super::{DrillReport, Options, Rng, answer, create_request, dev_env, read_request};
use crate::binaries::{AzureProcess, Binaries, LambdaProcess};
use crate::envelopes::Envelope;
use crate::request::{ClientRequest, ClientResponse};
use paracell_aws::outbound::dynamodb::registry::DynamoRegistry;
use paracell_aws::outbound::dynamodb::{DynamoConfig, DynamoStore};
use paracell_azure::outbound::cosmos::{CosmosConfig, CosmosStore};
use paracell_domain::placement::migrate::{
    CellHandle, MigrationPolicy, MigrationReport, MovePorts, migrate,
};
use paracell_domain::ports::{Sleep, SystemClock, TransactionStore};
use paracell_domain::replication::signature::PeerSecret;
use paracell_domain::transaction::AccountId;
use paracell_domain::{CellConfig, CellId, TenantId, TenantScope};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TENANT: &str = "coop-1";
const ACCOUNTS: [&str; 2] = ["ACC-1", "ACC-2"];

/// Runs the drill.
pub fn run(options: Options, workspace: &Path) -> DrillReport {
    super::run_on_runtime(4, async |report| drill(options, workspace, report).await)
}

struct TokioSleep;

#[async_trait::async_trait]
impl Sleep for TokioSleep {
    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// What the client saw.
#[derive(Default)]
struct Seen {
    /// key → the request and its final answer (201 or 409).
    acked: BTreeMap<String, (ClientRequest, ClientResponse)>,
    /// Writes that had to wait (503) or move (421), with how long they took in all.
    paused: Vec<Duration>,
    frozen: usize,
    moved: usize,
    unexpected: Vec<String>,
}

/// The client: writes without pause, following the primary.
fn client(
    lambda: &LambdaProcess,
    azure: &AzureProcess,
    stop: &AtomicBool,
    seed: u64,
    seen: &Mutex<Seen>,
    count: &AtomicUsize,
) {
    let mut rng = Rng::new(seed);
    let mut route = "cell-aws";
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let key = format!("k-{i}");
        let account = ACCOUNTS[usize::try_from(rng.below(2)).unwrap_or(0)];
        let request = create_request(TENANT, &key, account, rng.chance(25), rng.below(20_000) + 1);
        let started = Instant::now();
        let mut waited = false;
        for attempt in 0..2_000 {
            let exchange = if route == "cell-aws" {
                lambda.exchange(Envelope::AwsFunctionUrl, &request)
            } else {
                azure.exchange(Envelope::AzureForwarding, &request, i * 10_000 + attempt)
            };
            let response = match answer(exchange) {
                Ok(r) => r,
                Err(e) => {
                    lock(seen).unexpected.push(format!("{key}: {e}"));
                    break;
                }
            };
            match response.status {
                201 | 409 => {
                    let mut seen = lock(seen);
                    if waited {
                        seen.paused.push(started.elapsed());
                    }
                    seen.acked.insert(key.clone(), (request.clone(), response));
                    count.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                421 => {
                    waited = true;
                    lock(seen).moved += 1;
                    let body: serde_json::Value =
                        serde_json::from_slice(&response.body).unwrap_or_default();
                    route = if body["primary_cell"] == "cell-azure" {
                        "cell-azure"
                    } else {
                        "cell-aws"
                    };
                    // Between the fence and the promotion nobody is primary: wait a little.
                    std::thread::sleep(Duration::from_millis(10));
                }
                503 => {
                    waited = true;
                    lock(seen).frozen += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                status => {
                    lock(seen).unexpected.push(format!(
                        "{key}: {status} {}",
                        String::from_utf8_lossy(&response.body)
                    ));
                    break;
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Cents of a decimal amount's text.
fn cents(text: &str) -> i128 {
    let (units, fraction) = text.split_once('.').unwrap_or((text, "0"));
    let fraction = format!("{fraction:0<2}");
    units.parse::<i128>().unwrap_or(0) * 100 + fraction[..2].parse::<i128>().unwrap_or(0)
}

async fn drill(options: Options, workspace: &Path, report: &mut DrillReport) -> Result<(), String> {
    let started = Instant::now();
    let run = std::process::id();
    let moto = dev_env("PARACELL_DYNAMODB_ENDPOINT")?;
    let container = format!("move-{run}");
    let cosmos = CosmosConfig::from_lookup(|n| {
        if n == "PARACELL_COSMOS_CONTAINER" {
            Some(container.clone())
        } else {
            std::env::var(n).ok()
        }
    })?;
    let table = format!("move-{run}");
    let binaries = tokio::task::block_in_place(|| Binaries::start(workspace.to_path_buf()))?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| e.to_string())?;
    let door_port = listener.local_addr().map_err(|e| e.to_string())?.port();

    let mut azure_env: Vec<(String, String)> = std::env::vars()
        .filter(|(n, _)| n.starts_with("AZURE_COSMOS_") || n.starts_with("PARACELL_COSMOS_"))
        .collect();
    azure_env.extend(
        [
            ("PARACELL_STORE", "cosmos".to_owned()),
            ("PARACELL_STORE_PROVISION", "1".to_owned()),
            ("PARACELL_COSMOS_CONTAINER", container.clone()),
            ("PARACELL_DETERMINISTIC", "0".to_owned()),
            (
                "PARACELL_PEERS",
                format!("cell-aws=http://127.0.0.1:{door_port}"),
            ),
            ("PARACELL_PEER_SECRETS", format!("cell-aws={SECRET}")),
            ("PARACELL_DEAD_LETTERS", "cosmos".to_owned()),
            ("PARACELL_RELAY_POLL_MS", "50".to_owned()),
        ]
        .map(|(n, v)| (n.to_owned(), v)),
    );
    let azure_config =
        CellConfig::new("cell-azure", TenantScope::All).map_err(|e| e.to_string())?;
    let azure = Arc::new(tokio::task::block_in_place(|| {
        binaries.start_azure_with(&azure_config, "forwarding", &azure_env)
    })?);
    let mut lambda_env: Vec<(String, String)> = std::env::vars()
        .filter(|(n, _)| n.starts_with("AWS_"))
        .collect();
    lambda_env.extend(
        [
            ("PARACELL_STORE", "dynamodb".to_owned()),
            ("PARACELL_STORE_PROVISION", "1".to_owned()),
            ("PARACELL_DYNAMODB_TABLE", table.clone()),
            ("PARACELL_DYNAMODB_ENDPOINT", moto.clone()),
            ("PARACELL_DETERMINISTIC", "0".to_owned()),
            (
                "PARACELL_PEERS",
                format!("cell-azure=http://127.0.0.1:{}/api", azure.port()),
            ),
            ("PARACELL_PEER_SECRETS", format!("cell-azure={SECRET}")),
        ]
        .map(|(n, v)| (n.to_owned(), v)),
    );
    let lambda_config = CellConfig::new("cell-aws", TenantScope::All).map_err(|e| e.to_string())?;
    let lambda = Arc::new(tokio::task::block_in_place(|| {
        binaries.start_lambda_with(&lambda_config, &lambda_env)
    })?);
    let signer = PeerSecret::parse(
        CellId::parse("cell-azure").map_err(|e| e.to_string())?,
        SECRET,
    )
    .map_err(|e| e.to_string())?;
    let door = Arc::new(FrontDoor {
        lambda: lambda.clone(),
        rng: Mutex::new(Rng::new(options.seed)),
        held: Mutex::new(Vec::new()),
        disorder: Disorder::default(),
        signer,
        disorder_percent: 0,
    });
    tokio::spawn(serve_front_door(listener, door));
    let health = read_request(TENANT, "/health");
    tokio::task::block_in_place(|| answer(lambda.exchange(Envelope::AwsFunctionUrl, &health)))?;

    // The operator's view: both stores and the registry.
    let dynamo =
        Arc::new(DynamoStore::connect(&DynamoConfig::new(&table).with_endpoint(&moto)).await);
    let cosmos_store = Arc::new(
        CosmosStore::connect(&cosmos)
            .await
            .map_err(|e| e.to_string())?,
    );
    let registry = DynamoRegistry::connect(
        &DynamoConfig::new(format!("move-registry-{run}")).with_endpoint(&moto),
    )
    .await;
    registry.create_table().await.map_err(|e| e.to_string())?;
    let ports = MovePorts {
        registry: Arc::new(registry),
        clock: Arc::new(SystemClock),
        sleep: Arc::new(TokioSleep),
    };
    let aws_cell = CellHandle {
        id: CellId::parse("cell-aws").map_err(|e| e.to_string())?,
        store: dynamo.clone(),
    };
    let azure_cell = CellHandle {
        id: CellId::parse("cell-azure").map_err(|e| e.to_string())?,
        store: cosmos_store.clone(),
    };

    // Lambda's event source mapping on the table's stream, for as long as the drill runs.
    let stop_pump = Arc::new(AtomicBool::new(false));
    let conf = aws_config::from_env().endpoint_url(&moto).load().await;
    let mut stream = StreamReader::new(aws_sdk_dynamodbstreams::Client::new(&conf), &table);
    let pump = {
        let (lambda, stop) = (lambda.clone(), stop_pump.clone());
        tokio::spawn(async move {
            let mut failures = 0usize;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(records) = stream.poll().await
                    && !records.is_empty()
                {
                    let event = serde_json::json!({ "Records": records });
                    let out = tokio::task::block_in_place(|| lambda.invoke(&event));
                    if !out
                        .is_ok_and(|o| o["batchItemFailures"].as_array().is_some_and(Vec::is_empty))
                    {
                        failures += 1;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            failures
        })
    };

    // The client that never stops.
    let stop_client = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let acked_count = Arc::new(AtomicUsize::new(0));
    let client_thread = {
        let (lambda, azure, stop, seen, count) = (
            lambda.clone(),
            azure.clone(),
            stop_client.clone(),
            seen.clone(),
            acked_count.clone(),
        );
        let seed = options.seed;
        std::thread::spawn(move || client(&lambda, &azure, &stop, seed, &seen, &count))
    };
    let wait_for = |n: usize| {
        let count = acked_count.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(300);
            while count.load(Ordering::Relaxed) < n && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let policy = MigrationPolicy {
        catch_up_timeout: Duration::from_secs(60),
        poll: Duration::from_millis(50),
        ..MigrationPolicy::default()
    };
    let tenant = TenantId::parse(TENANT).map_err(|e| e.to_string())?;
    let mut moves: Vec<Result<MigrationReport, String>> = Vec::new();
    wait_for(options.writes / 3).await;
    moves.push(
        migrate(&tenant, &aws_cell, &azure_cell, &ports, policy)
            .await
            .map_err(|e| format!("to cell-azure: {e}")),
    );
    wait_for(options.writes * 2 / 3).await;
    moves.push(
        migrate(&tenant, &azure_cell, &aws_cell, &ports, policy)
            .await
            .map_err(|e| format!("back to cell-aws: {e}")),
    );
    wait_for(options.writes).await;
    stop_client.store(true, Ordering::Relaxed);
    tokio::task::block_in_place(|| client_thread.join()).map_err(|_| "the client panicked")?;

    // Drain: both stores at the same position.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut a, mut b) = (None, None);
    while Instant::now() < deadline {
        a = dynamo.head(&tenant).await.map_err(|e| e.to_string())?;
        b = cosmos_store
            .head(&tenant)
            .await
            .map_err(|e| e.to_string())?;
        if a.as_ref().map(|h| h.position) == b.as_ref().map(|h| h.position) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_pump.store(true, Ordering::Relaxed);
    let pump_failures = pump.await.map_err(|e| e.to_string())?;

    let seen = std::mem::take(&mut *lock(&seen));
    let final_primary = if matches!(moves.last(), Some(Ok(_))) {
        "cell-aws"
    } else {
        "cell-azure"
    };
    // Nothing lost: every acknowledged booking readable on the final primary, byte for byte.
    let mut missing = Vec::new();
    let mut expected: i128 = 0;
    for (key, (request, response)) in &seen.acked {
        if response.status != 201 {
            continue;
        }
        let body: serde_json::Value =
            serde_json::from_slice(&request.body).map_err(|e| e.to_string())?;
        let amount = cents(body["amount"].as_str().unwrap_or("0"));
        expected += if body["type"] == "debit" {
            -amount
        } else {
            amount
        };
        let Some(location) = response.header("location") else {
            missing.push(format!("{key}: no Location"));
            continue;
        };
        let read = read_request(TENANT, location);
        let got = tokio::task::block_in_place(|| {
            if final_primary == "cell-aws" {
                answer(lambda.exchange(Envelope::AwsFunctionUrl, &read))
            } else {
                answer(azure.exchange(Envelope::AzureForwarding, &read, 9_000_000))
            }
        })?;
        if got.status != 200 || got.body != response.body {
            missing.push(format!("{key}: GET {location} answered {}", got.status));
        }
    }
    let primary_store: &dyn TransactionStore = if final_primary == "cell-aws" {
        dynamo.as_ref()
    } else {
        cosmos_store.as_ref()
    };
    let mut held: i128 = 0;
    for account in ACCOUNTS {
        let account = AccountId::parse(account).map_err(|e| e.to_string())?;
        for b in primary_store
            .balances(&tenant, &account)
            .await
            .map_err(|e| e.to_string())?
        {
            held += cents(&b.available.to_string());
        }
    }
    let log = primary_store
        .entries_after(&tenant, 0, 1_000_000)
        .await
        .map_err(|e| e.to_string())?;
    let keys: BTreeSet<String> = log.iter().map(|e| e.entry().key.to_string()).collect();

    let mut pauses = seen.paused.clone();
    let (p50, p99, pmax) = super::percentiles(&mut pauses);
    report.figure("client writes acknowledged", seen.acked.len());
    report.figure(
        "answers 503 tenant-frozen / 421 tenant-moved followed",
        format!("{} / {}", seen.frozen, seen.moved),
    );
    for m in moves.iter().flatten() {
        report.figure(
            &format!(
                "move {} → {} (epoch {} → {})",
                m.from, m.to, m.epochs.0, m.epochs.1
            ),
            format!(
                "at {}, writes paused {} ms",
                m.position, m.writes_paused_millis
            ),
        );
    }
    report.figure(
        "client writes that waited, time to their answer (p50/p99/max)",
        format!(
            "{} writes: {p50:.0?} / {p99:.0?} / {pmax:.0?}",
            seen.paused.len()
        ),
    );
    report.figure("elapsed", format!("{:.1?}", started.elapsed()));

    let failed_moves: Vec<&String> = moves.iter().filter_map(|m| m.as_ref().err()).collect();
    report.check(
        "both moves completed (lambda-cell → azure-cell → lambda-cell)",
        failed_moves.is_empty() && moves.len() == 2,
        failed_moves
            .first()
            .map(|e| (*e).clone())
            .unwrap_or_default(),
    );
    report.check(
        "the client got an answer for every write (201, 409, or 503/421 then one of them)",
        seen.unexpected.is_empty(),
        seen.unexpected.first().cloned().unwrap_or_default(),
    );
    report.check(
        "0 lost: every acknowledged booking is on the final primary, byte for byte, and the balances are their sum",
        missing.is_empty() && held == expected,
        missing.first().cloned().unwrap_or_else(|| format!("balances {held} cents, acknowledged {expected} cents")),
    );
    report.check(
        "0 duplicated: one log entry per acknowledged write",
        log.len() == seen.acked.len() && keys.len() == log.len(),
        format!(
            "{} entries, {} distinct keys, {} acknowledged",
            log.len(),
            keys.len(),
            seen.acked.len()
        ),
    );
    report.check(
        "both stores end at the same position",
        a.is_some() && a.as_ref().map(|h| h.position) == b.as_ref().map(|h| h.position),
        format!(
            "{:?} / {:?}",
            a.map(|h| h.position.seq),
            b.map(|h| h.position.seq)
        ),
    );
    report.check(
        "every stream batch succeeded",
        pump_failures == 0,
        format!("{pump_failures} failed"),
    );
    report.check(
        "the client kept writing through both moves (some writes waited)",
        seen.frozen + seen.moved > 0,
        format!("{} waited", seen.paused.len()),
    );
    Ok(())
}
