//! What the example binaries share: choosing a cell's ports from the environment.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `PARACELL_STORE` | `memory`, `dynamodb` (feature `dynamodb`) or `cosmos` (feature `cosmos`) | `memory` |
//! | `PARACELL_STORE_PROVISION` | `1`: create the table / container at start-up if missing (local runs and tests; deployments create it with their template) | unset |
//! | `PARACELL_DETERMINISTIC` | `1`: stepping clock and sequential ids, for conformance runs against the binaries only | unset |
//! | `PARACELL_DEAD_LETTERS` | where the relay keeps what it could not deliver: `memory` (local runs only: lost on restart), `sqs` (feature `dynamodb`; `PARACELL_DEAD_LETTER_QUEUE_URL`), `cosmos` (feature `cosmos`; the cell's container) | `memory` |
//! | `PARACELL_RELAY_POLL_MS` | run the relay in process every N ms over the store's pending entries (local runs, and the Cosmos DB stand-in, which has no change feed); deployments relay from the stream or change feed | unset |
//!
//! | `PARACELL_EVENTBRIDGE_BUS` | publish each accepted transaction's CloudEvent to this EventBridge bus (feature `dynamodb`; `PARACELL_EVENTBRIDGE_ENDPOINT` overrides the endpoint) | unset |
//! | `PARACELL_EVENTGRID_ENDPOINT` | publish them to this Event Grid topic, with `PARACELL_EVENTGRID_KEY` (`aeg-sas-key`) or `PARACELL_EVENTGRID_AUTH=entra` (Microsoft Entra ID: the managed identity, else the developer's Azure CLI login; feature `entra`) | unset |
//!
//! The relay's peers come from the cell's `PARACELL_PEERS` and `PARACELL_PEER_SECRETS`
//! ([`paracell_domain::CellConfig`]); with no peer and no bus, there is no relay.
//!
//! The DynamoDB store reads `PARACELL_DYNAMODB_TABLE`, `PARACELL_DYNAMODB_ENDPOINT` and the AWS SDK's
//! usual settings ([`paracell_aws::outbound::dynamodb::DynamoConfig`] when built with `dynamodb`); the Cosmos DB
//! store reads `PARACELL_COSMOS_*` (`paracell_azure::outbound::cosmos::CosmosConfig` when built with `cosmos`).

#![deny(missing_docs)]

pub mod consumer;
pub mod edge;
pub mod http_client;
pub mod logs;
pub mod operator;
pub mod quorum;
pub mod quorum_admin;
pub mod telemetry;

use paracell_domain::memory::{MemoryDeadLetters, MemoryStore, SequentialIds, SteppingClock};
use paracell_domain::ports::{SystemClock, TransactionStore, UuidV7};
use paracell_domain::replication::relay::{DeadLetters, Destination, PeerDestination, Relay};
use paracell_domain::{Cell, CellConfig, CellPorts};
use std::sync::Arc;
use std::time::Duration;

