//! A [`TransactionStore`] on Amazon DynamoDB (feature `dynamodb`): one table per cell.
//!
//! Every create is one `TransactWriteItems` of four conditional writes: the idempotency key is still
//! held by this request, the transaction does not exist, the balance still has the version that was
//! read (0: it does not exist), the outbox event does not exist. DynamoDB applies all four or none;
//! the cancellation reasons say which condition failed ([`errors`]). The item layout and why it
//! avoids hot partitions is in [`items`].
//!
//! Throttling and transient failures are retried by the SDK's standard retry strategy (exponential
//! backoff with full jitter, [`DynamoConfig::max_attempts`] attempts in all, each bounded by a
//! timeout); what still fails becomes [`StoreError::Unavailable`], the contract's 503 with
//! `Retry-After`. Reads are strongly consistent, so a client reads its own writes.
//!
//! ```no_run
//! use paracell_aws::dynamodb::{DynamoConfig, DynamoStore};
//! # async fn example() -> Result<(), paracell_domain::ports::StoreError> {
//! let config = DynamoConfig::new("paracell-cell-a").with_endpoint("http://127.0.0.1:5001");
//! let store = DynamoStore::connect(&config).await;
//! store.create_table().await?; // tests and local runs; deployments create it with the template
//! # Ok(()) }
//! ```

mod errors;
pub mod items;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, Put, ReturnValuesOnConditionCheckFailure, ScalarAttributeType,
    TransactWriteItem, Update,
};
use errors::store_error;
use items::{COMPLETED, IN_PROGRESS, Item, OUTBOX_INDEX, PENDING, Read, n, s};
use paracell_domain::events::OutboxEvent;
use paracell_domain::idempotency::{IdempotencyKey, IdempotencyRecord, StoredResponse};
use paracell_domain::ports::{
    BalanceSnapshot, ClaimOutcome, Commit, CommitError, EventPage, KeyClaim, StoreError,
    TransactionStore,
};
use paracell_domain::transaction::{AccountId, Transaction, TransactionId};
use paracell_domain::{Currency, TenantId};
use std::time::Duration;

/// Where the store lives and how hard it tries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoConfig {
    /// The cell's table.
    pub table: String,
    /// An endpoint override (a local DynamoDB stand-in); `None`: the region's endpoint.
    pub endpoint: Option<String>,
    /// Attempts per operation, the first included (the SDK's jittered exponential backoff between them).
    pub max_attempts: u32,
    /// Upper bound of one attempt, so a stalled connection becomes a retry rather than a hung request.
    pub attempt_timeout: Duration,
}

impl DynamoConfig {
    /// Defaults for `table`: 3 attempts of at most 2 s each.
    pub fn new(table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            endpoint: None,
            max_attempts: 3,
            attempt_timeout: Duration::from_secs(2),
        }
    }

    /// Sends requests to `endpoint` instead of the region's.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Reads `PARACELL_DYNAMODB_TABLE` (required) and `PARACELL_DYNAMODB_ENDPOINT` (optional).
    /// Region and credentials come from the SDK's usual sources (`AWS_REGION`, the function's role).
    ///
    /// ```
    /// use paracell_aws::dynamodb::DynamoConfig;
    /// let env = |name: &str| (name == "PARACELL_DYNAMODB_TABLE").then(|| "cell-a".to_string());
    /// assert_eq!(DynamoConfig::from_lookup(env).unwrap().table, "cell-a");
    /// assert!(DynamoConfig::from_lookup(|_| None).unwrap_err().contains("PARACELL_DYNAMODB_TABLE"));
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let table = lookup("PARACELL_DYNAMODB_TABLE")
            .filter(|t| !t.is_empty())
            .ok_or(
                "PARACELL_STORE=dynamodb needs PARACELL_DYNAMODB_TABLE (the cell's table name)",
            )?;
        let mut config = Self::new(table);
        config.endpoint = lookup("PARACELL_DYNAMODB_ENDPOINT").filter(|e| !e.is_empty());
        Ok(config)
    }

    /// [`DynamoConfig::from_lookup`] on the process environment.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }
}

