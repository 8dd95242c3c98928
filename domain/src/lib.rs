//! # paracell-domain
//!
//! The pure core of a Paracell cell. Both cloud adapters call exactly one entry point,
//! [`Cell::handle`], with a neutral [`http::ApiRequest`] and get a neutral [`http::ApiResponse`]
//! back; every business and HTTP rule lives in this crate, once. No cloud SDK, no async runtime.
//!
//! | module | holds |
//! |---|---|
//! | [`cell`] | the entry point: routing, tenant, dispatch to a use case |
//! | [`contract`] | the client-visible contract: [`http`] (neutral request/response, routing, media types, RFC 9457 problems), [`validation`] (body → [`NewTransaction`], all violations at once), the tenant rules, and the [`contract::seam`] that maps domain results to responses |
//! | [`ledger`] | [`money`], [`transaction`], balance arithmetic, the create and read use cases, the public [`events`] |
//! | [`tenancy`], [`idempotency`], [`time`] | values that can only be built valid |
//! | [`replication`] | replication entries, the standby's apply, the relay, signed deliveries |
//! | [`edge`] | the edge router's core: tenant → cell from the placement registry, forwarding, safe retries, static stability |
//! | [`placement`] | each cell's view of a tenant: role, epoch, replication position |
//! | [`observability`] | the metrics both clouds emit (one list of names and dimensions) and the W3C trace context |
//! | [`ports`] | traits the outside world implements: store, clock, ids, HTTP, sleep |
//! | [`memory`] | in-memory implementations of every port (feature `memory`) |
//! | `testing` | the store contract suite, fault injection, samples, `block_on` (feature `testing`, for tests only) |
//! | [`config`] | [`CellConfig`] from the environment |
//!
//! ```
//! use paracell_domain::{Cell, CellConfig, TenantScope, http::ApiRequest, testing::block_on};
//!
//! let cell = Cell::in_memory(CellConfig::new("cell-a", TenantScope::All).unwrap());
//! let created = block_on(cell.handle(
//!     ApiRequest::new("POST", "/v1/transactions")
//!         .with_header("Content-Type", "application/json")
//!         .with_header("X-Tenant-ID", "coop-1")
//!         .with_header("Idempotency-Key", "k-1")
//!         .with_body(r#"{"account_id":"ACC-1","type":"credit","amount":"125.5","currency":"EUR"}"#),
//! ));
//! assert_eq!(created.status, 201);
//! let body: serde_json::Value = serde_json::from_slice(&created.body).unwrap();
//! assert_eq!(body["amount"], "125.50");
//! ```

#![deny(missing_docs)]

pub mod cell;
pub mod config;
pub mod contract;
mod decode;
pub mod edge;
pub mod idempotency;
pub mod ledger;
#[cfg(feature = "memory")]
pub mod memory;
pub mod observability;
pub mod placement;
pub mod ports;
pub mod replication;
pub mod tenancy;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;

// The public paths of the contract's and the ledger's most used modules.
pub use contract::{http, validation};
pub use ledger::{events, money, transaction};

pub use cell::{Cell, CellPorts};
pub use config::{CellConfig, ConfigError, Limits, PeerConfig, ReplicationConfig, TenantScope};
pub use decode::DecodeError;
pub use idempotency::IdempotencyKey;
pub use money::{Amount, AmountError, Currency, CurrencyError};
pub use tenancy::{CellId, TenantId};
pub use time::Timestamp;
pub use transaction::{
    AccountId, NewTransaction, Transaction, TransactionId, TransactionKind, TransactionStatus,
};
