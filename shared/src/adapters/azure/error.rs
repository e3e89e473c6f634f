//! `azure_core` errors to the crate's error enums: each names the service,
//! the operation and carries the HTTP status and the service's error code
//! (`QueueNotFound`, `UpdateConditionNotSatisfied`, ...), so a throttled or
//! refused request can be told apart in the logs. No key or signature ever
//! appears in them (requests are signed in headers, never in the text).

use azure_core::error::ErrorKind;
use azure_core::http::StatusCode;

use crate::app::messages::QueueName;
use crate::errors::{BlobError, QueueError, StoreError};

/// The HTTP status and service error code of a failed request, if it got
/// an answer.
pub(crate) fn status_and_code(e: &azure_core::Error) -> (Option<u16>, Option<&str>) {
    match e.kind() {
        ErrorKind::HttpResponse {
            status, error_code, ..
        } => (Some(u16::from(*status)), error_code.as_deref()),
        _ => (None, None),
    }
}

pub(crate) fn is_status(e: &azure_core::Error, status: StatusCode) -> bool {
    e.http_status() == Some(status)
}

fn describe(operation: &str, e: &azure_core::Error) -> String {
    match status_and_code(e) {
        (Some(status), Some(code)) => format!("{operation}: HTTP {status} {code}: {e}"),
        (Some(status), None) => format!("{operation}: HTTP {status}: {e}"),
        _ => format!("{operation}: {e}"),
    }
}

pub(crate) fn queue_error(queue: QueueName, operation: &str, e: &azure_core::Error) -> QueueError {
    QueueError::Backend {
        backend: "azure-queue",
        queue: queue.as_str(),
        source: describe(operation, e).into(),
    }
}

pub(crate) fn blob_error(operation: &'static str, key: &str, e: &azure_core::Error) -> BlobError {
    BlobError::Backend {
        backend: "azure-blob",
        operation,
        key: key.to_string(),
        source: describe(operation, e).into(),
    }
}

pub(crate) fn store_error(operation: &'static str, e: &azure_core::Error) -> StoreError {
    StoreError::Backend {
        backend: "azure-table",
        operation,
        source: describe(operation, e).into(),
    }
}

pub(crate) fn store_msg(operation: &'static str, message: String) -> StoreError {
    StoreError::Backend {
        backend: "azure-table",
        operation,
        source: message.into(),
    }
}