/// The DynamoDB [`TransactionStore`].
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    /// A store on an already configured client.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Builds the client from the SDK's environment (region, credentials) and `config`.
    pub async fn connect(config: &DynamoConfig) -> Self {
        let mut loader = aws_config::from_env()
            .retry_config(RetryConfig::standard().with_max_attempts(config.max_attempts))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(1))
                    .operation_attempt_timeout(config.attempt_timeout)
                    .build(),
            );
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        Self::new(Client::new(&loader.load().await), config.table.clone())
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the cell's table (on-demand capacity, the `outbox` index) and waits until it is
    /// active. An existing table is left as it is.
    pub async fn create_table(&self) -> Result<(), StoreError> {
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| StoreError::Failed(e.to_string()))
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(|e| StoreError::Failed(e.to_string()))
        };
        let outbox = GlobalSecondaryIndex::builder()
            .index_name(OUTBOX_INDEX)
            .key_schema(key("outbox", KeyType::Hash)?)
            .key_schema(key("seq", KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(|e| StoreError::Failed(e.to_string()))?;
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute("pk")?)
            .attribute_definitions(attribute("sk")?)
            .attribute_definitions(attribute("outbox")?)
            .attribute_definitions(attribute("seq")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .global_secondary_indexes(outbox)
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) => {}
            Err(e) => return Err(store_error("CreateTable", e)),
        }
        use aws_sdk_dynamodb::client::Waiters;
        self.client
            .wait_until_table_exists()
            .table_name(&self.table)
            .wait(Duration::from_secs(120))
            .await
            .map_err(|e| StoreError::Failed(format!("waiting for table {}: {e}", self.table)))?;
        Ok(())
    }

    async fn get(&self, key: Item) -> Result<Option<Item>, StoreError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map(|out| out.item)
            .map_err(|e| store_error("GetItem", e))
    }
}

fn corrupt(e: String) -> StoreError {
    StoreError::Failed(format!("unreadable item: {e}"))
}

fn failed<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Failed(e.to_string())
}

/// `#state = :in_progress AND #token = :token`: the request still holds its key.
const HELD: &str = "#state = :in_progress AND #token = :token";

/// Completing a key: the one update `complete_key` and `commit` both make, on condition [`HELD`].
const COMPLETE: &str = "SET #state = :completed, #response = :response REMOVE #token, #claimed_at";

/// The names and values [`COMPLETE`] and [`HELD`] refer to.
struct Completion {
    names: std::collections::HashMap<String, String>,
    values: Item,
}

impl Completion {
    fn new(token: TransactionId, response: &StoredResponse) -> Result<Self, StoreError> {
        let names = ["state", "token", "response", "claimed_at"]
            .map(|name| (format!("#{name}"), name.to_owned()));
        let values = [
            (":completed", s(COMPLETED)),
            (":in_progress", s(IN_PROGRESS)),
            (":token", s(token.to_string())),
            (
                ":response",
                s(items::response_json(response).map_err(failed)?),
            ),
        ]
        .map(|(name, value)| (name.to_owned(), value));
        Ok(Self {
            names: names.into_iter().collect(),
            values: values.into_iter().collect(),
        })
    }
}

