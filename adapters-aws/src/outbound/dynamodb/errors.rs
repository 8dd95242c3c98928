//! SDK errors mapped to the domain's at the seam: the only place that knows DynamoDB's error codes.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::CancellationReason;
use paracell_domain::ports::{CommitError, CommitSlot, StoreError};

/// Error codes that mean "try again later" rather than "this request is wrong".
const TRANSIENT_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionInProgressException",
];

/// Seconds a client should wait after the store's own retries gave up.
pub(crate) const RETRY_AFTER_SECS: u32 = 1;

fn unavailable(detail: String) -> StoreError {
    StoreError::Unavailable {
        retry_after_secs: RETRY_AFTER_SECS,
        detail,
    }
}

/// Maps any SDK failure: no answer (timeouts, refused or broken connections, unreadable replies),
/// throttling and 5xx answers are `Unavailable` (503 with `Retry-After`); everything else is `Failed`
/// (500), because retrying an invalid request cannot help.
pub(crate) fn store_error<E, R>(operation: &str, error: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let detail = format!(
        "{operation}: {}",
        aws_sdk_dynamodb::error::DisplayErrorContext(&error)
    );
    match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            unavailable(detail)
        }
        SdkError::ServiceError(context) => {
            if context
                .err()
                .code()
                .is_some_and(|code| TRANSIENT_CODES.contains(&code))
            {
                unavailable(detail)
            } else {
                StoreError::Failed(detail)
            }
        }
        _ => StoreError::Failed(detail),
    }
}

/// The outcome of a conditional write whose failed condition means "nothing to do" (the key is no
/// longer held, the event is unknown): success either way; any other failure is mapped as above.
pub(crate) fn unless_condition_failed<T, E, R>(
    operation: &str,
    result: Result<T, SdkError<E, R>>,
) -> Result<(), StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error().and_then(ProvideErrorMetadata::code)
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(())
        }
        Err(e) => Err(store_error(operation, e)),
    }
}

/// Maps `TransactionCanceledException` reasons (one per write, in `slots` order: what each write
/// guards) to the domain outcome. The first failed condition in the domain's order decides
/// ([`CommitError::first_failed`]), as in every store.
pub(crate) fn cancelled_commit(
    slots: &[CommitSlot],
    reasons: &[CancellationReason],
) -> CommitError {
    let codes: Vec<&str> = (0..reasons.len())
        .map(|i| reasons.get(i).and_then(|r| r.code()).unwrap_or("None"))
        .collect();
    let failed = slots
        .iter()
        .zip(&codes)
        .filter(|(_, code)| **code == "ConditionalCheckFailed")
        .map(|(slot, _)| *slot);
    if let Some(outcome) = CommitError::first_failed(failed) {
        return outcome;
    }
    // Another transaction touched one of these items at the same moment: nothing was written, so
    // reading the head again and deciding again is the right answer.
    if codes.contains(&"TransactionConflict") {
        return CommitError::HeadMoved;
    }
    if codes
        .iter()
        .any(|c| matches!(*c, "ThrottlingError" | "ProvisionedThroughputExceeded"))
    {
        return CommitError::Store(unavailable(format!("commit throttled: {codes:?}")));
    }
    CommitError::Store(StoreError::Failed(format!("commit cancelled: {codes:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reasons(codes: &[&str]) -> Vec<CancellationReason> {
        codes
            .iter()
            .map(|c| CancellationReason::builder().code(*c).build())
            .collect()
    }

    #[test]
    fn throttling_is_unavailable_and_a_bad_request_is_a_failure() {
        use aws_sdk_dynamodb::error::ErrorMetadata;
        use aws_sdk_dynamodb::operation::get_item::GetItemError;
        let answer = |code: &str| {
            let error = GetItemError::generic(ErrorMetadata::builder().code(code).build());
            store_error("GetItem", SdkError::<_, ()>::service_error(error, ()))
        };
        for code in [
            "ThrottlingException",
            "ProvisionedThroughputExceededException",
            "InternalServerError",
        ] {
            assert!(
                matches!(
                    answer(code),
                    StoreError::Unavailable {
                        retry_after_secs: 1,
                        ..
                    }
                ),
                "{code}"
            );
        }
        assert!(matches!(
            answer("ValidationException"),
            StoreError::Failed(_)
        ));
    }

    #[test]
    fn a_failed_condition_is_nothing_to_do_and_other_failures_are_mapped() {
        use aws_sdk_dynamodb::error::ErrorMetadata;
        use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
        let answer = |code: &str| {
            let error = UpdateItemError::generic(ErrorMetadata::builder().code(code).build());
            unless_condition_failed::<(), _, _>(
                "UpdateItem",
                Err(SdkError::<_, ()>::service_error(error, ())),
            )
        };
        assert_eq!(answer("ConditionalCheckFailedException"), Ok(()));
        assert!(matches!(
            answer("ThrottlingException"),
            Err(StoreError::Unavailable { .. })
        ));
        assert!(matches!(
            answer("ValidationException"),
            Err(StoreError::Failed(_))
        ));
    }

    #[test]
    fn each_failed_condition_is_its_domain_outcome() {
        use CommitSlot::*;
        let ccf = "ConditionalCheckFailed";
        let all = [Head, Key, Entry, Transaction, Balance];
        let outcome = |codes: &[&str]| cancelled_commit(&all, &reasons(codes));
        assert_eq!(
            outcome(&[ccf, ccf, "None", "None", "None"]),
            CommitError::HeadMoved,
            "the head first"
        );
        assert_eq!(
            outcome(&["None", ccf, "None", ccf, "None"]),
            CommitError::KeyConflict
        );
        assert_eq!(
            outcome(&["None", "None", ccf, "None", "None"]),
            CommitError::HeadMoved,
            "the entry's position is taken"
        );
        assert_eq!(
            outcome(&["None", "None", "None", ccf, "None"]),
            CommitError::DuplicateTransaction
        );
        assert_eq!(
            outcome(&["None", "None", "None", "None", ccf]),
            CommitError::BalanceConflict
        );
        assert_eq!(
            outcome(&["None", "TransactionConflict", "None", "None", "None"]),
            CommitError::HeadMoved
        );
        assert!(matches!(
            outcome(&["ThrottlingError", "None", "None", "None", "None"]),
            CommitError::Store(StoreError::Unavailable {
                retry_after_secs: 1,
                ..
            })
        ));
        assert!(matches!(
            outcome(&["None", "None", "None", "None", "ValidationError"]),
            CommitError::Store(StoreError::Failed(_))
        ));
        assert_eq!(
            cancelled_commit(&[Head, Key], &reasons(&["None", ccf])),
            CommitError::KeyConflict,
            "slots follow the commit's shape (a refusal has no ledger writes)"
        );
    }
}
