//! A [`TransactionStore`] on Amazon DynamoDB (feature `dynamodb`): one table per cell.
//!
//! A create is two requests: one `TransactGetItems` of what it decides on (the head, the key's record,
//! the balance; [`TransactionStore::create_view`]) and one `TransactWriteItems`. A GET is one
//! `GetItem`.
//!
//! Every commit is one `TransactWriteItems` of conditional writes in the tenant's item collection:
//! the tenant's head still has the epoch, role and sequence number that were read (the fence: a cell
//! demoted meanwhile cannot book), the idempotency key has no record yet, the entry's position is free, the transaction does not exist, the
//! balance still has the version that was read. DynamoDB applies all of them or none; the
//! cancellation reasons say which condition failed (`errors.rs`). The item layout and why it avoids
//! hot partitions is in [`items`].
//!
//! Throttling and transient failures are retried by the SDK's standard retry strategy (exponential
//! backoff with full jitter, [`DynamoConfig::max_attempts`] attempts in all, each bounded by a
//! timeout); what still fails becomes [`StoreError::Unavailable`], the contract's 503 with
//! `Retry-After`. Reads are strongly consistent, so a client reads its own writes.
//!
//! ```no_run
//! use paracell_aws::outbound::dynamodb::{DynamoConfig, DynamoStore};
//! # async fn example() -> Result<(), paracell_domain::ports::StoreError> {
//! let config = DynamoConfig::new("paracell-cell-a").with_endpoint("http://127.0.0.1:5001");
//! let store = DynamoStore::connect(&config).await;
//! store.create_table().await?; // tests and local runs; deployments create it with the template
//! # Ok(()) }
//! ```

pub mod acceptor;
mod errors;
pub mod items;
pub mod registry;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, Get, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    Projection, ProjectionType, Put, ReturnValuesOnConditionCheckFailure, ScalarAttributeType,
    StreamSpecification, StreamViewType, TransactGetItem, TransactWriteItem,
};
use errors::store_error;
use items::{Item, OUTBOX_INDEX, PENDING, Read, n, s};
use paracell_domain::idempotency::{IdempotencyKey, IdempotencyRecord};
use paracell_domain::placement::{Fence, TenantHead};
use paracell_domain::ports::{
    BalanceSnapshot, Commit, CommitError, CommitSlot as Slot, CreateView, EntryPage, EntryRef,
    EntrySource, ReadStamps, Received, StoreError, TransactionStore,
};
use paracell_domain::replication::SealedEntry;
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
    /// use paracell_aws::outbound::dynamodb::DynamoConfig;
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

    /// The SDK client (shared with the placement registry).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the cell's table (on-demand capacity, the `outbox` index, a `NEW_IMAGE` stream for the
    /// relay) and waits until it is active. An existing table is left as it is.
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
            .key_schema(key("outbox_order", KeyType::Range)?)
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
            .attribute_definitions(attribute("outbox_order")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .global_secondary_indexes(outbox)
            // The relay reads new entry items from the table's stream (NEW_IMAGE: the item as written).
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewImage)
                    .build()
                    .map_err(|e| StoreError::Failed(e.to_string()))?,
            )
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

/// The writes of one commit, each with the condition it guards.
#[derive(Default)]
struct Writes {
    items: Vec<TransactWriteItem>,
    slots: Vec<Slot>,
}

impl Writes {
    fn push(&mut self, slot: Slot, item: TransactWriteItem) {
        self.items.push(item);
        self.slots.push(slot);
    }
}

fn build<T>(result: Result<T, aws_sdk_dynamodb::error::BuildError>) -> Result<T, StoreError> {
    result.map_err(failed)
}

