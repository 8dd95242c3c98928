//! SDK errors mapped to the domain's at the seam: the only place that knows Cosmos DB's status codes.

use azure_data_cosmos::CosmosError;
use paracell_domain::ports::{CommitError, CommitSlot, StoreError};

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

/// Maps a batch's per-operation statuses (in `slots` order: what each operation guards) to the
/// commit's outcome. On failure the service applies nothing and answers the failing operation's own
/// status, 424 for the others; the first failed condition in the domain's order decides
/// ([`CommitError::first_failed`]), as in every store.
pub(crate) fn batch_outcome(slots: &[CommitSlot], statuses: &[u16]) -> Result<(), CommitError> {
    if !statuses.is_empty() && statuses.iter().all(|s| (200..300).contains(s)) {
        return Ok(());
    }
    let failed = slots.iter().zip(statuses).filter_map(|(slot, status)| {
        let refused = match slot {
            CommitSlot::Entry | CommitSlot::Transaction => *status == 409,
            CommitSlot::Head | CommitSlot::Key | CommitSlot::Balance => {
                matches!(status, 404 | 409 | 412)
            }
        };
        refused.then_some(*slot)
    });
    if let Some(outcome) = CommitError::first_failed(failed) {
        return Err(outcome);
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
        use CommitSlot::*;
        let all = [Head, Key, Entry, Transaction, Balance];
        let outcome = |statuses: &[u16]| batch_outcome(&all, statuses);
        assert_eq!(outcome(&[200, 200, 201, 201, 201]), Ok(()));
        assert_eq!(
            outcome(&[412, 424, 424, 424, 424]),
            Err(CommitError::HeadMoved)
        );
        assert_eq!(
            outcome(&[424, 412, 424, 424, 424]),
            Err(CommitError::KeyConflict)
        );
        assert_eq!(
            outcome(&[424, 424, 409, 424, 424]),
            Err(CommitError::HeadMoved)
        );
        assert_eq!(
            outcome(&[424, 424, 424, 409, 424]),
            Err(CommitError::DuplicateTransaction)
        );
        assert_eq!(
            outcome(&[424, 424, 424, 424, 412]),
            Err(CommitError::BalanceConflict)
        );
        assert_eq!(
            outcome(&[424, 424, 424, 424, 409]),
            Err(CommitError::BalanceConflict),
            "a balance created meanwhile"
        );
        assert!(matches!(
            outcome(&[429, 424, 424, 424, 424]),
            Err(CommitError::Store(StoreError::Unavailable { .. }))
        ));
        assert!(matches!(
            outcome(&[424, 424, 424, 424, 400]),
            Err(CommitError::Store(StoreError::Failed(_)))
        ));
        assert!(matches!(
            outcome(&[]),
            Err(CommitError::Store(StoreError::Failed(_)))
        ));
        assert_eq!(
            batch_outcome(&[Head, Key], &[424, 409]),
            Err(CommitError::KeyConflict),
            "a refusal's batch has no ledger operations"
        );
    }
}
