//! The Azure member of the placement quorum: a [`SlotStore`] on Cosmos DB, so
//! `CasAcceptor<CosmosSlots>` is an acceptor whose rule runs in the domain
//! ([`paracell_domain::placement::quorum::CasAcceptor`]). One document per register (`id`
//! `acceptor-slot`, in the register's own logical partition — the container's `/tenant` field holds
//! the register's name) with the slot document (`doc`); a create is create-only (409 if it exists)
//! and a replace carries `If-Match` with the `_etag` read (412 if it changed). Never an upsert:
//! an upsert that turns into a create ignores `If-Match`. The account must have a single write
//! region (multi-region writes resolve conflicts last-writer-wins), and the container no TTL.

use super::CosmosStore;
use super::errors::{is_status, store_error};
use paracell_domain::placement::quorum::{AcceptorError, SlotStore, SlotWrite};
use paracell_domain::ports::StoreError;
use serde::{Deserialize, Serialize};

const ID: &str = "acceptor-slot";

#[derive(Debug, Serialize, Deserialize)]
struct SlotDoc {
    id: String,
    tenant: String,
    kind: String,
    doc: String,
    #[serde(rename = "_etag", default, skip_serializing)]
    etag: Option<String>,
}

/// Acceptor slots in a Cosmos DB container shaped like a cell's (partitioned by `/tenant`).
#[derive(Debug, Clone)]
pub struct CosmosSlots {
    store: CosmosStore,
    domain: String,
}

impl CosmosSlots {
    /// Slots in `store`'s container, for failure domain `domain` (e.g. `azure`).
    pub fn new(store: CosmosStore, domain: impl Into<String>) -> Self {
        Self {
            store,
            domain: domain.into(),
        }
    }
}

#[async_trait::async_trait]
impl SlotStore for CosmosSlots {
    fn domain(&self) -> &str {
        &self.domain
    }

    async fn read(&self, register: &str) -> Result<Option<(String, String)>, AcceptorError> {
        let container = &self.store.container;
        match container.read_item(register.to_owned(), ID, None).await {
            Ok(response) => {
                // Never taken for an empty slot.
                let doc: SlotDoc = response.into_model().map_err(|e| {
                    AcceptorError::Malformed(format!("acceptor slot {register}: {e}"))
                })?;
                let etag = doc.etag.ok_or_else(|| {
                    StoreError::Failed(format!("acceptor slot {register}: no _etag"))
                })?;
                Ok(Some((doc.doc, etag)))
            }
            Err(e) if is_status(&e, 404) => Ok(None),
            Err(e) => Err(store_error("read acceptor slot", &e).into()),
        }
    }

    async fn write(
        &self,
        register: &str,
        document: &str,
        expected: Option<&str>,
    ) -> Result<SlotWrite, StoreError> {
        let doc = SlotDoc {
            id: ID.into(),
            tenant: register.to_owned(),
            kind: "acceptor-slot".into(),
            doc: document.to_owned(),
            etag: None,
        };
        let container = &self.store.container;
        let written = match expected {
            None => {
                container
                    .create_item(register.to_owned(), ID, &doc, None)
                    .await
            }
            Some(etag) => {
                let options = CosmosStore::if_match(Some(etag))?;
                container
                    .replace_item(register.to_owned(), ID, &doc, Some(options))
                    .await
            }
        };
        match written {
            Ok(_) => Ok(SlotWrite::Written),
            Err(e) if is_status(&e, 409) || is_status(&e, 412) => Ok(SlotWrite::Conflict),
            Err(e) => Err(store_error("write acceptor slot", &e)),
        }
    }
}