impl DynamoStore {
    /// Applies `writes` in one `TransactWriteItems`; a cancellation becomes the domain outcome of
    /// the first condition that failed.
    async fn transact(&self, writes: Writes) -> Result<(), CommitError> {
        let written = self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes.items))
            .send()
            .await;
        match written {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => Err(
                    errors::cancelled_commit(&writes.slots, cancelled.cancellation_reasons()),
                ),
                _ => Err(CommitError::Store(store_error("TransactWriteItems", e))),
            },
        }
    }

    /// The head write: the new head, on condition that the head read is still there (the fence).
    fn head_write(&self, fence: Fence, head: &TenantHead) -> Result<TransactWriteItem, StoreError> {
        let item = items::head_item(head);
        let put = match fence {
            Fence::Absent => put_if_absent(&self.table, item),
            Fence::Head { epoch, seq, role } => Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("#epoch = :epoch AND #seq = :seq AND #role = :role")
                .expression_attribute_names("#epoch", "epoch")
                .expression_attribute_names("#seq", "seq")
                .expression_attribute_names("#role", "role")
                .expression_attribute_values(":epoch", n(epoch))
                .expression_attribute_values(":seq", n(seq))
                .expression_attribute_values(":role", s(role.as_str()))
                .build(),
        };
        Ok(TransactWriteItem::builder().put(build(put)?).build())
    }

    /// The idempotency record with the entry's response: written only if the key has none yet.
    fn key_write(&self, entry: &SealedEntry) -> Result<TransactWriteItem, StoreError> {
        let e = entry.entry();
        let mut item = items::idempotency_key(&e.tenant, &e.key);
        item.insert("fingerprint".into(), s(e.fingerprint.clone()));
        item.insert(
            "state".into(),
            s(paracell_domain::idempotency::RECORD_STATE),
        );
        item.insert(
            "response".into(),
            s(items::response_json(&e.response).map_err(failed)?),
        );
        Ok(TransactWriteItem::builder()
            .put(build(put_if_absent(&self.table, item))?)
            .build())
    }
}

#[async_trait]
impl TransactionStore for DynamoStore {
    async fn create_view(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        account: &AccountId,
        currency: Currency,
    ) -> Result<CreateView, StoreError> {
        // One TransactGetItems: a consistent snapshot of the three items in the tenant's collection.
        let get = |key: Item| {
            Get::builder()
                .table_name(&self.table)
                .set_key(Some(key))
                .build()
                .map(|get| TransactGetItem::builder().get(get).build())
                .map_err(failed)
        };
        let read = self
            .client
            .transact_get_items()
            .transact_items(get(items::head_key(tenant))?)
            .transact_items(get(items::idempotency_key(tenant, key))?)
            .transact_items(get(items::balance_key(tenant, account, currency))?)
            .send()
            .await
            .map_err(|e| store_error("TransactGetItems", e))?;
        let found = read.responses();
        let item = |at: usize| found.get(at).and_then(|r| r.item());
        if found.len() != 3 {
            return Err(StoreError::Failed(format!(
                "TransactGetItems answered {} items for 3 keys",
                found.len()
            )));
        }
        Ok(CreateView {
            head: item(0)
                .map(|i| Read(i).head(tenant).map_err(corrupt))
                .transpose()?,
            record: item(1)
                .map(|i| Read(i).idempotency_record(tenant, key).map_err(corrupt))
                .transpose()?,
            balance: item(2)
                .map(|i| Read(i).balance().map_err(corrupt))
                .transpose()?,
            // Every condition compares values: nothing to carry to the commit.
            stamps: ReadStamps::default(),
        })
    }

