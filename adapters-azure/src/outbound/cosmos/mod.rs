//! A [`TransactionStore`] on Azure Cosmos DB for NoSQL (feature `cosmos`, `azure_data_cosmos` pinned
//! `=1.0.0`): one container per cell, partitioned by tenant (`documents.rs`).
//!
//! A create is two requests: one single-partition query for what it decides on (the tenant's head,
//! the idempotency record, the balance, with their etags; [`TransactionStore::create_view`]), then
//! one transactional batch in the tenant's partition: replace the head (`If-Match` the etag read:
//! the fence, so a cell demoted meanwhile cannot book), create the record (it must not exist yet),
//! create the entry, create the transaction, create or replace the balance (`If-Match` the etag of
//! the version read). A commit without the etags of a read (applying a replicated entry) reads the
//! documents it guards first. A GET is one point read. Cosmos DB applies the batch atomically; the failing operation's status says which condition
//! failed (`errors.rs`).
//!
//! Throttling (429) is retried by the SDK with the service's `x-ms-retry-after-ms` hints, and
//! transport failures by its regional retry policy; what still fails becomes
//! [`StoreError::Unavailable`], the contract's 503 with `Retry-After`. Point reads and
//! single-partition queries give a client its own writes (session consistency or stronger).
//!
//! ```no_run
//! use paracell_azure::outbound::cosmos::{CosmosConfig, CosmosStore};
//! # async fn example() -> Result<(), paracell_domain::ports::StoreError> {
//! let config = CosmosConfig::new("http://127.0.0.1:8081", "any-key", "paracell", "cell-a");
//! CosmosStore::provision(&config).await?; // tests and local runs; deployments use the template
//! let store = CosmosStore::connect(&config).await?;
//! # Ok(()) }
//! ```

pub mod acceptor;
mod dead_letters;
mod documents;
mod errors;
mod replica;

pub use dead_letters::CosmosDeadLetters;
pub use replica::CosmosPlacementReplica;

use async_trait::async_trait;
use azure_core::credentials::Secret;
use azure_data_cosmos::clients::ContainerClient;
use azure_data_cosmos::models::{ContainerProperties, TransactionalBatch};
use azure_data_cosmos::options::{
    BatchReplaceOptions, ItemWriteOptions, Precondition, RoutingStrategy,
};
use azure_data_cosmos::{AccountEndpoint, AccountReference, CosmosClient, FeedScope, Query};
use documents::{BalanceDoc, EntryDoc, HeadDoc, KeyDoc, TransactionDoc};
use errors::{is_status, store_error};
use futures::TryStreamExt;
use paracell_domain::idempotency::{IdempotencyKey, IdempotencyRecord};
use paracell_domain::placement::{Fence, TenantHead};
use paracell_domain::ports::{
    BalanceSnapshot, Commit, CommitError, CommitSlot as Slot, CreateView, EntryPage, EntryRef,
    EntrySource, Received, StoreError, TransactionStore,
};
use paracell_domain::replication::SealedEntry;
use paracell_domain::transaction::{AccountId, Transaction, TransactionId};
use paracell_domain::{Currency, TenantId};
use serde::de::DeserializeOwned;

/// Where the store lives.
#[derive(Clone, PartialEq, Eq)]
pub struct CosmosConfig {
    /// Account endpoint, e.g. `https://myaccount.documents.azure.com:443/`.
    pub endpoint: String,
    /// How the cell authenticates (never logged).
    pub auth: CosmosAuth,
    /// Database.
    pub database: String,
    /// The cell's container.
    pub container: String,
    /// The region the cell runs in, for the SDK's routing; `None`: the account's write region.
    pub region: Option<String>,
}

impl std::fmt::Debug for CosmosConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CosmosConfig")
            .field("endpoint", &self.endpoint)
            .field("auth", &self.auth)
            .field("database", &self.database)
            .field("container", &self.container)
            .field("region", &self.region)
            .finish()
    }
}

