//! What `paracell-admin`'s placement commands reach: the cells' stores and the placement registry,
//! named in the operator's environment. Nothing of this is exposed over HTTP: moving a tenant needs
//! the credentials of both cells' databases and of the registry (IAM on AWS, the account key or
//! Entra ID on Azure), which is the authentication.
//!
//! | variable | meaning |
//! |---|---|
//! | `PARACELL_ADMIN_CELLS` | the cells, `cell=store:name` comma-separated: `cell-aws=dynamodb:paracell-cell-aws,cell-azure=cosmos:cell-azure` (`memory` for tests). DynamoDB and Cosmos DB endpoints and credentials come from the usual variables (`PARACELL_DYNAMODB_ENDPOINT`, `PARACELL_COSMOS_*`). |
//! | `PARACELL_REGISTRY` | the placement authority: `quorum` (the quorum `PARACELL_QUORUM` names, [`crate::quorum`]), `dynamodb:<table>` (the one-table authority; feature `dynamodb`) or `memory` (tests) |
//! | `PARACELL_REGISTRY_REPLICA` | its Cosmos DB read replica, `cosmos:<container>` (feature `cosmos`): `failover` writes it too before it waits, for cells that renew their lease from it |

use paracell_domain::CellId;
use paracell_domain::placement::migrate::CellHandle;
use paracell_domain::placement::registry::{MemoryRegistry, PlacementRegistry, PlacementReplica};
use std::sync::Arc;

/// The cells `PARACELL_ADMIN_CELLS` names, each with its store opened.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let cells = paracell_examples::operator::cells_from_lookup(|n| {
///     (n == "PARACELL_ADMIN_CELLS").then(|| "cell-a=memory,cell-b=memory".to_owned())
/// }).await.unwrap();
/// assert_eq!(cells.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["cell-a", "cell-b"]);
/// let err = paracell_examples::operator::cells_from_lookup(|_| None).await.err().unwrap();
/// assert!(err.contains("PARACELL_ADMIN_CELLS"));
/// # });
/// ```
pub async fn cells_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<CellHandle>, String> {
    let list = lookup("PARACELL_ADMIN_CELLS")
        .ok_or("PARACELL_ADMIN_CELLS is not set (cell=store:name,…)")?;
    let mut cells = Vec::new();
    for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (id, store) = item
            .split_once('=')
            .ok_or_else(|| format!("PARACELL_ADMIN_CELLS: {item:?} is not cell=store:name"))?;
        let id = CellId::parse(id).map_err(|e| format!("PARACELL_ADMIN_CELLS: {e}"))?;
        let (kind, name) = store.split_once(':').unwrap_or((store, ""));
        let name = name.to_owned();
        let kind = kind.to_owned();
        // The cell's own store settings, with this cell's table or container.
        let store = crate::store_from_lookup(|n| match n {
            "PARACELL_STORE" => Some(kind.clone()),
            "PARACELL_DYNAMODB_TABLE" if kind == "dynamodb" => Some(name.clone()),
            "PARACELL_COSMOS_CONTAINER" if kind == "cosmos" => Some(name.clone()),
            "PARACELL_STORE_PROVISION" => None,
            other => lookup(other),
        })
        .await
        .map_err(|e| format!("cell {id}: {e}"))?;
        cells.push(CellHandle { id, store });
    }
    if cells.is_empty() {
        return Err("PARACELL_ADMIN_CELLS names no cell".into());
    }
    Ok(cells)
}

/// The registry `PARACELL_REGISTRY` names.
pub async fn registry_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Arc<dyn PlacementRegistry>, String> {
    let spec =
        lookup("PARACELL_REGISTRY").ok_or("PARACELL_REGISTRY is not set (dynamodb:<table>)")?;
    let (kind, name) = spec.split_once(':').unwrap_or((spec.as_str(), ""));
    let _ = name; // used by the database registries only
    match kind {
        "memory" => Ok(Arc::new(MemoryRegistry::new())),
        "quorum" => Ok(crate::quorum::quorum_from_lookup(&lookup)
            .await?
            .ok_or("PARACELL_REGISTRY=quorum needs PARACELL_QUORUM")?),
        #[cfg(feature = "dynamodb")]
        "dynamodb" => {
            use paracell_aws::outbound::dynamodb::DynamoConfig;
            use paracell_aws::outbound::dynamodb::registry::DynamoRegistry;
            let mut config = DynamoConfig::new(name);
            if let Some(endpoint) = lookup("PARACELL_DYNAMODB_ENDPOINT") {
                config = config.with_endpoint(endpoint);
            }
            let registry = DynamoRegistry::connect(&config).await;
            if lookup("PARACELL_STORE_PROVISION").is_some_and(|v| v == "1") {
                registry
                    .create_table()
                    .await
                    .map_err(|e| format!("creating registry table {name}: {e}"))?;
            }
            Ok(Arc::new(registry))
        }
        other => Err(format!(
            "PARACELL_REGISTRY={other:?}: use quorum, dynamodb:<table> (built with the dynamodb feature) or memory"
        )),
    }
}

/// The replica `PARACELL_REGISTRY_REPLICA` names, if any.
pub async fn replica_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<Arc<dyn PlacementReplica>>, String> {
    let Some(spec) = lookup("PARACELL_REGISTRY_REPLICA") else {
        return Ok(None);
    };
    let (kind, name) = spec.split_once(':').unwrap_or((spec.as_str(), ""));
    let _ = name; // used by the Cosmos DB replica only
    match kind {
        "memory" => Ok(Some(Arc::new(
            paracell_domain::placement::registry::MemoryReplica::default(),
        ))),
        #[cfg(feature = "cosmos")]
        "cosmos" => {
            use paracell_azure::outbound::cosmos::{
                CosmosConfig, CosmosPlacementReplica, CosmosStore,
            };
            let config = CosmosConfig::from_lookup(|n| {
                if n == "PARACELL_COSMOS_CONTAINER" {
                    Some(name.to_owned())
                } else {
                    lookup(n)
                }
            })?;
            if lookup("PARACELL_STORE_PROVISION").is_some_and(|v| v == "1") {
                CosmosStore::provision(&config)
                    .await
                    .map_err(|e| format!("creating replica container {name}: {e}"))?;
            }
            let store = CosmosStore::connect(&config)
                .await
                .map_err(|e| format!("opening replica container {name}: {e}"))?;
            Ok(Some(Arc::new(CosmosPlacementReplica::new(store))))
        }
        other => Err(format!(
            "PARACELL_REGISTRY_REPLICA={other:?}: use cosmos:<container> (built with the cosmos feature) or memory"
        )),
    }
}
