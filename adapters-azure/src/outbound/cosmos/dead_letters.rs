//! The relay's dead letters in the cell's own container (`kind = "deadletter"`, in the partition of
//! the entry's tenant): the full [`DeadLetter`] document, listed and removed by an operator
//! (`paracell-admin dead-letters …`).

use super::{CosmosStore, errors, failed};
use azure_data_cosmos::{FeedScope, Query};
use paracell_domain::TenantId;
use paracell_domain::ports::StoreError;
use paracell_domain::replication::relay::{DeadLetter, DeadLetters};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct LetterDoc {
    id: String,
    tenant: String,
    kind: String,
    letter: String,
}

/// Dead letters kept in a Cosmos DB container.
#[derive(Debug, Clone)]
pub struct CosmosDeadLetters {
    store: CosmosStore,
}

impl CosmosDeadLetters {
    /// Dead letters in `store`'s container.
    pub fn new(store: CosmosStore) -> Self {
        Self { store }
    }
}

#[async_trait::async_trait]
impl DeadLetters for CosmosDeadLetters {
    async fn put(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        let tenant = letter.entry.tenant().to_string();
        let doc = LetterDoc {
            id: format!("dl:{}", uuid::Uuid::now_v7().hyphenated()),
            tenant: tenant.clone(),
            kind: "deadletter".into(),
            letter: letter.render(),
        };
        self.store
            .container
            .create_item(tenant, &doc.id, &doc, None)
            .await
            .map(|_| ())
            .map_err(|e| errors::store_error("put dead letter", &e))
    }

    /// Ids are `{tenant}/{document id}` (a removal needs the partition).
    async fn list(&self, limit: usize) -> Result<Vec<(String, DeadLetter)>, StoreError> {
        let query = Query::from("SELECT * FROM c WHERE c.kind = 'deadletter'");
        let mut docs: Vec<LetterDoc> = self.store.query(query, FeedScope::full_container()).await?;
        docs.sort_by(|a, b| a.id.cmp(&b.id)); // UUIDv7: creation order
        docs.truncate(limit);
        docs.into_iter()
            .map(|d| {
                let letter =
                    DeadLetter::parse(&d.letter).map_err(|e| StoreError::Failed(e.to_string()))?;
                Ok((format!("{}/{}", d.tenant, d.id), letter))
            })
            .collect()
    }

    async fn remove(&self, id: &str) -> Result<(), StoreError> {
        let (tenant, doc_id) = id
            .split_once('/')
            .ok_or_else(|| StoreError::Failed(format!("dead letter id {id:?} is not tenant/id")))?;
        let tenant = TenantId::parse(tenant).map_err(failed)?;
        match self
            .store
            .container
            .delete_item(tenant.to_string(), doc_id, None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if errors::is_status(&e, 404) => Ok(()),
            Err(e) => Err(errors::store_error("remove dead letter", &e)),
        }
    }
}