/// The store `PARACELL_STORE` names, connected (and provisioned when `PARACELL_STORE_PROVISION=1`).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = paracell_examples::store_from_lookup(|_| None).await.unwrap();
/// # let _ = store;
/// let err = paracell_examples::store_from_lookup(|name| {
///     (name == "PARACELL_STORE").then(|| "postgres".to_string())
/// }).await.err().unwrap();
/// assert!(err.contains("postgres"));
/// # });
/// ```
pub async fn store_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Arc<dyn TransactionStore>, String> {
    let provision = lookup("PARACELL_STORE_PROVISION").is_some_and(|v| v == "1");
    let store = lookup("PARACELL_STORE").unwrap_or_else(|| "memory".into());
    let _ = provision; // used only by the database stores
    match store.as_str() {
        "memory" => Ok(Arc::new(MemoryStore::new())),
        #[cfg(feature = "dynamodb")]
        "dynamodb" => {
            use paracell_aws::outbound::dynamodb::{DynamoConfig, DynamoStore};
            let store = DynamoStore::connect(&DynamoConfig::from_lookup(&lookup)?).await;
            if provision {
                store
                    .create_table()
                    .await
                    .map_err(|e| format!("creating table {}: {e}", store.table()))?;
            }
            Ok(Arc::new(store))
        }
        #[cfg(feature = "cosmos")]
        "cosmos" => {
            use paracell_azure::outbound::cosmos::{CosmosConfig, CosmosStore};
            let config = CosmosConfig::from_lookup(&lookup)?;
            if provision {
                CosmosStore::provision(&config)
                    .await
                    .map_err(|e| format!("creating container {}: {e}", config.container))?;
            }
            let store = CosmosStore::connect(&config)
                .await
                .map_err(|e| format!("opening container {}: {e}", config.container))?;
            Ok(Arc::new(store))
        }
        #[cfg(not(feature = "dynamodb"))]
        "dynamodb" => Err(not_built_with("dynamodb")),
        #[cfg(not(feature = "cosmos"))]
        "cosmos" => Err(not_built_with("cosmos")),
        other => Err(format!(
            "PARACELL_STORE={other:?} is not a store: use memory, dynamodb or cosmos"
        )),
    }
}

#[cfg(not(all(feature = "dynamodb", feature = "cosmos")))]
fn not_built_with(store: &str) -> String {
    format!(
        "PARACELL_STORE={store}: this binary was built without the `{store}` feature \
         (cargo build -p paracell-examples --features {store})"
    )
}

/// The ports the environment asks for: the store ([`store_from_lookup`]) and, unless
/// `PARACELL_DETERMINISTIC=1`, the real clock and UUIDv7 ids.
pub async fn ports_from_env() -> Result<CellPorts, String> {
    let store = store_from_lookup(|name| std::env::var(name).ok()).await?;
    if std::env::var("PARACELL_DETERMINISTIC").is_ok_and(|v| v == "1") {
        tracing::warn!(
            "PARACELL_DETERMINISTIC=1: fixed clock and sequential ids (conformance runs only)"
        );
        return Ok(CellPorts {
            store,
            clock: Arc::new(SteppingClock::new(SteppingClock::CONFORMANCE_EPOCH, 1)),
            ids: Arc::new(SequentialIds::new(0x0190_0000_0000)),
        });
    }
    Ok(CellPorts {
        store,
        clock: Arc::new(SystemClock),
        ids: Arc::new(UuidV7),
    })
}

/// A cell on `ports`: the `make_cell` the adapters' entry points take.
///
/// ```
/// use paracell_domain::{CellConfig, TenantScope};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let ports = paracell_examples::ports_from_env().await.unwrap();
/// let cell = paracell_examples::cell_on(ports)(CellConfig::new("cell-a", TenantScope::All).unwrap());
/// assert_eq!(cell.config().cell_id.as_str(), "cell-a");
/// # });
/// ```
pub fn cell_on(ports: CellPorts) -> impl FnOnce(CellConfig) -> Cell {
    cell_with(ports, None)
}

/// How a cell proves it may still book for its tenants.
#[derive(Clone)]
pub enum Tenure {
    /// Per-tenant leases confirmed from the one-table registry or its replica.
    TenantLeases(paracell_domain::placement::lease::Ownership),
    /// One cell lease from the placement quorum ([`paracell_domain::placement::quorum::LeaseGate`]).
    CellLease {
        /// The quorum.
        quorum: Arc<paracell_domain::placement::quorum::QuorumRegistry>,
        /// The lease's timings.
        timing: paracell_domain::placement::quorum::LeaseTiming,
    },
}

