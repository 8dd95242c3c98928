//! The replication drill, in process: an AWS cell (behind the Lambda adapter, relaying from DynamoDB
//! Streams events) and an Azure cell (behind the custom handler, relaying from Cosmos DB trigger
//! invocations), each the primary of one tenant and the standby of the other's. A seeded workload
//! of creates, retries and refused debits goes to each tenant's primary through a random front door;
//! the relays run at random moments on random splits of their pending entries, invoked in random
//! order and sometimes twice (reordering and duplicates), delivering through the peer's envelopes.
//! At the end both cells must hold exactly the same state and answer every read alike.

pub use super::Options;
use super::{
    DrillReport, RelayHost, Rng, count_percentiles, create_request, percentiles, random_groups,
    read_request,
};
use crate::envelopes::{Envelope, aws, azure};
use crate::pairs::ledger;
use crate::request::ClientRequest;
use crate::runner;
use paracell_aws::LambdaCell;
use paracell_azure::{AzureConfig, AzureHandler, Mode};
use paracell_domain::memory::{MemoryDeadLetters, MemoryStore, NoSleep};
use paracell_domain::ports::{
    HttpClient, OutboundRequest, OutboundResponse, SystemClock, TransactionStore, TransportError,
    UuidV7,
};
use paracell_domain::replication::SealedEntry;
use paracell_domain::replication::relay::{DeadLetters, PeerDestination, Relay, RelayPolicy};
use paracell_domain::replication::signature::PeerSecret;
use paracell_domain::testing::{DeadLettersDown, RefusesSeqs};
use paracell_domain::{Cell, CellConfig, CellId, CellPorts, TenantId, TenantScope};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "whsec_ZHJpbGwtcmVwbGljYXRpb24tc2hhcmVkLXNlY3JldA==";
pub(crate) const AWS_DOORS: [Envelope; 6] = [
    Envelope::AwsApigwV1,
    Envelope::AwsApigwV2,
    Envelope::AwsApigwV2Stage,
    Envelope::AwsFunctionUrl,
    Envelope::AwsAlb,
    Envelope::AwsAlbMultivalue,
];
pub(crate) const AZURE_DOORS: [Envelope; 2] = [Envelope::AzurePayload, Envelope::AzureForwarding];

/// An HTTP client that reaches a cell through one of its platform's envelopes, chosen at random per
/// request: the relay's deliveries cross the same translation code a real delivery crosses.
struct EnvelopeClient {
    base: String,
    cell: Cell,
    doors: &'static [Envelope],
    rng: Mutex<Rng>,
}

#[async_trait::async_trait]
impl HttpClient for EnvelopeClient {
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, TransportError> {
        let rest = request
            .url
            .strip_prefix(&self.base)
            .ok_or_else(|| TransportError::Connect(format!("nothing at {}", request.url)))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let envelope = {
            let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
            self.doors[usize::try_from(rng.below(self.doors.len() as u64)).unwrap_or(0)]
        };
        let client = ClientRequest {
            method: request.method,
            path: path.to_owned(),
            query: query.to_owned(),
            headers: request.headers,
            body: request.body,
            chunked: false,
            authenticated_tenant: None,
        };
        let mut driver = runner::driver(envelope, self.cell.clone());
        driver.exchange(envelope, &client, 0).await.into_outbound()
    }
}

pub(crate) struct Side {
    pub(crate) name: &'static str,
    pub(crate) cell: Cell,
    pub(crate) store: Arc<MemoryStore>,
    pub(crate) dead: Arc<MemoryDeadLetters>,
    pub(crate) doors: &'static [Envelope],
}

pub(crate) fn side(
    name: &'static str,
    id: &str,
    peer: &str,
    doors: &'static [Envelope],
) -> Result<Side, String> {
    side_with(name, id, peer, doors, Arc::new(SystemClock), None)
}

/// A side on `clock`, under primary leases when `ownership` is given.
pub(crate) fn side_with(
    name: &'static str,
    id: &str,
    peer: &str,
    doors: &'static [Envelope],
    clock: Arc<dyn paracell_domain::ports::Clock>,
    ownership: Option<paracell_domain::placement::lease::Ownership>,
) -> Result<Side, String> {
    let mut config = CellConfig::new(id, TenantScope::All).map_err(|e| e.to_string())?;
    let peer = CellId::parse(peer).map_err(|e| e.to_string())?;
    config.replication.secrets = vec![PeerSecret::parse(peer, SECRET).map_err(|e| e.to_string())?];
    let store = Arc::new(MemoryStore::new());
    let cell = Cell::new(
        config,
        CellPorts {
            store: store.clone(),
            clock,
            ids: Arc::new(UuidV7),
        },
    );
    let cell = match ownership {
        Some(ownership) => cell.with_ownership(ownership),
        None => cell,
    };
    Ok(Side {
        name,
        cell,
        store,
        dead: Arc::new(MemoryDeadLetters::new()),
        doors,
    })
}