    async fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        let mut writes = Writes::default();
        writes.push(Slot::Head, self.head_write(commit.fence, &commit.head)?);
        writes.push(Slot::Key, self.key_write(&commit.entry)?);
        if commit.source == EntrySource::Committed {
            let item = items::entry_item(&commit.entry, true);
            writes.push(
                Slot::Entry,
                TransactWriteItem::builder()
                    .put(build(put_if_absent(&self.table, item))?)
                    .build(),
            );
        }
        if let Some(write) = &commit.ledger {
            let b = &write.balance;
            if b.available.is_sign_negative() && !b.available.is_zero() {
                // The domain never asks for this; refusing here keeps "no overdraft" in the store too.
                return Err(CommitError::BalanceConflict);
            }
            let tx = items::transaction_item(&write.transaction);
            writes.push(
                Slot::Transaction,
                TransactWriteItem::builder()
                    .put(build(put_if_absent(&self.table, tx))?)
                    .build(),
            );
            writes.push(
                Slot::Balance,
                TransactWriteItem::builder()
                    .put(build(balance_put(&self.table, b))?)
                    .build(),
            );
        }
        self.transact(writes).await
    }

    async fn head(&self, tenant: &TenantId) -> Result<Option<TenantHead>, StoreError> {
        self.get(items::head_key(tenant))
            .await?
            .map(|item| Read(&item).head(tenant).map_err(corrupt))
            .transpose()
    }

    async fn put_head(&self, fence: Fence, head: TenantHead) -> Result<(), CommitError> {
        let mut writes = Writes::default();
        writes.push(Slot::Head, self.head_write(fence, &head)?);
        self.transact(writes).await
    }

    async fn receive(&self, entry: &SealedEntry) -> Result<Received, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(items::entry_item(entry, false)))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match put {
            Ok(_) => Ok(Received::Stored),
            Err(e) => {
                let Some(PutItemError::ConditionalCheckFailedException(refused)) =
                    e.as_service_error()
                else {
                    return Err(store_error("PutItem", e));
                };
                let existing = match refused.item() {
                    Some(item) => item.clone(),
                    None => self
                        .get(items::entry_key(entry.tenant(), entry.seq()))
                        .await?
                        .ok_or_else(|| StoreError::Failed("entry refused but not found".into()))?,
                };
                Read(&existing)
                    .digest()
                    .map(Received::Existing)
                    .map_err(corrupt)
            }
        }
    }

    async fn entry(&self, tenant: &TenantId, seq: u64) -> Result<Option<SealedEntry>, StoreError> {
        self.get(items::entry_key(tenant, seq))
            .await?
            .map(|item| Read(&item).entry().map_err(corrupt))
            .transpose()
    }

    async fn discard_received(
        &self,
        tenant: &TenantId,
        seq: u64,
        digest: &paracell_domain::replication::Digest,
    ) -> Result<bool, StoreError> {
        // Conditioned on the digest: only that very entry goes, never one committed in its place.
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(items::entry_key(tenant, seq)))
            .condition_expression("digest = :d")
            .expression_attribute_values(":d", s(digest.to_string()))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(DeleteItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(store_error("DeleteItem", e)),
        }
    }

    async fn entries_after(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<SealedEntry>, StoreError> {
        let mut entries = Vec::new();
        let mut start = None;
        while entries.len() < limit {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", items::tenant_pk(tenant))
                .expression_attribute_values(":from", s(items::entry_sk(after.saturating_add(1))))
                .expression_attribute_values(":to", s(items::entry_sk(u64::MAX)))
                .limit(i32::try_from(limit - entries.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("Query", e))?;
            for item in page.items() {
                entries.push(Read(item).entry().map_err(corrupt)?);
            }
            match page.last_evaluated_key {
                Some(key) => start = Some(key),
                None => break,
            }
        }
        Ok(entries)
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

    async fn pending_entries(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<EntryPage, StoreError> {
        // One more than asked, to know whether a next page exists.
        let wanted = limit.saturating_add(1);
        let mut found: Vec<SealedEntry> = Vec::new();
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
                    .key_condition_expression("#outbox = :pending AND #order > :after")
                    .expression_attribute_names("#order", "outbox_order")
                    .expression_attribute_values(":after", s(cursor)),
                None => query.key_condition_expression("#outbox = :pending"),
            };
            let page = query.send().await.map_err(|e| store_error("Query", e))?;
            for item in page.items() {
                found.push(Read(item).entry().map_err(corrupt)?);
            }
            match page.last_evaluated_key {
                Some(key) if found.len() < wanted => start = Some(key),
                _ => break,
            }
        }
        Ok(EntryPage::from_ordered(found, limit))
    }

    async fn mark_relayed(&self, entries: &[EntryRef]) -> Result<(), StoreError> {
        for r in entries {
            let updated = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(items::entry_key(&r.tenant, r.seq)))
                .update_expression("REMOVE #outbox, #order")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_names("#outbox", "outbox")
                .expression_attribute_names("#order", "outbox_order")
                .send()
                .await;
            // An unknown entry: nothing to mark, as in every store.
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