/// [`cell_on`], under leases when `tenure` is given ([`ownership_from_lookup`]).
pub fn cell_with(ports: CellPorts, tenure: Option<Tenure>) -> impl FnOnce(CellConfig) -> Cell {
    move |config| {
        let mut cell = Cell::new(config, ports);
        // On a database a create that lost a race waits a random moment before reading again, so
        // writers of one tenant spread out (BENCHMARKS.md, write ceiling). Not in memory: its commits
        // take microseconds, below the timer's resolution, and a writer that pauses there only
        // falls further behind.
        if matches!(
            std::env::var("PARACELL_STORE").as_deref(),
            Ok("dynamodb" | "cosmos")
        ) {
            cell = cell.with_retry_pause(Arc::new(http_client::TokioSleep));
        }
        match tenure {
            Some(Tenure::TenantLeases(ownership)) => cell.with_ownership(ownership),
            Some(Tenure::CellLease { quorum, timing }) => {
                use paracell_domain::placement::quorum::{LeaseGate, LeaseHolder};
                let gate = LeaseGate::new(
                    cell.config().cell_id.clone(),
                    quorum,
                    Arc::new(paracell_domain::ports::ProcessClock::new()),
                    LeaseHolder::new(timing),
                );
                cell.with_lease_gate(Arc::new(gate))
            }
            None => cell,
        }
    }
}

/// Leases, when `PARACELL_PLACEMENT_SOURCE` names where ownership is confirmed: `quorum` (one cell
/// lease from the placement quorum `PARACELL_QUORUM` names, [`quorum`]; `PARACELL_LEASE_SECS`
/// default 12), or per-tenant leases from `dynamodb:<registry table>` (the one-table authority;
/// feature `dynamodb`) or `cosmos:<replica container>` (its Cosmos DB replica; feature `cosmos`),
/// where `PARACELL_LEASE_SECS` sets the lease (default 30, and `paracell-admin failover` must be
/// given the same). Unset: no leases.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// assert!(paracell_examples::ownership_from_lookup(|_| None).await.unwrap().is_none());
/// let err = paracell_examples::ownership_from_lookup(|n| {
///     (n == "PARACELL_PLACEMENT_SOURCE").then(|| "etcd:x".to_owned())
/// }).await.err().unwrap();
/// assert!(err.contains("etcd"));
/// # });
/// ```
pub async fn ownership_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<Tenure>, String> {
    use paracell_domain::placement::lease::{Ownership, PlacementSource};
    // Unset or empty (a template's default): no leases.
    let Some(spec) = lookup("PARACELL_PLACEMENT_SOURCE").filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if spec == "quorum" {
        let quorum = quorum::quorum_from_lookup(&lookup)
            .await?
            .ok_or("PARACELL_PLACEMENT_SOURCE=quorum needs PARACELL_QUORUM")?;
        let timing = quorum::lease_timing_from_lookup(&lookup)?;
        return Ok(Some(Tenure::CellLease { quorum, timing }));
    }
    let ttl = match lookup("PARACELL_LEASE_SECS") {
        None => 30,
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| format!("PARACELL_LEASE_SECS={v:?} is not a positive number"))?,
    };
    let (kind, name) = spec.split_once(':').unwrap_or((spec.as_str(), ""));
    let source = match kind {
        "dynamodb" | "cosmos" => {
            let lookup = |n: &str| match n {
                "PARACELL_REGISTRY" if kind == "dynamodb" => Some(spec.clone()),
                "PARACELL_REGISTRY_REPLICA" if kind == "cosmos" => Some(spec.clone()),
                other => lookup(other),
            };
            if kind == "dynamodb" {
                PlacementSource::Registry(operator::registry_from_lookup(lookup).await?)
            } else {
                PlacementSource::Replica(
                    operator::replica_from_lookup(lookup)
                        .await?
                        .ok_or("PARACELL_PLACEMENT_SOURCE: no replica")?,
                )
            }
        }
        other => {
            return Err(format!(
                "PARACELL_PLACEMENT_SOURCE={other:?}{}: use quorum, dynamodb:<registry table> or cosmos:<replica container>",
                if name.is_empty() { "" } else { ":…" }
            ));
        }
    };
    Ok(Some(Tenure::TenantLeases(Ownership {
        source,
        ttl: Duration::from_secs(ttl),
    })))
}

