//! The placement quorum from the environment: which acceptors, in which failure domains, proposing
//! under which id, and the cell lease's timings.
//!
//! | variable | meaning |
//! |---|---|
//! | `PARACELL_QUORUM` | the acceptors, comma-separated, the host's own cloud first (the edge router reads them in this order): `dynamodb:<table>` (AWS, feature `dynamodb`), `cosmos:<container>` (Azure, feature `cosmos`), `gcs:<bucket>` (the witness on Google Cloud Storage), `memory:<domain>` (in-process tests only). Three, in three failure domains. |
//! | `PARACELL_PROPOSER_ID` | this process's ballot id (a positive integer, never shared); unset: a random 62-bit one per process — what serverless hosts should do |
//! | `PARACELL_GCS_ENDPOINT`, `PARACELL_GCS_PREFIX` | the witness's endpoint (default the public one) and object prefix (default `paracell/`) |
//! | `PARACELL_GCS_AUTH` | `none` for the local stand-in; no token source for the real service is built yet (workload identity federation), so anything else is refused |
//! | `PARACELL_LEASE_SECS` | the cell lease L (default 12; renewal every L/3, stop 2 s early, promoter margin 2.5 s) |
//! | `PARACELL_ACCEPTOR_TIMEOUT_MS` | the deadline of each call to an acceptor (default 2000): past it the call counts as that acceptor's silence |
//!
//! The DynamoDB and Cosmos DB acceptors reach their services with the cells' usual settings
//! (`PARACELL_DYNAMODB_ENDPOINT`, `PARACELL_COSMOS_*`); `PARACELL_STORE_PROVISION=1` creates the
//! tables, containers and bucket (local runs and tests).

use paracell_domain::placement::quorum::{
    Accepted, Acceptor, AcceptorError, Ballot, CasAcceptor, LeaseTiming, MemoryAcceptor,
    QuorumRegistry,
};
use paracell_domain::ports::{IdGenerator, StoreError};
use std::sync::Arc;
use std::time::Duration;

/// The quorum registry `PARACELL_QUORUM` names; `None` when unset.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use paracell_examples::quorum::quorum_from_lookup;
/// assert!(quorum_from_lookup(|_| None).await.unwrap().is_none());
/// let three = |n: &str| (n == "PARACELL_QUORUM").then(|| "memory:aws,memory:azure,memory:gcp".to_owned());
/// assert!(quorum_from_lookup(three).await.unwrap().is_some());
/// let same_cloud = |n: &str| (n == "PARACELL_QUORUM").then(|| "memory:aws,memory:aws,memory:gcp".to_owned());
/// assert!(quorum_from_lookup(same_cloud).await.err().unwrap().contains("failure domain"));
/// # });
/// ```
pub async fn quorum_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<Arc<QuorumRegistry>>, String> {
    if lookup("PARACELL_QUORUM").is_none_or(|s| s.is_empty()) {
        return Ok(None);
    }
    let acceptors = acceptors_from_lookup(&lookup).await?;
    let proposer = match lookup("PARACELL_PROPOSER_ID") {
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| format!("PARACELL_PROPOSER_ID={v:?} is not a positive integer"))?,
        // UUIDv7's low 62 bits are random: a fresh id per process, never reused after a restart.
        None => paracell_domain::ports::UuidV7.next_id().as_u64_pair().1 | 1,
    };
    QuorumRegistry::new(acceptors, proposer)
        .map(|q| Some(Arc::new(q)))
        .map_err(|e| format!("PARACELL_QUORUM: {e}"))
}

/// The acceptors `PARACELL_QUORUM` names, in its order (empty when unset).
///
/// Each acceptor's calls have a deadline (`PARACELL_ACCEPTOR_TIMEOUT_MS`, default 2 s): a round
/// waits for a black-holed acceptor only when it cannot decide without it — one refusal among
/// three, say — and then no longer than the deadline, whatever the store SDK's own retry schedule.
pub async fn acceptors_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<Arc<dyn Acceptor>>, String> {
    let spec = lookup("PARACELL_QUORUM").unwrap_or_default();
    let limit = match lookup("PARACELL_ACCEPTOR_TIMEOUT_MS") {
        None => Duration::from_secs(2),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
            .ok_or_else(|| {
                format!("PARACELL_ACCEPTOR_TIMEOUT_MS={v:?} is not a positive number")
            })?,
    };
    let mut acceptors = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let inner = acceptor(item, &lookup).await?;
        acceptors.push(Arc::new(Deadlined { inner, limit }) as Arc<dyn Acceptor>);
    }
    Ok(acceptors)
}

