//! The read use cases: one transaction, one account's balances.

use crate::CellPorts;
use crate::ports::{BalanceSnapshot, StoreError};
use crate::tenancy::TenantId;
use crate::transaction::{AccountId, Transaction, TransactionId};

/// A tenant's transaction; `None` also when the id belongs to another tenant.
pub async fn transaction(
    ports: &CellPorts,
    tenant: &TenantId,
    id: TransactionId,
) -> Result<Option<Transaction>, StoreError> {
    ports.store.transaction(tenant, id).await
}

/// An account's balances, sorted by currency code; empty when the account has none.
pub async fn balances(
    ports: &CellPorts,
    tenant: &TenantId,
    account: &AccountId,
) -> Result<Vec<BalanceSnapshot>, StoreError> {
    let mut balances = ports.store.balances(tenant, account).await?;
    balances.sort_by_key(|b| b.currency);
    Ok(balances)
}
