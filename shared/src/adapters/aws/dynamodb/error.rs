//! SDK errors to [`StoreError`]: every failure names the backend and the
//! operation and carries the SDK's full message (`DisplayErrorContext`), so
//! a throttled or refused request can be told apart in the logs.

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;

use super::codec::Item;
use crate::errors::StoreError;

const BACKEND: &str = "dynamodb";

pub(super) fn is_ccf(
    e: &aws_sdk_dynamodb::error::SdkError<UpdateItemError, impl std::fmt::Debug>,
) -> bool {
    e.as_service_error()
        .is_some_and(|e| e.is_conditional_check_failed_exception())
}

/// The item a failed conditional UpdateItem returned (ALL_OLD), if any.
/// `Err` when the failure was not a failed condition.
pub(super) fn ccf_item<R: std::fmt::Debug + Send + Sync + 'static>(
    operation: &'static str,
    e: aws_sdk_dynamodb::error::SdkError<UpdateItemError, R>,
) -> Result<Option<Item>, StoreError> {
    match e.as_service_error() {
        Some(UpdateItemError::ConditionalCheckFailedException(c)) => Ok(c.item().cloned()),
        _ => Err(backend(operation, e)),
    }
}

pub(super) fn backend(operation: &'static str, e: impl std::error::Error) -> StoreError {
    StoreError::Backend {
        backend: BACKEND,
        operation,
        source: DisplayErrorContext(&e).to_string().into(),
    }
}

pub(super) fn backend_msg(operation: &'static str, message: String) -> StoreError {
    StoreError::Backend {
        backend: BACKEND,
        operation,
        source: message.into(),
    }
}

/// The cancellation reasons of a cancelled transaction, one per action
/// (`"None"` for an action that was fine); empty for any other error.
pub(super) fn cancellation_codes<R>(e: &SdkError<TransactWriteItemsError, R>) -> Vec<&str> {
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(tc)) => tc
            .cancellation_reasons()
            .iter()
            .map(|r| r.code().unwrap_or("None"))
            .collect(),
        _ => Vec::new(),
    }
}

/// Why `create_run`'s transaction failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cancellation {
    /// The META put's `attribute_not_exists(PK)` failed: the run exists.
    RunExists,
    /// Another transaction touched the same items: worth a retry.
    Contended,
    /// Anything else.
    Other,
}

/// Reads a transaction's cancellation reasons (META's put first). The run
/// existing wins over a conflict: a retry could only fail the same way.
pub(super) fn classify_cancellation(codes: &[&str]) -> Cancellation {
    if codes.first() == Some(&"ConditionalCheckFailed") {
        Cancellation::RunExists
    } else if codes.contains(&"TransactionConflict") {
        Cancellation::Contended
    } else {
        Cancellation::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancellations_are_told_apart() {
        use Cancellation::*;
        for (codes, want) in [
            (&["ConditionalCheckFailed", "None"][..], RunExists),
            (
                &["ConditionalCheckFailed", "TransactionConflict"],
                RunExists,
            ),
            (&["None", "TransactionConflict"], Contended),
            (&["TransactionConflict"], Contended),
            (&["None", "ValidationError"], Other),
            (&[], Other),
        ] {
            assert_eq!(classify_cancellation(codes), want, "{codes:?}");
        }
    }
}