/// An acceptor whose every call ends by `limit`: one that has not answered by then is reported
/// unavailable (an unknown outcome, which CASPaxos tolerates: the next round decides again).
struct Deadlined {
    inner: Arc<dyn Acceptor>,
    limit: Duration,
}

impl Deadlined {
    async fn call<T>(
        &self,
        what: &str,
        call: impl std::future::Future<Output = Result<T, AcceptorError>>,
    ) -> Result<T, AcceptorError> {
        tokio::time::timeout(self.limit, call)
            .await
            .unwrap_or_else(|_| {
                Err(AcceptorError::Store(StoreError::Unavailable {
                    retry_after_secs: 1,
                    detail: format!(
                        "{what} at the {} acceptor: no answer within {} ms",
                        self.inner.domain(),
                        self.limit.as_millis()
                    ),
                }))
            })
    }
}

#[async_trait::async_trait]
impl Acceptor for Deadlined {
    fn domain(&self) -> &str {
        self.inner.domain()
    }

    async fn prepare(&self, key: &str, ballot: Ballot) -> Result<Option<Accepted>, AcceptorError> {
        self.call("prepare", self.inner.prepare(key, ballot)).await
    }

    async fn accept(&self, key: &str, ballot: Ballot, value: &str) -> Result<(), AcceptorError> {
        self.call("accept", self.inner.accept(key, ballot, value))
            .await
    }

    async fn peek(&self, key: &str) -> Result<Option<Accepted>, AcceptorError> {
        self.call("peek", self.inner.peek(key)).await
    }
}

/// The cell lease's timings: `PARACELL_LEASE_SECS` (default 12).
///
/// ```
/// use paracell_examples::quorum::lease_timing_from_lookup;
/// assert_eq!(lease_timing_from_lookup(|_| None).unwrap().lease().as_secs(), 12);
/// assert_eq!(lease_timing_from_lookup(|_| Some("30".into())).unwrap().renew_every().as_secs(), 10);
/// assert!(lease_timing_from_lookup(|_| Some("3".into())).is_err());
/// ```
pub fn lease_timing_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<LeaseTiming, String> {
    let Some(v) = lookup("PARACELL_LEASE_SECS") else {
        return Ok(LeaseTiming::default());
    };
    let secs = v
        .parse::<u64>()
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("PARACELL_LEASE_SECS={v:?} is not a positive number"))?;
    let lease = Duration::from_secs(secs);
    LeaseTiming::new(
        lease,
        lease / 3,
        500,
        Duration::from_secs(2),
        Duration::from_millis(2_500),
    )
    .map_err(|e| format!("PARACELL_LEASE_SECS={secs}: {e}"))
}

