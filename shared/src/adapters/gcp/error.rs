//! The causes the GCP adapters box into the ports' errors
//! (`StoreError::Backend`, `BlobError::Backend`, `QueueError::Backend`):
//! what was asked of which resource, and the service's own code and
//! message, as text so no client type leaves this module's parent.

use thiserror::Error;

/// A failed Pub/Sub call.
#[derive(Debug, Error)]
pub enum PubSubError {
    #[error("{operation} on `{resource}` failed: {code}: {message}")]
    Rpc {
        operation: &'static str,
        resource: String,
        /// The gRPC status code (`NotFound`, `PermissionDenied`, ...).
        code: String,
        message: String,
    },
}

/// A failed Firestore call.
#[derive(Debug, Error)]
pub enum FirestoreError {
    #[error("{operation} of `{document}` failed: {message}")]
    Call {
        operation: &'static str,
        document: String,
        /// The client's full error text (gRPC code and message).
        message: String,
    },
}

/// A failed Cloud Storage call.
#[derive(Debug, Error)]
pub enum StorageError {
    #[error("{operation} of `gs://{bucket}/{object}` failed{}: {message}", .status.map(|s| format!(" with HTTP {s}")).unwrap_or_default())]
    Call {
        operation: &'static str,
        bucket: String,
        object: String,
        status: Option<u16>,
        message: String,
    },
}