/// The dead-letter place `PARACELL_DEAD_LETTERS` names.
pub async fn dead_letters_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Arc<dyn DeadLetters>, String> {
    let kind = lookup("PARACELL_DEAD_LETTERS").unwrap_or_else(|| "memory".into());
    match kind.as_str() {
        "memory" => Ok(Arc::new(MemoryDeadLetters::new())),
        #[cfg(feature = "dynamodb")]
        "sqs" => {
            use paracell_aws::outbound::sqs::{SqsConfig, SqsDeadLetters};
            Ok(Arc::new(
                SqsDeadLetters::connect(&SqsConfig::from_lookup(&lookup)?).await,
            ))
        }
        #[cfg(feature = "cosmos")]
        "cosmos" => {
            use paracell_azure::outbound::cosmos::{CosmosConfig, CosmosDeadLetters, CosmosStore};
            let store = CosmosStore::connect(&CosmosConfig::from_lookup(&lookup)?)
                .await
                .map_err(|e| format!("dead letters: {e}"))?;
            Ok(Arc::new(CosmosDeadLetters::new(store)))
        }
        #[cfg(not(feature = "dynamodb"))]
        "sqs" => Err(not_built_with("dynamodb")),
        #[cfg(not(feature = "cosmos"))]
        "cosmos" => Err(not_built_with("cosmos")),
        other => Err(format!(
            "PARACELL_DEAD_LETTERS={other:?} is not a dead-letter place: use memory, sqs or cosmos"
        )),
    }
}

/// The relay the configuration asks for: one destination per peer in `PARACELL_PEERS`, signed with
/// its secret, over HTTP(S), plus the event buses ([`buses_from_lookup`]); dead letters from
/// [`dead_letters_from_lookup`]. `None` without peers and buses.
///
/// The relay keeps real time and real ids whatever the cell's ports are: deliveries are signed with
/// the time a peer checks against its 300 s window, dead letters are stamped with the time an
/// operator reads, and a cell's deterministic ports (conformance runs) must see the same calls on
/// every cloud, which a relay running at its own moments would break.
pub async fn relay_from_lookup(
    config: &CellConfig,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<Relay>, String> {
    let clock: Arc<dyn paracell_domain::ports::Clock> = Arc::new(SystemClock);
    let client: Arc<dyn paracell_domain::ports::HttpClient> =
        Arc::new(http_client::HyperClient::new());
    let mut destinations = buses_from_lookup(&lookup, client.clone()).await?;
    if config.replication.peers.is_empty() && destinations.is_empty() {
        return Ok(None);
    }
    for peer in &config.replication.peers {
        let secret = config
            .replication
            .secret_for(&peer.cell)
            .ok_or_else(|| format!("no secret for peer {}", peer.cell))?;
        destinations.push(Arc::new(
            PeerDestination::new(
                &peer.base_url,
                secret.clone(),
                client.clone(),
                clock.clone(),
                Arc::new(UuidV7),
            )
            // While a secret is rotated, every delivery carries one signature per secret.
            .with_more_secrets(config.replication.secrets_for(&peer.cell)),
        ));
    }
    Ok(Some(Relay::new(
        destinations,
        dead_letters_from_lookup(lookup).await?,
        Arc::new(http_client::TokioSleep),
        clock,
    )))
}

/// The event buses the environment names: `PARACELL_EVENTBRIDGE_BUS` and `PARACELL_EVENTGRID_ENDPOINT`.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let client = std::sync::Arc::new(paracell_examples::http_client::HyperClient::new());
/// let env = |n: &str| match n {
///     "PARACELL_EVENTGRID_ENDPOINT" => Some("http://127.0.0.1:8082".to_string()),
///     "PARACELL_EVENTGRID_KEY" => Some("key".to_string()),
///     _ => None,
/// };
/// let buses = paracell_examples::buses_from_lookup(env, client.clone()).await.unwrap();
/// assert_eq!(buses[0].name(), "eventgrid:127.0.0.1:8082");
/// let keyless = |n: &str| (n == "PARACELL_EVENTGRID_ENDPOINT").then(|| "http://x".to_string());
/// assert!(paracell_examples::buses_from_lookup(keyless, client).await.is_err());
/// # });
/// ```
pub async fn buses_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
    client: Arc<dyn paracell_domain::ports::HttpClient>,
) -> Result<Vec<Arc<dyn Destination>>, String> {
    Ok(named_buses(lookup, client)
        .await?
        .into_iter()
        .map(Bus::destination)
        .collect())
}