pub(crate) fn relay_to(from: &Side, to: &Side, seed: u64) -> Result<Relay, String> {
    let to_id = to.cell.config().cell_id.clone();
    let base = format!("http://{to_id}");
    let client = EnvelopeClient {
        base: base.clone(),
        cell: to.cell.clone(),
        doors: to.doors,
        rng: Mutex::new(Rng::new(seed)),
    };
    let secret = PeerSecret::parse(to_id, SECRET).map_err(|e| e.to_string())?;
    let peer = PeerDestination::new(
        &base,
        secret,
        Arc::new(client),
        from.cell.ports().clock.clone(),
        from.cell.ports().ids.clone(),
    );
    Ok(Relay::new(
        vec![Arc::new(peer)],
        from.dead.clone(),
        Arc::new(NoSleep),
        from.cell.ports().clock.clone(),
    )
    .with_policy(RelayPolicy {
        max_attempts: 3,
        ..RelayPolicy::default()
    }))
}

#[derive(Default)]
struct Chaos {
    rounds: usize,
    deliveries: usize,
    duplicates: usize,
    reorders: usize,
    relayed: usize,
    failed_invocations: usize,
    /// Entries a side received as a standby and its feed already carried: (side, tenant, seq).
    fed_received: BTreeSet<(&'static str, String, u64)>,
}

/// What the workload acknowledged.
#[derive(Default)]
struct Acks {
    /// (tenant, key) → when the client got its answer.
    acked_at: BTreeMap<(String, String), Instant>,
    /// Locations of booked transactions, with their tenant.
    locations: Vec<(String, String)>,
    /// Accounts written, per tenant.
    accounts: BTreeSet<(String, String)>,
    /// Retries that did not replay.
    bad_replays: usize,
    /// Answers other than 201, 409 insufficient-funds and replays.
    unexpected: Vec<String>,
}

/// Runs one relay round on `side`: its pending entries, split into up to three groups invoked in a
/// random order, each sometimes twice; returns the delivery lag samples (entry committed → relayed).
async fn relay_round(
    side: &Side,
    host: RelayHost<'_>,
    rng: &mut Rng,
    chaos: &mut Chaos,
    acks: &Acks,
    lags: &mut Vec<Duration>,
) -> Result<(), String> {
    let pending = side
        .store
        .pending_entries(None, 10_000)
        .await
        .map_err(|e| e.to_string())?
        .entries;
    // The entries this side received as the other tenant's standby since the last round: its table's
    // stream (its container's change feed) carries them too, and the relay must leave them alone.
    let standby_of = if side.name == "aws" {
        "coop-azure"
    } else {
        "coop-aws"
    };
    let tenant = paracell_domain::TenantId::parse(standby_of).map_err(|e| e.to_string())?;
    let received: Vec<_> = side
        .store
        .entries_after(&tenant, 0, 100_000)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|e| {
            chaos
                .fed_received
                .insert((side.name, e.tenant().to_string(), e.seq()))
        })
        .collect();
    if pending.is_empty() {
        if !received.is_empty() {
            let received: Vec<_> = received.iter().collect();
            if !host.invoke_with_received(&[], &received, rng).await? {
                chaos.failed_invocations += 1;
            }
        }
        return Ok(());
    }
    chaos.rounds += 1;
    let split = random_groups(&pending, rng);
    if !split.is_sorted_by_key(|g| (g[0].tenant().clone(), g[0].seq())) {
        chaos.reorders += 1;
    }
    let received: Vec<_> = received.iter().collect();
    for (n, group) in split.iter().enumerate() {
        let times = if rng.chance(20) { 2 } else { 1 };
        chaos.duplicates += times - 1;
        // The received entries ride with the first group, as they would share a feed batch.
        let received: &[_] = if n == 0 { &received } else { &[] };
        for _ in 0..times {
            chaos.deliveries += 1;
            if !host.invoke_with_received(group, received, rng).await? {
                chaos.failed_invocations += 1;
            }
        }
        chaos.relayed += group.len();
        let now = Instant::now();
        for entry in group {
            let key = (entry.tenant().to_string(), entry.entry().key.to_string());
            if let Some(at) = acks.acked_at.get(&key) {
                lags.push(now.saturating_duration_since(*at));
            }
        }
    }
    let _ = side.name;
    Ok(())
}

