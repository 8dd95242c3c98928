//! The placement registry's authority on DynamoDB: one item per tenant (`pk` = `P#{tenant}`, `sk` =
//! `PLACEMENT`) holding the record's document (`doc`, [`Placement::render`]) and, for the conditions,
//! its `version` and `epoch` as numbers. A write is one `PutItem` whose condition is the
//! compare-and-set: the item is absent (first placement) or still at the version read, and its epoch
//! is not above the new one. The table's stream (`NEW_IMAGE`) feeds the Cosmos DB read replica.

use super::errors::store_error;
use super::items::{Item, n, s};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, StreamSpecification, StreamViewType,
};
use paracell_domain::TenantId;
use paracell_domain::placement::registry::{
    Placement, PlacementRegistry, RegistryError, check_write,
};
use paracell_domain::ports::StoreError;

/// The registry table's sort key value.
const SK: &str = "PLACEMENT";

fn key(tenant: &TenantId) -> Item {
    let mut item = Item::new();
    item.insert("pk".into(), s(format!("P#{tenant}")));
    item.insert("sk".into(), s(SK));
    item
}

/// A placement item as a stream record's `NEW_IMAGE` carries it: the document it holds.
pub fn placement_of(image: &Item) -> Result<Placement, String> {
    match image.get("doc") {
        Some(AttributeValue::S(doc)) => Placement::parse(doc).map_err(|e| e.to_string()),
        other => Err(format!("placement item: doc is {other:?}")),
    }
}

/// The registry on DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoRegistry {
    client: Client,
    table: String,
}

impl DynamoRegistry {
    /// The registry in `table`, through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The registry on the table and endpoint `config` names (the SDK's retries and timeouts).
    pub async fn connect(config: &super::DynamoConfig) -> Self {
        let store = super::DynamoStore::connect(config).await;
        Self::new(store.client().clone(), config.table.clone())
    }

    /// Creates the registry table (on demand, a `NEW_IMAGE` stream for the replica) and waits until
    /// it is active; an existing table is left as it is.
    pub async fn create_table(&self) -> Result<(), StoreError> {
        let fail = |e: &dyn std::fmt::Display| StoreError::Failed(e.to_string());
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| fail(&e))
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(|e| fail(&e))
        };
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute("pk")?)
            .attribute_definitions(attribute("sk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewImage)
                    .build()
                    .map_err(|e| fail(&e))?,
            )
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(store_error("CreateTable", e)),
        }
    }
}

#[async_trait::async_trait]
impl PlacementRegistry for DynamoRegistry {
    async fn get(&self, tenant: &TenantId) -> Result<Option<Placement>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(tenant)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        out.item
            .map(|item| placement_of(&item).map_err(StoreError::Failed))
            .transpose()
    }

    async fn put(&self, expected: Option<u64>, placement: &Placement) -> Result<(), RegistryError> {
        // The same rules every registry checks, before paying for a round trip…
        if placement.version != expected.map_or(1, |v| v + 1) {
            let held = self.get(&placement.tenant).await?;
            return check_write(held.as_ref(), expected, placement);
        }
        let mut item = key(&placement.tenant);
        item.insert("doc".into(), s(placement.render()));
        item.insert("version".into(), n(placement.version));
        item.insert("epoch".into(), n(placement.epoch));
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        // …and the compare-and-set itself, in the write's condition.
        let request = match expected {
            None => request.condition_expression("attribute_not_exists(pk)"),
            Some(version) => request
                .condition_expression("version = :version AND epoch <= :epoch")
                .expression_attribute_values(":version", n(version))
                .expression_attribute_values(":epoch", n(placement.epoch)),
        };
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                let held = self.get(&placement.tenant).await?;
                match check_write(held.as_ref(), expected, placement) {
                    // The condition failed, so something changed between the two reads.
                    Ok(()) => Err(RegistryError::Conflict {
                        current: held.map(Box::new),
                    }),
                    refused => refused,
                }
            }
            Err(e) => Err(store_error("PutItem", e).into()),
        }
    }
}