/// Where a failover controller publishes its decisions
/// ([`paracell_domain::placement::quorum::events`]): the bus its cloud's cells publish to, named by
/// the same variables (`PARACELL_EVENTBRIDGE_BUS` on AWS, `PARACELL_EVENTGRID_ENDPOINT` with its key
/// or `PARACELL_EVENTGRID_AUTH=entra` on Azure); `None` when neither is set (the ticks are logged
/// only). Both set is refused: a decision goes to one bus, its own cloud's.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let client = std::sync::Arc::new(paracell_examples::http_client::HyperClient::new());
/// let env = |n: &str| match n {
///     "PARACELL_EVENTGRID_ENDPOINT" => Some("http://127.0.0.1:8082".to_string()),
///     "PARACELL_EVENTGRID_KEY" => Some("key".to_string()),
///     _ => None,
/// };
/// let events = paracell_examples::decision_events_from_lookup(env, client.clone()).await.unwrap();
/// assert_eq!(events.unwrap().bus(), "eventgrid:127.0.0.1:8082");
/// assert!(paracell_examples::decision_events_from_lookup(|_| None, client).await.unwrap().is_none());
/// # });
/// ```
pub async fn decision_events_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
    client: Arc<dyn paracell_domain::ports::HttpClient>,
) -> Result<Option<paracell_domain::placement::quorum::events::DecisionEvents>, String> {
    use paracell_domain::placement::quorum::events::DecisionEvents;
    let mut buses = named_buses(lookup, client).await?;
    if buses.len() > 1 {
        return Err(
            "a controller publishes to one bus: set PARACELL_EVENTBRIDGE_BUS or \
             PARACELL_EVENTGRID_ENDPOINT, not both"
                .into(),
        );
    }
    Ok(buses.pop().map(|bus| {
        DecisionEvents::new(
            bus.publisher(),
            Arc::new(UuidV7),
            Arc::new(paracell_domain::ports::SystemClock),
        )
    }))
}

/// A bus the environment names: a relay destination for the cells' events and a publisher for a
/// controller's decisions.
enum Bus {
    #[cfg(feature = "dynamodb")]
    EventBridge(Arc<paracell_aws::outbound::eventbridge::EventBridgeBus>),
    EventGrid(Arc<paracell_azure::outbound::eventgrid::EventGridTopic>),
}

impl Bus {
    fn destination(self) -> Arc<dyn Destination> {
        match self {
            #[cfg(feature = "dynamodb")]
            Self::EventBridge(bus) => bus,
            Self::EventGrid(topic) => topic,
        }
    }

    fn publisher(self) -> Arc<dyn paracell_domain::placement::quorum::events::EventPublisher> {
        match self {
            #[cfg(feature = "dynamodb")]
            Self::EventBridge(bus) => bus,
            Self::EventGrid(topic) => topic,
        }
    }
}

