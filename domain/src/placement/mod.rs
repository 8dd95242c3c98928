//! Where a tenant lives: the one authority ([`registry`]: primary, epoch, standbys, changed only by
//! compare-and-set), each cell's own view of a tenant (its [`TenantHead`]: role, epoch, replication
//! position), checked inside every atomic write so a cell that is not the tenant's primary can never
//! book for it, and the operations that move a tenant ([`migrate`]).

pub mod failover;
mod head;
pub mod lease;
pub mod migrate;
pub mod quorum;
pub mod reconcile;
pub mod registry;
pub mod status;

pub use head::{Fence, TenantHead, TenantRole, thaw};