#[async_trait]
impl TransactionStore for DynamoStore {
    async fn claim_key(&self, claim: KeyClaim) -> Result<ClaimOutcome, StoreError> {
        let mut item = items::idempotency_key(&claim.tenant_id, &claim.key);
        item.insert("fingerprint".into(), s(claim.fingerprint.clone()));
        item.insert("state".into(), s(IN_PROGRESS));
        item.insert("token".into(), s(claim.token.to_string()));
        item.insert("claimed_at".into(), n(claim.now.unix_millis()));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(pk) OR (#state = :in_progress AND #claimed_at < :stale)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#claimed_at", "claimed_at")
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .expression_attribute_values(":stale", n(claim.stale_before.unix_millis()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match put {
            Ok(_) => Ok(ClaimOutcome::Claimed),
            Err(e) => {
                let Some(PutItemError::ConditionalCheckFailedException(refused)) =
                    e.as_service_error()
                else {
                    return Err(store_error("PutItem", e));
                };
                let existing = match refused.item() {
                    Some(item) => item.clone(),
                    // Only if the server omits the old item: read it.
                    None => self
                        .get(items::idempotency_key(&claim.tenant_id, &claim.key))
                        .await?
                        .ok_or_else(|| {
                            StoreError::Failed("claim refused but no record found".into())
                        })?,
                };
                Read(&existing)
                    .idempotency_record(&claim.tenant_id, &claim.key)
                    .map(ClaimOutcome::Existing)
                    .map_err(corrupt)
            }
        }
    }

    async fn complete_key(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        token: TransactionId,
        response: StoredResponse,
    ) -> Result<(), StoreError> {
        let completion = Completion::new(token, &response)?;
        let updated = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(items::idempotency_key(tenant, key)))
            .update_expression(COMPLETE)
            .condition_expression(HELD)
            .set_expression_attribute_names(Some(completion.names))
            .set_expression_attribute_values(Some(completion.values))
            .condition_expression(HELD)
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#token", "token")
            .expression_attribute_names("#response", "response")
            .expression_attribute_names("#claimed_at", "claimed_at")
            .expression_attribute_values(":completed", s(COMPLETED))
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .expression_attribute_values(":token", s(token.to_string()))
            .expression_attribute_values(
                ":response",
                s(items::response_json(&response).map_err(failed)?),
            )
            .send()
            .await;
        // The key is no longer held with this token: a no-op, as the port says.
        errors::unless_condition_failed("UpdateItem", updated)
    }

    async fn release_key(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        token: TransactionId,
    ) -> Result<(), StoreError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(items::idempotency_key(tenant, key)))
            .condition_expression(HELD)
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#token", "token")
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .expression_attribute_values(":token", s(token.to_string()))
            .send()
            .await;
        errors::unless_condition_failed("DeleteItem", deleted)
    }

