//! The AWS member of the placement quorum: a [`SlotStore`] on DynamoDB, so
//! `CasAcceptor<DynamoSlots>` is an acceptor whose rule runs in the domain
//! ([`paracell_domain::placement::quorum::CasAcceptor`]). One item per register in the registry
//! table (`pk` = `Q#{register}`, `sk` = `SLOT`): the slot document (`doc`) and a version number
//! (`ver`); a write is one `PutItem` conditioned on `ver` (or on the item not existing), read with a
//! strongly consistent `GetItem`. The table must be single-region (a global table's
//! last-writer-wins replication could let two Regions both win one compare-and-swap).

use super::errors::store_error;
use super::items::{Item, n, s};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use paracell_domain::placement::quorum::{AcceptorError, SlotStore, SlotWrite};
use paracell_domain::ports::StoreError;

/// Acceptor slots in a DynamoDB table with the registry's key schema (`pk`, `sk` strings).
#[derive(Debug, Clone)]
pub struct DynamoSlots {
    client: Client,
    table: String,
    domain: String,
}

impl DynamoSlots {
    /// Slots in `table` through `client`, for failure domain `domain` (e.g. `aws`).
    pub fn new(client: Client, table: impl Into<String>, domain: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            domain: domain.into(),
        }
    }
}

fn key(register: &str) -> Item {
    let mut item = Item::new();
    item.insert("pk".into(), s(format!("Q#{register}")));
    item.insert("sk".into(), s("SLOT"));
    item
}

#[async_trait::async_trait]
impl SlotStore for DynamoSlots {
    fn domain(&self) -> &str {
        &self.domain
    }

    async fn read(&self, register: &str) -> Result<Option<(String, String)>, AcceptorError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(register)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        match (item.get("doc"), item.get("ver")) {
            (Some(AttributeValue::S(doc)), Some(AttributeValue::N(ver))) => {
                Ok(Some((doc.clone(), ver.clone())))
            }
            // Never taken for an empty slot.
            (doc, ver) => Err(AcceptorError::Malformed(format!(
                "acceptor slot {register}: doc {doc:?}, ver {ver:?}"
            ))),
        }
    }

    async fn write(
        &self,
        register: &str,
        document: &str,
        expected: Option<&str>,
    ) -> Result<SlotWrite, StoreError> {
        let next = match expected {
            None => 1,
            Some(v) => {
                v.parse::<u64>().map_err(|_| {
                    StoreError::Failed(format!("acceptor slot {register}: version {v:?}"))
                })? + 1
            }
        };
        let mut item = key(register);
        item.insert("doc".into(), s(document));
        item.insert("ver".into(), n(next));
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let request = match expected {
            None => request.condition_expression("attribute_not_exists(pk)"),
            Some(v) => request
                .condition_expression("ver = :ver")
                .expression_attribute_values(":ver", AttributeValue::N(v.to_owned())),
        };
        match request.send().await {
            Ok(_) => Ok(SlotWrite::Written),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(SlotWrite::Conflict)
            }
            Err(e) => Err(store_error("PutItem", e)),
        }
    }
}
