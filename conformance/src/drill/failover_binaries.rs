//! The migration drill through the built binaries on the local stand-ins (run it under
//! `scripts/dev-services.sh`): a tenant written on `lambda-cell` (DynamoDB on moto, its real stream
//! relayed by the function the drill invokes as Lambda's event source mapping would) is moved to
//! `azure-cell` (the Cosmos DB stand-in, relaying by polling its store) and back, with the operator's
//! `migrate` on the real stores and a DynamoDB registry, while a client that never stops writes
//! through the cells' front doors (following `421`, waiting out `503 tenant-frozen`).
//!
//! Then an **unplanned failover**: lambda-cell's stream stops reaching azure-cell while the client keeps
//! writing to it, the operator fails over (the cells are under 2 s leases from the registry; the wait
//! is lease + 1 s), lambda-cell fences itself, and reconciliation classifies what it kept.
//!
//! Checks: both moves completed; nothing lost beyond what reconciliation lists (every other
//! acknowledged write is on the final primary byte for byte, and the balances add up); nothing
//! duplicated (one log entry per acknowledged write); the failover's reported loss is what was
//! classified and the old primary is fenced; how long writes paused.

use super::replication_binaries::{Disorder, FrontDoor, SECRET, serve_front_door};
use super::stream::StreamReader;
use super::{DrillReport, Options, Rng, answer, cents, create_request, dev_env, read_request};
use crate::binaries::{AzureProcess, Binaries, LambdaProcess};
use crate::envelopes::Envelope;
use crate::request::{ClientRequest, ClientResponse};
use paracell_aws::outbound::dynamodb::registry::DynamoRegistry;
use paracell_aws::outbound::dynamodb::{DynamoConfig, DynamoStore};
use paracell_azure::outbound::cosmos::{CosmosConfig, CosmosStore};
use paracell_domain::placement::failover::{FailoverPolicy, failover};
use paracell_domain::placement::migrate::{
    CellHandle, MigrationPolicy, MigrationReport, MovePorts, migrate,
};
use paracell_domain::placement::reconcile::{TailClass, reconcile};
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

    let registry_table = format!("move-registry-{run}");
    // Both cells confirm their leases from the registry: it exists before their first write.
    let registry =
        DynamoRegistry::connect(&DynamoConfig::new(&registry_table).with_endpoint(&moto)).await;
    registry.create_table().await.map_err(|e| e.to_string())?;
    let mut azure_env: Vec<(String, String)> = std::env::vars()
        .filter(|(n, _)| {
            n.starts_with("AZURE_COSMOS_")
                || n.starts_with("PARACELL_COSMOS_")
                || n.starts_with("AWS_")
        })
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
            (
                "PARACELL_PLACEMENT_SOURCE",
                format!("dynamodb:{registry_table}"),
            ),
            ("PARACELL_LEASE_SECS", "2".to_owned()),
            ("PARACELL_DYNAMODB_ENDPOINT", moto.clone()),
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
            (
                "PARACELL_PLACEMENT_SOURCE",
                format!("dynamodb:{registry_table}"),
            ),
            ("PARACELL_LEASE_SECS", "2".to_owned()),
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
    let partitioned = Arc::new(AtomicBool::new(false));
    let conf = aws_config::from_env().endpoint_url(&moto).load().await;
    let mut stream = StreamReader::new(aws_sdk_dynamodbstreams::Client::new(&conf), &table);
    let pump = {
        let (lambda, stop, cut) = (lambda.clone(), stop_pump.clone(), partitioned.clone());
        tokio::spawn(async move {
            let mut failures = 0usize;
            while !stop.load(Ordering::Relaxed) {
                if cut.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
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
    let progress = crate::progress::Progress::new(options.writes as u64, "writes acknowledged");
    let wait_for = |n: usize| {
        let count = acked_count.clone();
        let progress = progress.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(300);
            while count.load(Ordering::Relaxed) < n && Instant::now() < deadline {
                progress.at(count.load(Ordering::Relaxed) as u64);
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
    // Unplanned: lambda-cell's stream stops reaching azure-cell (a partition of the relay) while the
    // client keeps writing to it; then the operator fails over, waiting out the 2 s lease + 1 s.
    partitioned.store(true, Ordering::Relaxed);
    wait_for(options.writes * 5 / 6).await;
    let failed_over = failover(
        &tenant,
        &aws_cell.id,
        Some(&aws_cell),
        &azure_cell,
        &ports,
        None,
        FailoverPolicy {
            lease_ttl: Duration::from_secs(2),
            clock_skew: Duration::ZERO,
            invocation_timeout: Duration::from_secs(1),
            poll: Duration::from_millis(100),
        },
    )
    .await
    .map_err(|e| format!("failover: {e}"));
    wait_for(options.writes).await;
    progress.finish();
    stop_client.store(true, Ordering::Relaxed);
    tokio::task::block_in_place(|| client_thread.join()).map_err(|_| "the client panicked")?;
    stop_pump.store(true, Ordering::Relaxed);
    let pump_failures = pump.await.map_err(|e| e.to_string())?;
    let reconciled = match &failed_over {
        Ok(_) => Some(
            reconcile(&tenant, &aws_cell, &azure_cell, ports.registry.as_ref())
                .await
                .map_err(|e| format!("reconcile: {e}"))?,
        ),
        Err(_) => None,
    };

    let seen = std::mem::take(&mut *lock(&seen));
    let final_primary = if failed_over.is_ok() {
        "cell-azure"
    } else if matches!(moves.last(), Some(Ok(_))) {
        "cell-aws"
    } else {
        "cell-azure"
    };
    // What reconciliation found on the old primary: its keys, and the money the report says is
    // missing from the new one (lost bookings; retries answered differently).
    let (tail_keys, lost, lost_cents) = reconciled
        .as_ref()
        .map_or((BTreeSet::new(), 0, 0), super::reconciled_money);
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
        if tail_keys.contains(key) {
            // Kept only by the old primary: the reconciliation report accounts for it.
            continue;
        }
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
    let acked_keys: BTreeSet<String> = seen.acked.keys().cloned().collect();
    let phantom = keys.difference(&acked_keys).next().cloned();
    let absent = acked_keys
        .iter()
        .find(|k| !tail_keys.contains(*k) && !keys.contains(*k))
        .cloned();
    expected -= lost_cents;
    let (a, b) = (
        dynamo.head(&tenant).await.map_err(|e| e.to_string())?,
        cosmos_store
            .head(&tenant)
            .await
            .map_err(|e| e.to_string())?,
    );

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
    if let Ok(f) = &failed_over {
        report.figure(
            &format!(
                "failover {} → {} (epoch {} → {})",
                f.from, f.to, f.epochs.0, f.epochs.1
            ),
            format!(
                "waited {} ms, promoted at seq {}, {:?} entries kept by the old primary",
                f.waited_millis, f.promoted_at.seq, f.lost_entries
            ),
        );
    }
    if let Some(r) = &reconciled {
        report.figure(
            "reconciliation: retried / other outcome / conflicting / lost / lost refusals",
            format!(
                "{} / {} / {} / {} / {}",
                r.count(TailClass::Retried),
                r.count(TailClass::RetriedOtherOutcome),
                r.count(TailClass::Conflicting),
                r.count(TailClass::Lost),
                r.count(TailClass::LostRefusal)
            ),
        );
    }
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
        "0 lost beyond the reconciliation report: every other acknowledged booking is on the final primary byte for byte, and the balances are the acknowledged sum minus what the report lists as lost",
        missing.is_empty() && held == expected,
        missing.first().cloned().unwrap_or_else(|| format!("balances {held} cents, acknowledged {expected} cents")),
    );
    report.check(
        "0 duplicated: one log entry per acknowledged write (those only the old primary kept aside)",
        keys.len() == log.len() && phantom.is_none() && absent.is_none(),
        format!(
            "{} entries, {} distinct keys, {} acknowledged; unacknowledged entry: {phantom:?}; missing: {absent:?}",
            log.len(),
            keys.len(),
            seen.acked.len()
        ),
    );
    report.check(
        "the failover completed, the old primary is fenced, and the loss it reported is what reconciliation classified",
        match (&failed_over, &reconciled) {
            (Ok(f), Some(r)) => {
                f.lost_entries == Some(r.entries.len() as u64)
                    && a.as_ref().map(|h| h.role)
                        == Some(paracell_domain::placement::TenantRole::Fenced)
            }
            _ => false,
        },
        match &failed_over {
            Ok(f) => format!(
                "reported {:?}, classified {} ({lost} lost); cell-aws is {:?}, cell-azure {:?}",
                f.lost_entries,
                reconciled.as_ref().map_or(0, |r| r.entries.len()),
                a.as_ref().map(|h| h.role),
                b.as_ref().map(|h| h.role)
            ),
            Err(e) => e.clone(),
        },
    );
    report.check(
        "every stream batch succeeded",
        pump_failures == 0,
        format!("{pump_failures} failed"),
    );
    report.check(
        "the client kept writing through the moves and the failover (some writes waited)",
        seen.frozen + seen.moved > 0,
        format!("{} waited", seen.paused.len()),
    );
    Ok(())
}