/// How a cell authenticates to its Cosmos DB account.
#[derive(Clone, PartialEq, Eq)]
pub enum CosmosAuth {
    /// The account key (`PARACELL_COSMOS_KEY`).
    Key(String),
    /// Microsoft Entra ID (`PARACELL_COSMOS_AUTH=entra`, feature `entra`): the Function App's managed
    /// identity, else the developer's login ([`crate::outbound::entra`]), with a data-plane role
    /// ("Cosmos DB Built-in Data Contributor") on the account. Data-plane roles cannot create
    /// containers: deployments create them with their template (`PARACELL_STORE_PROVISION` needs a key).
    Entra,
}

impl std::fmt::Debug for CosmosAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.write_str(match self {
            Self::Key(_) => "Key(<redacted>)",
            Self::Entra => "Entra",
        })
    }
}

impl CosmosConfig {
    /// A configuration without a preferred region.
    pub fn new(
        endpoint: impl Into<String>,
        key: impl Into<String>,
        database: impl Into<String>,
        container: impl Into<String>,
    ) -> Self {
        Self {
            endpoint: endpoint.into(),
            auth: CosmosAuth::Key(key.into()),
            database: database.into(),
            container: container.into(),
            region: None,
        }
    }

    /// Reads `PARACELL_COSMOS_ENDPOINT`, `PARACELL_COSMOS_DATABASE`, `PARACELL_COSMOS_CONTAINER`
    /// (all required), `PARACELL_COSMOS_AUTH` (`key`, the default, with `PARACELL_COSMOS_KEY`; or
    /// `entra`) and `PARACELL_COSMOS_REGION` (optional).
    ///
    /// ```
    /// use paracell_azure::outbound::cosmos::CosmosConfig;
    /// use paracell_azure::outbound::cosmos::CosmosAuth;
    /// let env = |name: &str| match name {
    ///     "PARACELL_COSMOS_REGION" | "PARACELL_COSMOS_AUTH" => None,
    ///     other => Some(format!("{other}-value")),
    /// };
    /// assert_eq!(CosmosConfig::from_lookup(env).unwrap().container, "PARACELL_COSMOS_CONTAINER-value");
    /// // Entra ID needs no key; an unknown method is refused.
    /// let entra = |name: &str| match name {
    ///     "PARACELL_COSMOS_AUTH" => Some("entra".to_owned()),
    ///     "PARACELL_COSMOS_KEY" | "PARACELL_COSMOS_REGION" => None,
    ///     other => Some(format!("{other}-value")),
    /// };
    /// assert_eq!(CosmosConfig::from_lookup(entra).unwrap().auth, CosmosAuth::Entra);
    /// assert!(CosmosConfig::from_lookup(|n| (n == "PARACELL_COSMOS_AUTH").then(|| "sas".into())).is_err());
    /// let err = CosmosConfig::from_lookup(|_| None).unwrap_err();
    /// assert!(err.contains("PARACELL_COSMOS_ENDPOINT"));
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let required = |name: &str| {
            lookup(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("PARACELL_STORE=cosmos needs {name}"))
        };
        let endpoint = required("PARACELL_COSMOS_ENDPOINT")?;
        let auth = match lookup("PARACELL_COSMOS_AUTH").as_deref() {
            None | Some("" | "key") => CosmosAuth::Key(required("PARACELL_COSMOS_KEY")?),
            Some("entra") => CosmosAuth::Entra,
            Some(other) => {
                return Err(format!(
                    "PARACELL_COSMOS_AUTH={other:?}: use key (with PARACELL_COSMOS_KEY) or entra"
                ));
            }
        };
        Ok(Self {
            endpoint,
            auth,
            database: required("PARACELL_COSMOS_DATABASE")?,
            container: required("PARACELL_COSMOS_CONTAINER")?,
            region: lookup("PARACELL_COSMOS_REGION").filter(|v| !v.is_empty()),
        })
    }

    /// [`CosmosConfig::from_lookup`] on the process environment.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    async fn client(&self) -> Result<CosmosClient, StoreError> {
        let endpoint: AccountEndpoint = self
            .endpoint
            .parse()
            .map_err(|e| StoreError::Failed(format!("PARACELL_COSMOS_ENDPOINT: {e}")))?;
        let account = match &self.auth {
            CosmosAuth::Key(key) => {
                AccountReference::with_authentication_key(endpoint, Secret::from(key.clone()))
            }
            #[cfg(feature = "entra")]
            CosmosAuth::Entra => AccountReference::with_credential(
                endpoint,
                crate::outbound::entra::credential().map_err(StoreError::Failed)?,
            ),
            #[cfg(not(feature = "entra"))]
            CosmosAuth::Entra => {
                return Err(StoreError::Failed(
                    "PARACELL_COSMOS_AUTH=entra: this binary was built without the `entra` feature"
                        .into(),
                ));
            }
        };
        let routing = match &self.region {
            Some(region) => RoutingStrategy::ProximityTo(region.clone().into()),
            None => RoutingStrategy::PreferredRegions(Vec::new()),
        };
        CosmosClient::builder()
            .build(account, routing)
            .await
            .map_err(|e| store_error("connect", &e))
    }
}