    async fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        let tx = &commit.transaction;
        let b = &commit.balance;
        if b.available.is_sign_negative() && !b.available.is_zero() {
            // The domain never asks for this; refusing here keeps the rule "no overdraft" in the store too.
            return Err(CommitError::BalanceConflict);
        }
        let completion = Completion::new(commit.token, &commit.response)?;
        let writes = [
            // errors::KEY_WRITE
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(items::idempotency_key(&tx.tenant_id, &commit.key)))
                        .update_expression(COMPLETE)
                        .condition_expression(HELD)
                        .set_expression_attribute_names(Some(completion.names))
                        .set_expression_attribute_values(Some(completion.values))
                        .condition_expression(HELD)
                        .expression_attribute_names("#state", "state")
                        .expression_attribute_names("#token", "token")
                        .expression_attribute_names("#response", "response")
                        .expression_attribute_names("#claimed_at", "claimed_at")
                        .expression_attribute_values(":completed", s(COMPLETED))
                        .expression_attribute_values(":in_progress", s(IN_PROGRESS))
                        .expression_attribute_values(":token", s(commit.token.to_string()))
                        .expression_attribute_values(
                            ":response",
                            s(items::response_json(&commit.response).map_err(failed)?),
                        )
                        .build()
                        .map_err(failed)?,
                )
                .build(),
            // errors::TRANSACTION_WRITE
            TransactWriteItem::builder()
                .put(
                    put_if_absent(&self.table, items::transaction_item(tx).map_err(failed)?)
                        .map_err(failed)?,
                )
                .build(),
            // errors::BALANCE_WRITE
            TransactWriteItem::builder()
                .put(balance_put(&self.table, b).map_err(failed)?)
                .build(),
            TransactWriteItem::builder()
                .put(put_if_absent(&self.table, items::event_item(&commit.event)).map_err(failed)?)
                .build(),
        ];
        let written = self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes.to_vec()))
            .send()
            .await;
        match written {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                    Err(errors::cancelled_commit(cancelled.cancellation_reasons()))
                }
                _ => Err(CommitError::Store(store_error("TransactWriteItems", e))),
            },
        }
    }

    async fn transaction(
        &self,
        tenant: &TenantId,
        id: TransactionId,
    ) -> Result<Option<Transaction>, StoreError> {
        // The key includes the tenant: another tenant's id is simply not found.
        self.get(items::transaction_key(tenant, id))
            .await?
            .map(|item| Read(&item).transaction().map_err(corrupt))
            .transpose()
    }

    async fn balance(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        currency: Currency,
    ) -> Result<Option<BalanceSnapshot>, StoreError> {
        self.get(items::balance_key(tenant, account, currency))
            .await?
            .map(|item| Read(&item).balance().map_err(corrupt))
            .transpose()
    }

    async fn balances(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Vec<BalanceSnapshot>, StoreError> {
        let mut balances = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", items::tenant_pk(tenant))
                .expression_attribute_values(":prefix", s(items::balance_prefix(account)))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("Query", e))?;
            for item in page.items() {
                balances.push(Read(item).balance().map_err(corrupt)?);
            }
            match page.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(balances),
            }
        }
    }

    async fn idempotency_record(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.get(items::idempotency_key(tenant, key))
            .await?
            .map(|item| Read(&item).idempotency_record(tenant, key).map_err(corrupt))
            .transpose()
    }

    async fn pending_events(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        // One more than asked, to know whether a next page exists.
        let wanted = limit.saturating_add(1);
        let mut found: Vec<(String, OutboxEvent)> = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(OUTBOX_INDEX)
                .expression_attribute_names("#outbox", "outbox")
                .expression_attribute_values(":pending", s(PENDING))
                .limit(i32::try_from(wanted - found.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start);
            query = match after {
                Some(cursor) => query
                    .key_condition_expression("#outbox = :pending AND #seq > :after")
                    .expression_attribute_names("#seq", "seq")
                    .expression_attribute_values(":after", s(cursor)),
                None => query.key_condition_expression("#outbox = :pending"),
            };
            let page = query.send().await.map_err(|e| store_error("Query", e))?;
            for item in page.items() {
                let read = Read(item);
                found.push((read.seq().map_err(corrupt)?, read.event().map_err(corrupt)?));
            }
            match page.last_evaluated_key {
                Some(key) if found.len() < wanted => start = Some(key),
                _ => break,
            }
        }
        let next = (found.len() > limit)
            .then(|| found.get(limit - 1).map(|(seq, _)| seq.clone()))
            .flatten();
        found.truncate(limit);
        Ok(EventPage {
            events: found.into_iter().map(|(_, event)| event).collect(),
            next,
        })
    }

    async fn mark_published(&self, event_ids: &[uuid::Uuid]) -> Result<(), StoreError> {
        for id in event_ids {
            let updated = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(items::event_key(*id)))
                .update_expression("REMOVE #outbox")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_names("#outbox", "outbox")
                .send()
                .await;
            // An unknown id: nothing to mark, as in every store.
            errors::unless_condition_failed("UpdateItem", updated)?;
        }
        Ok(())
    }
}

/// A put that succeeds only if no item with its key exists yet.
fn put_if_absent(table: &str, item: Item) -> Result<Put, aws_sdk_dynamodb::error::BuildError> {
    Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .build()
}

/// The balance write: the whole row, on condition that the version read is still current.
fn balance_put(
    table: &str,
    b: &paracell_domain::ports::BalanceUpdate,
) -> Result<Put, aws_sdk_dynamodb::error::BuildError> {
    let mut item = items::balance_key(&b.tenant_id, &b.account_id, b.currency);
    item.insert("currency".into(), s(b.currency.code()));
    item.insert("available".into(), s(b.available.to_string()));
    item.insert("version".into(), n(b.expected_version + 1));
    if b.expected_version == 0 {
        put_if_absent(table, item)
    } else {
        Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression("#version = :expected")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":expected", n(b.expected_version))
            .build()
    }
}
