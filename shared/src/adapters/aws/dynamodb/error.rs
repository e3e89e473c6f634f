//! SDK errors to [`StoreError`]: every failure names the backend and the
//! operation and carries the SDK's full message (`DisplayErrorContext`), so
//! a throttled or refused request can be told apart in the logs.

use aws_sdk_dynamodb::error::DisplayErrorContext;
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