/// The Cosmos DB [`TransactionStore`].
#[derive(Clone)]
pub struct CosmosStore {
    container: ContainerClient,
}

impl std::fmt::Debug for CosmosStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CosmosStore").finish_non_exhaustive()
    }
}

impl CosmosStore {
    /// Connects to the cell's (existing) container.
    pub async fn connect(config: &CosmosConfig) -> Result<Self, StoreError> {
        let client = config.client().await?;
        let container = client
            .database_client(config.database.clone())
            .container_client(config.container.clone(), None)
            .await
            .map_err(|e| store_error("open container", &e))?;
        Ok(Self { container })
    }

    /// Creates the database and the cell's container (partition key `/tenant`) unless they exist.
    pub async fn provision(config: &CosmosConfig) -> Result<(), StoreError> {
        let client = config.client().await?;
        match client.create_database(&config.database, None).await {
            Ok(_) => {}
            Err(e) if is_status(&e, 409) => {}
            Err(e) => return Err(store_error("create database", &e)),
        }
        let properties = ContainerProperties::new(config.container.clone(), "/tenant".into());
        match client
            .database_client(config.database.clone())
            .create_container(properties, None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 409) => Ok(()),
            Err(e) => Err(store_error("create container", &e)),
        }
    }

    /// A point read; `None` when absent.
    async fn read<T: DeserializeOwned>(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.container.read_item(tenant.to_string(), id, None).await {
            Ok(response) => response
                .into_model()
                .map(Some)
                .map_err(|e| StoreError::Failed(format!("unreadable document {id}: {e}"))),
            Err(e) if is_status(&e, 404) => Ok(None),
            Err(e) => Err(store_error("read", &e)),
        }
    }

    async fn query<T: DeserializeOwned + Send + 'static>(
        &self,
        query: Query,
        scope: FeedScope,
    ) -> Result<Vec<T>, StoreError> {
        let pages = self
            .container
            .query_items::<T>(query, scope, None)
            .await
            .map_err(|e| store_error("query", &e))?;
        pages
            .try_collect()
            .await
            .map_err(|e| store_error("query", &e))
    }

    fn if_match(etag: Option<&str>) -> Result<ItemWriteOptions, StoreError> {
        Ok(ItemWriteOptions::default().with_precondition(if_match(etag)?))
    }
}

/// The precondition of a batch replace: `If-Match` the etag of the document as the domain expects
/// it, or, when the read showed something else (`None`), a precondition that cannot hold. The
/// doomed operation stays in the batch rather than failing the commit early, so the service's
/// first failing operation, in the batch's order (head, key, entry, transaction, balance), decides
/// the outcome, as in every store.
fn guarded(etag: Option<Option<String>>) -> Result<Precondition, StoreError> {
    match etag {
        Some(etag) => if_match(etag.as_deref()),
        None => Ok(Precondition::if_match(
            "\"paracell-not-as-read\"".to_owned(),
        )),
    }
}

/// "Only if the document is still the one read": every conditional write's precondition.
fn if_match(etag: Option<&str>) -> Result<Precondition, StoreError> {
    let etag = etag.ok_or_else(|| StoreError::Failed("document without _etag".into()))?;
    Ok(Precondition::if_match(etag.to_owned()))
}

