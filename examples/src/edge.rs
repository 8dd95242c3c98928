//! The edge router's host side: its route source from `PARACELL_REGISTRY` and the [`Edge`] built
//! from the environment. The routing itself is [`paracell_domain::edge`].
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `PARACELL_REGISTRY` | `file:<path>` (a registry file, re-read when it changes), `quorum` (the placement quorum's acceptors `PARACELL_QUORUM` names, read without a quorum, the host's own cloud first: `AcceptorReads`), `dynamodb:<table>` (the one-table authority; feature `dynamodb`) or `cosmos:<container>` (its replica on Azure; feature `cosmos`) | required |
//! | `PARACELL_EDGE_CELLS` | with `dynamodb`/`cosmos`: where each cell listens, `cell=cloud=url,…` | required with those |
//! | `PARACELL_EDGE_ID`, `PARACELL_EDGE_DEADLINE_MS`, `PARACELL_EDGE_DIAGNOSTICS`, `PARACELL_EDGE_FRESH_SECS` | [`EdgeConfig::from_lookup`] | |
//! | `PARACELL_EDGE_PROBE_SECS` | active `/health` probes of the known cells every N seconds (`0`: off) | 10 |

use crate::http_client::{HyperClient, TokioSleep};
use paracell_domain::edge::routes::Route;
use paracell_domain::edge::routes::{CellDirectory, PlacementRoutes, RouteSource, RouteTable};
use paracell_domain::edge::{Edge, EdgeConfig, EdgePorts};
use paracell_domain::ports::{StoreError, SystemClock};
use paracell_domain::tenancy::TenantId;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// A registry file, re-read whenever its modification time or size changes. A file that cannot be
/// read or parsed is an error for that lookup (the router then serves what it knew), and the last
/// good table stays in use.
pub struct FileRoutes {
    path: PathBuf,
    state: Mutex<(Option<(SystemTime, u64)>, RouteTable)>,
}

impl FileRoutes {
    /// Reads the file once; a missing or invalid file at start is an error.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, String> {
        let routes = Self {
            path: path.into(),
            state: Mutex::new((None, RouteTable::default())),
        };
        routes.current().map_err(|e| e.to_string())?;
        Ok(routes)
    }

    fn current(&self) -> Result<RouteTable, StoreError> {
        let unreadable = |e: String| StoreError::Unavailable {
            retry_after_secs: 1,
            detail: format!("registry file {}: {e}", self.path.display()),
        };
        let meta = std::fs::metadata(&self.path).map_err(|e| unreadable(e.to_string()))?;
        let stamp = (
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            meta.len(),
        );
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.0 != Some(stamp) {
            let bytes = std::fs::read(&self.path).map_err(|e| unreadable(e.to_string()))?;
            let table = RouteTable::parse(&bytes).map_err(|e| unreadable(e.to_string()))?;
            *state = (Some(stamp), table);
        }
        Ok(state.1.clone())
    }
}

#[async_trait::async_trait]
impl RouteSource for FileRoutes {
    async fn route(&self, tenant: &TenantId) -> Result<Option<Route>, StoreError> {
        Ok(self.current()?.get(tenant).cloned())
    }
}

/// The route source `PARACELL_REGISTRY` names.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let err = paracell_examples::edge::routes_from_lookup(|_| None).await.err().unwrap();
/// assert!(err.contains("PARACELL_REGISTRY"));
/// let err = paracell_examples::edge::routes_from_lookup(|n| (n == "PARACELL_REGISTRY").then(|| "file:/nonexistent.json".into())).await.err().unwrap();
/// assert!(err.contains("/nonexistent.json"), "{err}");
/// let quorum = |n: &str| match n {
///     "PARACELL_REGISTRY" => Some("quorum".to_owned()),
///     "PARACELL_EDGE_CELLS" => Some("cell-aws=aws=http://127.0.0.1:1".to_owned()),
///     "PARACELL_QUORUM" => Some("memory:aws,memory:azure,memory:gcp".to_owned()),
///     _ => None,
/// };
/// let routes = paracell_examples::edge::routes_from_lookup(quorum).await.unwrap();
/// let tenant = paracell_domain::TenantId::parse("coop-1").unwrap();
/// assert!(routes.route(&tenant).await.unwrap().is_none(), "no acceptor holds coop-1");
/// let none = |n: &str| (n != "PARACELL_QUORUM").then(|| quorum(n)).flatten();
/// let err = paracell_examples::edge::routes_from_lookup(none).await.err().unwrap();
/// assert!(err.contains("PARACELL_QUORUM"), "{err}");
/// # });
/// ```
pub async fn routes_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Arc<dyn RouteSource>, String> {
    let spec = lookup("PARACELL_REGISTRY").ok_or(
        "PARACELL_REGISTRY is not set (file:<path>, dynamodb:<table> or cosmos:<container>)",
    )?;
    let (kind, name) = spec.split_once(':').unwrap_or((spec.as_str(), ""));
    let cells = || {
        let list = lookup("PARACELL_EDGE_CELLS").ok_or(
            "PARACELL_EDGE_CELLS is not set (cell=cloud=url,…): the registry names cells, not URLs",
        )?;
        CellDirectory::parse(&list).map_err(|e| format!("PARACELL_EDGE_CELLS: {e}"))
    };
    match kind {
        "file" => Ok(Arc::new(FileRoutes::open(name)?)),
        "dynamodb" => {
            let cells = cells()?;
            let registry = crate::operator::registry_from_lookup(&lookup).await?;
            Ok(Arc::new(PlacementRoutes::from_registry(registry, cells)))
        }
        "quorum" => {
            // The acceptors without a quorum, the host's own cloud first (PARACELL_QUORUM's order).
            let cells = cells()?;
            let acceptors = crate::quorum::acceptors_from_lookup(&lookup).await?;
            if acceptors.is_empty() {
                return Err("PARACELL_REGISTRY=quorum needs PARACELL_QUORUM".into());
            }
            Ok(Arc::new(PlacementRoutes::from_acceptors(
                Arc::new(paracell_domain::placement::quorum::AcceptorReads::new(
                    acceptors,
                )),
                cells,
            )))
        }
        "cosmos" => {
            let cells = cells()?;
            let replica = crate::operator::replica_from_lookup(|n| {
                if n == "PARACELL_REGISTRY_REPLICA" {
                    Some(spec.clone())
                } else {
                    lookup(n)
                }
            })
            .await?
            .ok_or("no replica")?;
            Ok(Arc::new(PlacementRoutes::from_replica(replica, cells)))
        }
        other => Err(format!(
            "PARACELL_REGISTRY={other:?}: use file:<path>, quorum, dynamodb:<table> or cosmos:<container>"
        )),
    }
}

/// The router the environment describes, on a pooled hyper client and the system clock.
pub async fn edge_from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Edge, String> {
    let config = EdgeConfig::from_lookup(&lookup).map_err(|e| e.to_string())?;
    let routes = routes_from_lookup(&lookup).await?;
    Ok(Edge::new(
        config,
        EdgePorts {
            routes,
            upstream: Arc::new(HyperClient::new()),
            clock: Arc::new(SystemClock),
            sleep: Arc::new(TokioSleep),
        },
    ))
}

/// Probes the cells the router knows every `period`, for as long as the process runs.
pub fn spawn_probes(edge: Edge, period: Duration) {
    if period.is_zero() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for (cell, healthy) in edge.probe().await {
                if !healthy {
                    tracing::warn!(cell = cell.as_str(), "cell probe failed");
                }
            }
        }
    });
}