async fn named_buses(
    lookup: impl Fn(&str) -> Option<String>,
    client: Arc<dyn paracell_domain::ports::HttpClient>,
) -> Result<Vec<Bus>, String> {
    use paracell_azure::outbound::eventgrid::{EventGridTopic, TopicAuth};
    let set = |name: &str| lookup(name).filter(|v| !v.is_empty());
    let mut buses = Vec::new();
    if let Some(bus) = set("PARACELL_EVENTBRIDGE_BUS") {
        #[cfg(feature = "dynamodb")]
        {
            use paracell_aws::outbound::eventbridge::{EventBridgeBus, SdkEventBridge};
            let api =
                SdkEventBridge::connect(set("PARACELL_EVENTBRIDGE_ENDPOINT").as_deref()).await;
            buses.push(Bus::EventBridge(Arc::new(EventBridgeBus::new(
                &bus,
                Arc::new(api),
            ))));
        }
        #[cfg(not(feature = "dynamodb"))]
        return Err(format!(
            "PARACELL_EVENTBRIDGE_BUS={bus}: this binary was built without the `dynamodb` feature"
        ));
    }
    if let Some(endpoint) = set("PARACELL_EVENTGRID_ENDPOINT") {
        if set("PARACELL_EVENTGRID_TOKEN").is_some() {
            return Err(
                "PARACELL_EVENTGRID_TOKEN is no longer read: a static token expires and \
                        every publish after that fails. Use PARACELL_EVENTGRID_AUTH=entra (the \
                        managed identity) or PARACELL_EVENTGRID_KEY"
                    .into(),
            );
        }
        let auth = match (
            set("PARACELL_EVENTGRID_KEY"),
            set("PARACELL_EVENTGRID_AUTH").as_deref(),
        ) {
            (Some(key), None | Some("key")) => TopicAuth::SasKey(key),
            (None, Some("entra")) => entra_tokens()?,
            _ => {
                return Err(
                    "PARACELL_EVENTGRID_ENDPOINT needs PARACELL_EVENTGRID_KEY or \
                     PARACELL_EVENTGRID_AUTH=entra (one of them)"
                        .into(),
                );
            }
        };
        buses.push(Bus::EventGrid(Arc::new(EventGridTopic::new(
            &endpoint, auth, client,
        ))));
    }
    Ok(buses)
}

/// Event Grid's Entra ID tokens (feature `entra`).
fn entra_tokens() -> Result<paracell_azure::outbound::eventgrid::TopicAuth, String> {
    #[cfg(feature = "entra")]
    {
        use paracell_azure::outbound::entra::{EVENT_GRID_SCOPE, EntraTokens, credential};
        Ok(paracell_azure::outbound::eventgrid::TopicAuth::Entra(
            Arc::new(EntraTokens::new(credential()?, EVENT_GRID_SCOPE)),
        ))
    }
    #[cfg(not(feature = "entra"))]
    Err("PARACELL_EVENTGRID_AUTH=entra: this binary was built without the `entra` feature".into())
}

/// Runs the relay over the store's pending entries every `PARACELL_RELAY_POLL_MS` milliseconds, in
/// the background, when that variable is set (local runs and the Cosmos DB stand-in; deployments
/// relay from the DynamoDB stream or the Cosmos DB change feed instead).
pub fn spawn_pull_relay(store: Arc<dyn TransactionStore>, relay: Option<Relay>) {
    let every = std::env::var("PARACELL_RELAY_POLL_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms > 0);
    let (Some(relay), Some(every)) = (relay, every) else {
        return;
    };
    tokio::spawn(async move {
        loop {
            match paracell_domain::replication::relay::relay_pending(store.as_ref(), &relay, 100)
                .await
            {
                Ok(report) if !report.relayed.is_empty() || !report.failed.is_empty() => {
                    tracing::info!(summary = report.summary().as_str(), "relay");
                }
                Ok(_) => {}
                Err(e) => tracing::error!(cause = %e, "relay: the store failed"),
            }
            tokio::time::sleep(Duration::from_millis(every)).await;
        }
    });
}