/// A queried document as its type.
fn document<T: DeserializeOwned>(doc: serde_json::Value) -> Result<T, StoreError> {
    serde_json::from_value(doc).map_err(|e| StoreError::Failed(format!("unreadable document: {e}")))
}

fn failed<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Failed(e.to_string())
}

fn parameter(query: Query, name: &str, value: impl serde::Serialize) -> Result<Query, StoreError> {
    query
        .with_parameter(name, value)
        .map_err(|e| StoreError::Failed(format!("query parameter {name}: {e}")))
}

#[async_trait]
impl TransactionStore for CosmosStore {
    async fn create_view(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        account: &AccountId,
        currency: Currency,
    ) -> Result<CreateView, StoreError> {
        // One single-partition query for the three documents (a transactional batch of reads would
        // fail as a whole on the first missing one, and the key's record usually is).
        let (key_id, balance_id) = (
            documents::key_id(key),
            documents::balance_id(account, currency),
        );
        let query = Query::from(
            "SELECT * FROM c WHERE c.tenant = @tenant AND c.id IN (@head, @key, @balance)",
        );
        let query = parameter(query, "@tenant", tenant.as_str())?;
        let query = parameter(query, "@head", documents::HEAD_ID)?;
        let query = parameter(query, "@key", &key_id)?;
        let query = parameter(query, "@balance", &balance_id)?;
        let docs: Vec<serde_json::Value> = self
            .query(query, FeedScope::partition(tenant.to_string()))
            .await?;
        let mut view = CreateView::default();
        for doc in docs {
            let id = doc.get("id").and_then(|id| id.as_str()).unwrap_or_default();
            if id == documents::HEAD_ID {
                let head: HeadDoc = document(doc)?;
                view.head = Some(head.head().map_err(failed)?);
                view.stamps.head = head.etag;
            } else if id == key_id {
                let record: KeyDoc = document(doc)?;
                view.record = Some(record.record(tenant, key).map_err(failed)?);
            } else if id == balance_id {
                let balance: BalanceDoc = document(doc)?;
                view.balance = Some(balance.snapshot().map_err(failed)?);
                view.stamps.balance = balance.etag;
            }
        }
        Ok(view)
    }