/// Runs the drill.
pub fn run(options: Options) -> DrillReport {
    super::run_on_runtime(0, async |report| drill(options, report).await)
}

async fn drill(options: Options, report: &mut DrillReport) -> Result<(), String> {
    let started = Instant::now();
    let aws_side = side("aws", "cell-aws", "cell-azure", &AWS_DOORS)?;
    let azure_side = side("azure", "cell-azure", "cell-aws", &AZURE_DOORS)?;
    let lambda = LambdaCell::new(aws_side.cell.clone()).with_relay(relay_to(
        &aws_side,
        &azure_side,
        options.seed ^ 1,
    )?);
    let handler = AzureHandler::with_relay(
        azure_side.cell.clone(),
        AzureConfig {
            mode: Mode::Payload,
            ..AzureConfig::default()
        },
        relay_to(&azure_side, &aws_side, options.seed ^ 2)?,
    );
    let mut rng = Rng::new(options.seed);
    let mut acks = Acks::default();
    let mut chaos = Chaos::default();
    let mut lags = Vec::new();
    let mut entry_lag: Vec<u64> = Vec::new();
    let mut sent: Vec<(String, String, ClientRequest)> = Vec::new();
    let mut next_relay = rng.below(8) + 1;
    for i in 0..options.writes {
        // coop-aws lives on the AWS cell, coop-azure on the Azure cell; each is the other's standby.
        let (tenant, primary) = if rng.chance(50) {
            ("coop-aws", &aws_side)
        } else {
            ("coop-azure", &azure_side)
        };
        let retry = !sent.is_empty() && rng.chance(10);
        let (key, request) = if retry {
            let pick = usize::try_from(rng.below(sent.len() as u64)).unwrap_or(0);
            let (t, k, r) = sent[pick].clone();
            if t != tenant {
                continue;
            }
            (k, r)
        } else {
            let account = if rng.chance(50) { "ACC-1" } else { "ACC-2" };
            let debit = rng.chance(40);
            let key = format!("k-{i}");
            let request = create_request(tenant, &key, account, debit, rng.below(50_000) + 1);
            acks.accounts
                .insert((tenant.to_owned(), account.to_owned()));
            sent.push((tenant.to_owned(), key.clone(), request.clone()));
            (key, request)
        };
        let door =
            primary.doors[usize::try_from(rng.below(primary.doors.len() as u64)).unwrap_or(0)];
        let response = match door {
            Envelope::AzurePayload | Envelope::AzureForwarding => {
                let host = azure::host_request(door, &request, &format!("inv-{i}"));
                let reply = AzureHandler::new(
                    primary.cell.clone(),
                    AzureConfig {
                        mode: if door == Envelope::AzurePayload {
                            Mode::Payload
                        } else {
                            Mode::Forwarding
                        },
                        route_prefix: paracell_azure::RoutePrefix::new(azure::ROUTE_PREFIX),
                        ..AzureConfig::default()
                    },
                )
                .invoke(host)
                .await;
                azure::client_view(door, &request.method, &reply)
            }
            _ => {
                let event = aws::event(door, &request);
                let bytes = LambdaCell::new(primary.cell.clone())
                    .invoke(&serde_json::to_vec(&event).unwrap_or_default())
                    .await
                    .map_err(|e| e.to_string())?;
                let json: serde_json::Value =
                    serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
                aws::client_view(door, &request.method, &json)?
            }
        };
        let replayed = response.header("idempotent-replayed") == Some("true");
        match (response.status, retry) {
            (201 | 409, _) if retry && !replayed => acks.bad_replays += 1,
            (201, false) => {
                if let Some(location) = response.header("location") {
                    acks.locations
                        .push((tenant.to_owned(), location.to_owned()));
                }
                acks.acked_at
                    .insert((tenant.to_owned(), key.clone()), Instant::now());
            }
            (409, false) => {
                acks.acked_at
                    .insert((tenant.to_owned(), key.clone()), Instant::now());
            }
            (201 | 409, true) => {}
            (status, _) => acks.unexpected.push(format!(
                "{tenant} {key}: {status} {}",
                String::from_utf8_lossy(&response.body)
            )),
        }
        next_relay -= 1;
        if next_relay == 0 {
            next_relay = rng.below(8) + 1;
            for s in [&aws_side, &azure_side] {
                let pending = s
                    .store
                    .pending_entries(None, 10_000)
                    .await
                    .map_err(|e| e.to_string())?;
                entry_lag.push(pending.entries.len() as u64);
            }
            relay_round(
                &aws_side,
                RelayHost::Lambda(&lambda),
                &mut rng,
                &mut chaos,
                &acks,
                &mut lags,
            )
            .await?;
            relay_round(
                &azure_side,
                RelayHost::Azure(&handler),
                &mut rng,
                &mut chaos,
                &acks,
                &mut lags,
            )
            .await?;
        }
    }
    // Drain: relay until nothing is pending on either side.
    for _ in 0..10 {
        relay_round(
            &aws_side,
            RelayHost::Lambda(&lambda),
            &mut rng,
            &mut chaos,
            &acks,
            &mut lags,
        )
        .await?;
        relay_round(
            &azure_side,
            RelayHost::Azure(&handler),
            &mut rng,
            &mut chaos,
            &acks,
            &mut lags,
        )
        .await?;
    }
    let mut remaining = 0;
    for s in [&aws_side, &azure_side] {
        remaining += s
            .store
            .pending_entries(None, 10_000)
            .await
            .map_err(|e| e.to_string())?
            .entries
            .len();
    }

    // Figures.
    let (lag_p50, lag_p99, lag_max) = percentiles(&mut lags);
    let (e50, e99, emax) = count_percentiles(&mut entry_lag);
    report.figure("writes", options.writes);
    report.figure("acknowledged (201 or 409)", acks.acked_at.len());
    report.figure("entries relayed", chaos.relayed);
    report.figure("relay invocations", chaos.deliveries);
    report.figure("duplicate invocations injected", chaos.duplicates);
    report.figure("rounds delivered out of order", chaos.reorders);
    report.figure(
        "lag, entries pending per round (p50/p99/max)",
        format!("{e50} / {e99} / {emax}"),
    );
    report.figure(
        "lag, commit → relayed (p50/p99/max)",
        format!("{lag_p50:.2?} / {lag_p99:.2?} / {lag_max:.2?}"),
    );
    report.figure("seed", options.seed);
    report.figure("elapsed", format!("{:.2?}", started.elapsed()));

    // Checks.
    report.check(
        "every write answered 201, 409 or a replay",
        acks.unexpected.is_empty(),
        acks.unexpected.first().cloned().unwrap_or_default(),
    );
    report.check(
        "every retry replayed the first outcome",
        acks.bad_replays == 0,
        format!("{} did not", acks.bad_replays),
    );
    report.check(
        "every relay invocation succeeded",
        chaos.failed_invocations == 0,
        format!("{} failed", chaos.failed_invocations),
    );
    report.check(
        "nothing left pending",
        remaining == 0,
        format!("{remaining} pending"),
    );
    let mut letters = 0;
    for s in [&aws_side, &azure_side] {
        letters += s.dead.list(1_000).await.map_err(|e| e.to_string())?.len();
    }
    report.check(
        "no entry dead-lettered (no divergence, no poison)",
        letters == 0,
        format!("{letters} dead letters"),
    );
    let (a, b) = (ledger(&aws_side.store), ledger(&azure_side.store));
    report.check(
        "both cells hold the same state (transactions, balances, idempotency records, positions)",
        a == b,
        if a == b {
            String::new()
        } else {
            "the snapshots differ".into()
        },
    );
    let mut reads = 0;
    let mut differing = Vec::new();
    let mut missing = 0;
    let get = read_request;
    let mut probes: Vec<ClientRequest> = acks.locations.iter().map(|(t, l)| get(t, l)).collect();
    probes.extend(
        acks.accounts
            .iter()
            .map(|(t, a)| get(t, &format!("/v1/accounts/{a}/balances"))),
    );
    for probe in probes {
        reads += 1;
        let api = |c: &ClientRequest| paracell_domain::http::ApiRequest {
            method: c.method.clone(),
            path: c.path.clone(),
            query: String::new(),
            headers: c.headers.iter().cloned().collect(),
            body: Vec::new(),
            authenticated_tenant: None,
        };
        let x = aws_side.cell.handle(api(&probe)).await;
        let y = azure_side.cell.handle(api(&probe)).await;
        if x.status != 200 || y.status != 200 {
            missing += 1;
        }
        if (x.status, &x.headers, &x.body) != (y.status, &y.headers, &y.body) {
            differing.push(probe.path.clone());
        }
    }
    report.figure("reads compared", reads);
    report.check(
        "every acknowledged transaction and balance is on both cells",
        missing == 0,
        format!("{missing} missing"),
    );
    report.check(
        "both cells answer every read byte for byte",
        differing.is_empty(),
        differing.first().cloned().unwrap_or_default(),
    );
    if options.writes >= 100 {
        report.check(
            "duplicates and reordering were injected",
            chaos.duplicates > 0 && chaos.reorders > 0,
            format!(
                "{} duplicates, {} reordered rounds",
                chaos.duplicates, chaos.reorders
            ),
        );
    }
    let _ = TenantId::parse("coop-aws");
    partial_failures(report).await
}

