//! Cross-cloud replication: every outcome a tenant's primary commits reaches its standbys, applied
//! exactly once in effect, with its idempotency record and response bytes, in order.
//!
//! | module | holds |
//! |---|---|
//! | [`Entry`], [`SealedEntry`] | one committed outcome, its canonical document and digest chain |
//! | [`apply`] | the standby's use case: receive, hold, apply in order, report |
//! | [`batch`] | the wire format between cells: a CloudEvents batch in, per-entry results out |
//! | [`signature`] | authenticating deliveries between cells (Standard Webhooks HMAC) |
//! | [`relay`] | the primary's use case: deliver committed entries to every destination, retry, dead-letter |
//! | [`bus`] | what every event-bus destination shares: screening, packing calls, one outcome per entry |
//!
//! Ordering and completeness: a tenant's entries carry a gapless sequence number and a digest chain
//! (entry `n` names the digest of entry `n - 1`); the tenant's head in each cell records the last
//! entry committed or applied ([`crate::placement::TenantHead`]). "Is the standby complete?" is then
//! an exact comparison of two positions, not a lag estimate. The price: one tenant's writes serialise
//! on its head (`docs/replication.md`, `BENCHMARKS.md`).

pub mod apply;
pub mod batch;
pub mod bus;
mod entry;
pub mod leftovers;
mod position;
pub mod relay;
pub mod signature;
pub mod verify;

pub use entry::{ENTRY_VERSION, Effect, Entry, EntryError, SealedEntry};
pub use position::{Digest, Position};
