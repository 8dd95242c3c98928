//! Where a tenant lives: each cell's view of a tenant (its [`TenantHead`]: role, epoch, replication
//! position), checked inside every atomic write so a cell that is not the tenant's primary can never
//! book for it.

mod head;

pub use head::{Fence, TenantHead, TenantRole};