/// A relay that cannot place one entry anywhere must say so to its platform, so that exactly what
/// failed is retried: on AWS the batch answer names the first failed record (Lambda retries it and
/// what follows, never what came before); on Azure the change-feed invocation fails (the host retries
/// it) and only the unrelayable entry stays pending. Both cells book three transactions of one tenant; the second entry is refused by the
/// destination and cannot be dead-lettered.
async fn partial_failures(report: &mut DrillReport) -> Result<(), String> {
    let relay = || {
        Relay::new(
            vec![Arc::new(RefusesSeqs(vec![2]))],
            Arc::new(DeadLettersDown),
            Arc::new(NoSleep),
            Arc::new(SystemClock),
        )
    };
    let book = async |cell: &Cell| -> Result<Vec<SealedEntry>, String> {
        for n in 1..=3 {
            let request = create_request("coop-partial", &format!("p-{n}"), "ACC-1", false, 100);
            let answer = runner::reference_request(&request);
            let response = cell.handle(answer).await;
            if response.status != 201 {
                return Err(format!(
                    "a partial-failure booking answered {}",
                    response.status
                ));
            }
        }
        let tenant = TenantId::parse("coop-partial").map_err(|e| e.to_string())?;
        cell.ports()
            .store
            .entries_after(&tenant, 0, 10)
            .await
            .map_err(|e| e.to_string())
    };

    let aws = side("aws", "cell-aws-p", "cell-azure-p", &AWS_DOORS)?;
    let entries = book(&aws.cell).await?;
    let lambda = LambdaCell::new(aws.cell.clone()).with_relay(relay());
    let numbered: Vec<(u64, &SealedEntry)> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (700 + i as u64, e))
        .collect();
    let event = aws::stream_event(&numbered);
    let answer = lambda
        .invoke(&serde_json::to_vec(&event).map_err(|e| e.to_string())?)
        .await
        .map_err(|e| e.to_string())?;
    let answer: serde_json::Value = serde_json::from_slice(&answer).map_err(|e| e.to_string())?;
    let expected = serde_json::json!({"batchItemFailures": [{"itemIdentifier": "701"}]});
    report.check(
        "AWS: a stream batch with one unrelayable entry names exactly that record",
        answer == expected,
        answer,
    );

    let azure = side("azure", "cell-azure-p", "cell-aws-p", &AZURE_DOORS)?;
    let entries = book(&azure.cell).await?;
    let handler = AzureHandler::with_relay(
        azure.cell.clone(),
        AzureConfig {
            mode: Mode::Payload,
            ..AzureConfig::default()
        },
        relay(),
    );
    let group: Vec<&SealedEntry> = entries.iter().collect();
    // The invocation is only a hint: whatever documents it names, the relay delivers the store's
    // pending entries, marks those it relayed, and fails while one stays unrelayable.
    let failed = handler
        .invoke(azure::change_feed_invocation(&group[..1], "partial"))
        .await
        .status;
    let pending: Vec<u64> = azure
        .cell
        .ports()
        .store
        .pending_entries(None, 10)
        .await
        .map_err(|e| e.to_string())?
        .entries
        .iter()
        .map(SealedEntry::seq)
        .collect();
    report.check(
        "Azure: a change-feed invocation fails while an entry stays unrelayable, and only that entry stays pending",
        failed == 500 && pending == vec![2],
        format!("{failed}, pending {pending:?}"),
    );
    Ok(())
}
