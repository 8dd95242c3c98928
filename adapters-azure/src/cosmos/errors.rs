//! SDK errors mapped to the domain's at the seam: the only place that knows Cosmos DB's status codes.

use azure_data_cosmos::CosmosError;
use paracell_domain::ports::{CommitError, StoreError};

/// Seconds a client should wait after the store's own retries gave up.
pub(crate) const RETRY_AFTER_SECS: u32 = 1;

fn status_of(error: &CosmosError) -> u16 {
    u16::from(error.status().status_code())
}

pub(crate) fn is_status(error: &CosmosError, status: u16) -> bool {
    status_of(error) == status
}

/// Throttling (429), timeouts (408), "retry with" (449), service unavailability (503) and failures
/// that never reached the service are `Unavailable` (503 with `Retry-After`) once the SDK's own
/// retries are spent; anything else is `Failed` (500), because retrying cannot help.
pub(crate) fn store_error(operation: &str, error: &CosmosError) -> StoreError {
    let status = status_of(error);
    let detail = format!("{operation}: status {status}: {error}");
    if matches!(status, 408 | 429 | 449 | 500 | 502 | 503 | 504) {
        StoreError::Unavailable {
            retry_after_secs: RETRY_AFTER_SECS,
            detail,
        }
    } else {
        StoreError::Failed(detail)
    }
}

/// The position of each operation in a commit's batch.
const KEY_WRITE: usize = 0;
const TRANSACTION_WRITE: usize = 1;
const BALANCE_WRITE: usize = 2;

/// Maps a batch's per-operation statuses to the commit's outcome. On failure the service applies
/// nothing and answers the failing operation's own status, 424 for the others.
pub(crate) fn batch_outcome(statuses: &[u16]) -> Result<(), CommitError> {
    let at = |i: usize| statuses.get(i).copied().unwrap_or(0);
    if !statuses.is_empty() && statuses.iter().all(|s| (200..300).contains(s)) {
        return Ok(());
    }
    if matches!(at(KEY_WRITE), 404 | 412) {
        return Err(CommitError::KeyNotHeld);
    }
    if at(TRANSACTION_WRITE) == 409 {
        return Err(CommitError::DuplicateTransaction);
    }
    if matches!(at(BALANCE_WRITE), 404 | 409 | 412) {
        return Err(CommitError::BalanceConflict);
    }
    if statuses.iter().any(|s| matches!(s, 408 | 429 | 449 | 503)) {
        return Err(CommitError::Store(StoreError::Unavailable {
            retry_after_secs: RETRY_AFTER_SECS,
            detail: format!("batch throttled: {statuses:?}"),
        }));
    }
    Err(CommitError::Store(StoreError::Failed(format!(
        "batch failed: {statuses:?}"
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failed_operation_is_its_domain_outcome() {
        assert_eq!(batch_outcome(&[200, 201, 201, 201]), Ok(()));
        assert_eq!(
            batch_outcome(&[412, 424, 424, 424]),
            Err(CommitError::KeyNotHeld)
        );
        assert_eq!(
            batch_outcome(&[424, 409, 424, 424]),
            Err(CommitError::DuplicateTransaction)
        );
        assert_eq!(
            batch_outcome(&[424, 424, 412, 424]),
            Err(CommitError::BalanceConflict)
        );
        assert_eq!(
            batch_outcome(&[424, 424, 409, 424]),
            Err(CommitError::BalanceConflict),
            "a balance created meanwhile"
        );
        assert!(matches!(
            batch_outcome(&[429, 424, 424, 424]),
            Err(CommitError::Store(StoreError::Unavailable { .. }))
        ));
        assert!(matches!(
            batch_outcome(&[424, 424, 424, 409]),
            Err(CommitError::Store(StoreError::Failed(_)))
        ));
        assert!(matches!(
            batch_outcome(&[]),
            Err(CommitError::Store(StoreError::Failed(_)))
        ));
    }
}