    async fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        let tenant = &commit.head.tenant;
        let entry = &commit.entry;
        let replace_if =
            |precondition| BatchReplaceOptions::default().with_precondition(precondition);
        let mut slots = Vec::with_capacity(5);
        let mut batch = TransactionalBatch::new(tenant.to_string());
        // The fence: the head read by the domain, still as it was (its etag guards the replace).
        let head = HeadDoc::new(&commit.head);
        batch = match commit.fence {
            Fence::Absent => batch.create_item(&head).map_err(failed)?,
            Fence::Head { epoch, seq, role } => {
                let etag = match &commit.stamps.head {
                    // The head the decision read: its etag is the fence.
                    Some(read) => Some(Some(read.clone())),
                    None => self
                        .read::<HeadDoc>(tenant, documents::HEAD_ID)
                        .await?
                        .filter(|h| h.epoch == epoch && h.seq == seq && h.role == role.as_str())
                        .map(|h| h.etag),
                };
                let guard = replace_if(guarded(etag)?);
                batch
                    .replace_item(documents::HEAD_ID.to_owned(), &head, Some(guard))
                    .map_err(failed)?
            }
        };
        slots.push(Slot::Head);
        // Created, so the batch fails if the key already has a record.
        batch = batch
            .create_item(KeyDoc::completed_from(entry))
            .map_err(failed)?;
        slots.push(Slot::Key);
        if commit.source == EntrySource::Committed {
            batch = batch
                .create_item(EntryDoc::new(entry, true))
                .map_err(failed)?;
            slots.push(Slot::Entry);
        }
        if let Some(write) = &commit.ledger {
            let b = &write.balance;
            if b.available.is_sign_negative() && !b.available.is_zero() {
                return Err(CommitError::BalanceConflict);
            }
            batch = batch
                .create_item(TransactionDoc::new(&write.transaction).map_err(failed)?)
                .map_err(failed)?;
            slots.push(Slot::Transaction);
            let balance = BalanceDoc::new(b);
            batch = if b.expected_version == 0 {
                batch.create_item(&balance)
            } else {
                let etag = match &commit.stamps.balance {
                    Some(read) => Some(Some(read.clone())),
                    None => self
                        .read::<BalanceDoc>(tenant, &balance.id)
                        .await?
                        .filter(|c| c.version == b.expected_version)
                        .map(|c| c.etag),
                };
                batch.replace_item(
                    balance.id.clone(),
                    &balance,
                    Some(replace_if(guarded(etag)?)),
                )
            }
            .map_err(failed)?;
            slots.push(Slot::Balance);
        }
        let response = self
            .container
            .execute_transactional_batch(batch, None)
            .await
            .map_err(|e| CommitError::Store(store_error("batch", &e)))?;
        let results = response
            .into_model()
            .map_err(|e| CommitError::Store(StoreError::Failed(format!("batch response: {e}"))))?;
        let statuses: Vec<u16> = results.results().iter().map(|r| r.status_code()).collect();
        errors::batch_outcome(&slots, &statuses)
    }

    async fn head(&self, tenant: &TenantId) -> Result<Option<TenantHead>, StoreError> {
        self.read::<HeadDoc>(tenant, documents::HEAD_ID)
            .await?
            .map(|doc| doc.head().map_err(failed))
            .transpose()
    }

    async fn put_head(&self, fence: Fence, head: TenantHead) -> Result<(), CommitError> {
        let tenant = head.tenant.to_string();
        let doc = HeadDoc::new(&head);
        let written = match fence {
            Fence::Absent => {
                self.container
                    .create_item(tenant, documents::HEAD_ID, &doc, None)
                    .await
            }
            Fence::Head { epoch, seq, role } => {
                let current = self
                    .read::<HeadDoc>(&head.tenant, documents::HEAD_ID)
                    .await?;
                let Some(current) =
                    current.filter(|h| h.epoch == epoch && h.seq == seq && h.role == role.as_str())
                else {
                    return Err(CommitError::HeadMoved);
                };
                let options = Self::if_match(current.etag.as_deref())?;
                self.container
                    .replace_item(tenant, documents::HEAD_ID, &doc, Some(options))
                    .await
            }
        };
        match written {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 409) || is_status(&e, 412) || is_status(&e, 404) => {
                Err(CommitError::HeadMoved)
            }
            Err(e) => Err(CommitError::Store(store_error("put head", &e))),
        }
    }

    async fn receive(&self, entry: &SealedEntry) -> Result<Received, StoreError> {
        let doc = EntryDoc::new(entry, false);
        match self
            .container
            .create_item(entry.tenant().to_string(), &doc.id, &doc, None)
            .await
        {
            Ok(_) => Ok(Received::Stored),
            Err(e) if is_status(&e, 409) => {
                let existing = self
                    .read::<EntryDoc>(entry.tenant(), &doc.id)
                    .await?
                    .ok_or_else(|| StoreError::Failed("entry refused but not found".into()))?;
                paracell_domain::replication::Digest::parse(&existing.digest)
                    .map(Received::Existing)
                    .ok_or_else(|| StoreError::Failed("stored entry without a digest".into()))
            }
            Err(e) => Err(store_error("receive entry", &e)),
        }
    }

    async fn entry(&self, tenant: &TenantId, seq: u64) -> Result<Option<SealedEntry>, StoreError> {
        self.read::<EntryDoc>(tenant, &documents::entry_id(seq))
            .await?
            .map(|doc| doc.entry().map_err(failed))
            .transpose()
    }

    async fn discard_received(
        &self,
        tenant: &TenantId,
        seq: u64,
        digest: &paracell_domain::replication::Digest,
    ) -> Result<bool, StoreError> {
        let id = documents::entry_id(seq);
        let Some(doc) = self.read::<EntryDoc>(tenant, &id).await? else {
            return Ok(false);
        };
        if doc.digest != digest.to_string() {
            return Ok(false);
        }
        // If-Match the document read: only that very entry goes, never one committed in its place.
        match self
            .container
            .delete_item(
                tenant.to_string(),
                &id,
                Some(Self::if_match(doc.etag.as_deref())?),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_status(&e, 404) || is_status(&e, 412) => Ok(false),
            Err(e) => Err(store_error("discard entry", &e)),
        }
    }

    async fn entries_after(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<SealedEntry>, StoreError> {
        // One partition; ordered here rather than with ORDER BY (the local stand-in has no query
        // plans). A tenant's log is read in bounded pages by its callers.
        let query = Query::from(
            "SELECT * FROM c WHERE c.tenant = @tenant AND c.kind = 'entry' AND c.seq > @after",
        );
        let query = parameter(
            parameter(query, "@tenant", tenant.as_str())?,
            "@after",
            after,
        )?;
        let mut docs: Vec<EntryDoc> = self
            .query(query, FeedScope::partition(tenant.to_string()))
            .await?;
        docs.sort_by_key(|d| d.seq);
        docs.truncate(limit);
        docs.iter().map(|d| d.entry().map_err(failed)).collect()
    }

    async fn transaction(
        &self,
        tenant: &TenantId,
        id: TransactionId,
    ) -> Result<Option<Transaction>, StoreError> {
        // The partition key is the tenant: another tenant's id is simply not found.
        self.read::<TransactionDoc>(tenant, &documents::transaction_id(id))
            .await?
            .map(|doc| doc.transaction().map_err(failed))
            .transpose()
    }

    async fn balance(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        currency: Currency,
    ) -> Result<Option<BalanceSnapshot>, StoreError> {
        self.read::<BalanceDoc>(tenant, &documents::balance_id(account, currency))
            .await?
            .map(|doc| doc.snapshot().map_err(failed))
            .transpose()
    }

    async fn balances(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Vec<BalanceSnapshot>, StoreError> {
        // Scoped to the tenant's partition and filtered on the tenant as well.
        let query = Query::from(
            "SELECT * FROM c WHERE c.tenant = @tenant AND c.kind = 'balance' AND c.account = @account",
        );
        let query = parameter(
            parameter(query, "@tenant", tenant.as_str())?,
            "@account",
            account.as_str(),
        )?;
        let docs: Vec<BalanceDoc> = self
            .query(query, FeedScope::partition(tenant.to_string()))
            .await?;
        docs.iter().map(|d| d.snapshot().map_err(failed)).collect()
    }

    async fn idempotency_record(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.read::<KeyDoc>(tenant, &documents::key_id(key))
            .await?
            .map(|doc| doc.record(tenant, key).map_err(failed))
            .transpose()
    }

    async fn pending_entries(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<EntryPage, StoreError> {
        // Pending entries of every tenant. The order is applied here rather than with ORDER BY,
        // which needs a cross-partition query plan; a deployment reads the change feed instead
        // (the relay function), and this query serves local runs and backlogs.
        let query = Query::from(
            "SELECT * FROM c WHERE c.kind = 'entry' AND c.pending = true AND c.outbox_order > @after",
        );
        let query = parameter(query, "@after", after.unwrap_or(""))?;
        let mut docs: Vec<EntryDoc> = self.query(query, FeedScope::full_container()).await?;
        docs.sort_by(|a, b| a.outbox_order.cmp(&b.outbox_order));
        docs.truncate(limit.saturating_add(1));
        let entries = docs
            .iter()
            .map(|d| d.entry().map_err(failed))
            .collect::<Result<_, _>>()?;
        Ok(EntryPage::from_ordered(entries, limit))
    }

    async fn mark_relayed(&self, entries: &[EntryRef]) -> Result<(), StoreError> {
        for r in entries {
            let id = documents::entry_id(r.seq);
            let Some(mut doc) = self.read::<EntryDoc>(&r.tenant, &id).await? else {
                continue;
            };
            if !doc.pending {
                continue;
            }
            let options = Self::if_match(doc.etag.as_deref())?;
            doc.pending = false;
            match self
                .container
                .replace_item(r.tenant.to_string(), &id, &doc, Some(options))
                .await
            {
                // 412: changed since the read, which only marking it relayed does.
                Ok(_) => {}
                Err(e) if is_status(&e, 412) || is_status(&e, 404) => {}
                Err(e) => return Err(store_error("mark relayed", &e)),
            }
        }
        Ok(())
    }
}