async fn acceptor(
    item: &str,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Arc<dyn Acceptor>, String> {
    let provision = lookup("PARACELL_STORE_PROVISION").is_some_and(|v| v == "1");
    let _ = provision; // used only by the database acceptors
    let (kind, name) = item
        .split_once(':')
        .ok_or_else(|| format!("PARACELL_QUORUM: {item:?} is not kind:name"))?;
    match kind {
        "memory" => Ok(Arc::new(MemoryAcceptor::new(name))),
        "gcs" => {
            use paracell_gcp::gcs::{GcsAuth, GcsConfig, GcsSlots};
            let config = GcsConfig::from_lookup(|n| match n {
                "PARACELL_GCS_BUCKET" => Some(name.to_owned()),
                other => lookup(other),
            })
            .map_err(|e| e.to_string())?;
            let auth = match lookup("PARACELL_GCS_AUTH").as_deref() {
                Some("none") => GcsAuth::Anonymous,
                other => {
                    return Err(format!(
                        "PARACELL_GCS_AUTH={other:?}: only `none` (the local stand-in) is built; \
                         a token source for the real service (workload identity federation) is not"
                    ));
                }
            };
            let slots = GcsSlots::new(
                config,
                auth,
                Arc::new(crate::http_client::HyperClient::new()),
                "gcp",
            );
            if provision {
                slots
                    .create_bucket()
                    .await
                    .map_err(|e| format!("creating witness bucket {name}: {e}"))?;
            }
            Ok(Arc::new(CasAcceptor::new(slots)))
        }
        #[cfg(feature = "dynamodb")]
        "dynamodb" => {
            use paracell_aws::outbound::dynamodb::acceptor::DynamoSlots;
            use paracell_aws::outbound::dynamodb::registry::DynamoRegistry;
            use paracell_aws::outbound::dynamodb::{DynamoConfig, DynamoStore};
            let mut config = DynamoConfig::new(name);
            if let Some(endpoint) = lookup("PARACELL_DYNAMODB_ENDPOINT") {
                config = config.with_endpoint(endpoint);
            }
            if provision {
                // The acceptor table has the registry table's shape.
                DynamoRegistry::connect(&config)
                    .await
                    .create_table()
                    .await
                    .map_err(|e| format!("creating acceptor table {name}: {e}"))?;
            }
            let store = DynamoStore::connect(&config).await;
            Ok(Arc::new(CasAcceptor::new(DynamoSlots::new(
                store.client().clone(),
                name,
                "aws",
            ))))
        }
        #[cfg(feature = "cosmos")]
        "cosmos" => {
            use paracell_azure::outbound::cosmos::acceptor::CosmosSlots;
            use paracell_azure::outbound::cosmos::{CosmosConfig, CosmosStore};
            let config = CosmosConfig::from_lookup(|n| match n {
                "PARACELL_COSMOS_CONTAINER" => Some(name.to_owned()),
                other => lookup(other),
            })?;
            if provision {
                CosmosStore::provision(&config)
                    .await
                    .map_err(|e| format!("creating acceptor container {name}: {e}"))?;
            }
            let store = CosmosStore::connect(&config)
                .await
                .map_err(|e| format!("opening acceptor container {name}: {e}"))?;
            Ok(Arc::new(CasAcceptor::new(CosmosSlots::new(store, "azure"))))
        }
        #[cfg(not(feature = "dynamodb"))]
        "dynamodb" => Err(crate::not_built_with("dynamodb")),
        #[cfg(not(feature = "cosmos"))]
        "cosmos" => Err(crate::not_built_with("cosmos")),
        other => Err(format!(
            "PARACELL_QUORUM: {other:?} is not an acceptor kind: use dynamodb:<table>, cosmos:<container>, gcs:<bucket> or memory:<domain>"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepted, never answered: a black-holed link.
    struct Silent;

    #[async_trait::async_trait]
    impl Acceptor for Silent {
        fn domain(&self) -> &str {
            "azure"
        }
        async fn prepare(&self, _: &str, _: Ballot) -> Result<Option<Accepted>, AcceptorError> {
            std::future::pending().await
        }
        async fn accept(&self, _: &str, _: Ballot, _: &str) -> Result<(), AcceptorError> {
            std::future::pending().await
        }
        async fn peek(&self, _: &str) -> Result<Option<Accepted>, AcceptorError> {
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn a_silent_acceptor_costs_a_round_the_deadline_not_the_sdks_retries() {
        let silent = Deadlined {
            inner: Arc::new(Silent),
            limit: Duration::from_millis(150),
        };
        let started = std::time::Instant::now();
        let ballot = Ballot {
            counter: 1,
            proposer: 1,
        };
        let err = silent.prepare("lease/cell-a", ballot).await.unwrap_err();
        assert!(matches!(
            err,
            AcceptorError::Store(StoreError::Unavailable { .. })
        ));
        assert!(err.to_string().contains("azure acceptor"), "{err}");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(150) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
        assert!(silent.accept("k", ballot, "v").await.is_err());
        assert!(silent.peek("k").await.is_err());
        // Configured, or refused when it is not a positive number of milliseconds.
        let env = |v: &'static str| {
            move |n: &str| match n {
                "PARACELL_QUORUM" => Some("memory:aws,memory:gcp".to_owned()),
                "PARACELL_ACCEPTOR_TIMEOUT_MS" => Some(v.to_owned()),
                _ => None,
            }
        };
        assert_eq!(acceptors_from_lookup(env("250")).await.unwrap().len(), 2);
        assert!(acceptors_from_lookup(env("0")).await.is_err());
    }
}
