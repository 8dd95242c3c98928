//! The placement registry's read replica on Cosmos DB: one document per tenant (`id` `placement`, in
//! the tenant's logical partition) holding the record ([`Placement::render`]) and its `version` and
//! `epoch`. It is written only from the authority's change stream (the `placement-replicator`
//! function), and only forward ([`replica_accepts`]): a replace is conditional on the etag read, so
//! two deliveries racing cannot put an older record back.

use super::errors::{is_status, store_error};
use super::{CosmosStore, failed};
use paracell_domain::TenantId;
use paracell_domain::placement::registry::{Placement, PlacementReplica, replica_accepts};
use paracell_domain::ports::StoreError;
use serde::{Deserialize, Serialize};

const ID: &str = "placement";

/// How many times a replace that lost a race is read and tried again.
const ATTEMPTS: usize = 8;

#[derive(Debug, Serialize, Deserialize)]
struct PlacementDoc {
    id: String,
    tenant: String,
    kind: String,
    doc: String,
    version: u64,
    epoch: u64,
    #[serde(rename = "_etag", default, skip_serializing)]
    etag: Option<String>,
}

/// The replica, in a container shaped like a cell's (partitioned by `/tenant`).
#[derive(Debug, Clone)]
pub struct CosmosPlacementReplica {
    store: CosmosStore,
}

impl CosmosPlacementReplica {
    /// The replica in `store`'s container.
    pub fn new(store: CosmosStore) -> Self {
        Self { store }
    }

    async fn read(&self, tenant: &TenantId) -> Result<Option<PlacementDoc>, StoreError> {
        self.store.read::<PlacementDoc>(tenant, ID).await
    }
}

#[async_trait::async_trait]
impl PlacementReplica for CosmosPlacementReplica {
    async fn get(&self, tenant: &TenantId) -> Result<Option<Placement>, StoreError> {
        self.read(tenant)
            .await?
            .map(|d| Placement::parse(&d.doc).map_err(|e| StoreError::Failed(e.to_string())))
            .transpose()
    }

    async fn apply(&self, placement: &Placement) -> Result<bool, StoreError> {
        let doc = PlacementDoc {
            id: ID.into(),
            tenant: placement.tenant.to_string(),
            kind: "placement".into(),
            doc: placement.render(),
            version: placement.version,
            epoch: placement.epoch,
            etag: None,
        };
        let container = &self.store.container;
        for _ in 0..ATTEMPTS {
            let held = self.read(&placement.tenant).await?;
            let held_placement = held
                .as_ref()
                .map(|d| Placement::parse(&d.doc).map_err(|e| StoreError::Failed(e.to_string())))
                .transpose()?;
            if !replica_accepts(held_placement.as_ref(), placement) {
                return Ok(false);
            }
            let written = match held {
                None => {
                    container
                        .create_item(doc.tenant.clone(), ID, &doc, None)
                        .await
                }
                Some(held) => {
                    let options = CosmosStore::if_match(held.etag.as_deref())?;
                    container
                        .replace_item(doc.tenant.clone(), ID, &doc, Some(options))
                        .await
                }
            };
            match written {
                Ok(_) => return Ok(true),
                // Another delivery wrote first: read again and decide again.
                Err(e) if is_status(&e, 409) || is_status(&e, 412) => {}
                Err(e) => return Err(store_error("placement replica", &e)),
            }
        }
        Err(failed(format!(
            "placement replica: still contended after {ATTEMPTS} attempts"
        )))
    }
}
