//! [`GcsBlobStore`]: the [`BlobStore`] port on one Cloud Storage bucket,
//! through the JSON API (which fake-gcs-server speaks too).
//!
//! Keys and prefixes are checked by the same functions as every blob store
//! (`adapters::validate_key`, `validate_prefix`) before any request. `put`
//! is one multipart upload (the object and its content type); `put_file`
//! streams a file up in one request up to the resumable threshold, else as
//! a resumable upload in chunks of `chunk_size` read from the file one at a
//! time (memory stays at one chunk; a failed upload's session is
//! cancelled). `get_to_file` streams into a temporary file beside the
//! destination and renames it over it, so a failed download leaves nothing
//! behind. `link` is a V4 signed URL where the credentials can sign
//! (a service-account key, or IAM `signBlob` from the metadata server's
//! account); against an emulator it is the plain media URL, which the
//! emulator serves without credentials; otherwise `None`.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use gcloud_storage::client::{Client, ClientConfig};
use gcloud_storage::http::Error as HttpError;
use gcloud_storage::http::objects::Object;
use gcloud_storage::http::objects::download::Range;
use gcloud_storage::http::objects::get::GetObjectRequest;
use gcloud_storage::http::objects::list::ListObjectsRequest;
use gcloud_storage::http::objects::upload::{UploadObjectRequest, UploadType};
use gcloud_storage::http::resumable_upload_client::{ChunkSize, UploadStatus};
use gcloud_storage::sign::{SignedURLMethod, SignedURLOptions};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::error::StorageError;
use crate::adapters::{AtomicDownload, validate_key, validate_prefix};
use crate::app::ports::BlobStore;
use crate::errors::BlobError;

const BACKEND: &str = "gcs";

/// Files up to this go up in one request; larger ones resumably.
pub const DEFAULT_RESUMABLE_THRESHOLD: u64 = 16 * 1024 * 1024;
/// Resumable chunks (a multiple of 256 KiB, as Cloud Storage requires).
pub const DEFAULT_CHUNK_SIZE: u64 = 8 * 1024 * 1024;
const CHUNK_QUANTUM: u64 = 256 * 1024;
/// Cloud Storage refuses V4 signed URLs valid for longer than 7 days.
pub const MAX_LINK_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Objects `get` reads into memory; larger ones go through `get_to_file`.
pub const MAX_GET_BYTES: u64 = 512 * 1024 * 1024;

/// Where the bucket is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageEndpoint {
    /// Cloud Storage with Application Default Credentials.
    Google,
    /// An emulator (fake-gcs-server) at this base URL, without credentials.
    Emulator(String),
}

/// The Cloud Storage blob store. Cheap to share behind an `Arc`.
pub struct GcsBlobStore {
    client: Client,
    bucket: String,
    link_ttl: Duration,
    emulator: Option<String>,
    resumable_threshold: u64,
    chunk_size: u64,
}

impl std::fmt::Debug for GcsBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcsBlobStore")
            .field("bucket", &self.bucket)
            .field("emulator", &self.emulator)
            .finish_non_exhaustive()
    }
}

fn backend(
    operation: &'static str,
    bucket: &str,
    key: &str,
    status: Option<u16>,
    message: String,
) -> BlobError {
    BlobError::Backend {
        backend: BACKEND,
        operation,
        key: key.to_string(),
        source: Box::new(StorageError::Call {
            operation,
            bucket: bucket.to_string(),
            object: key.to_string(),
            status,
            message,
        }),
    }
}

/// The HTTP status of a failed call, when the service answered.
fn status_of(e: &HttpError) -> Option<u16> {
    match e {
        HttpError::Response(r) => Some(r.code),
        HttpError::HttpClient(r) | HttpError::RawResponse(r, _) => r.status().map(|s| s.as_u16()),
        _ => None,
    }
}

/// Cloud Storage's bucket name rules (names with dots, which need domain
/// verification, are let through).
pub(super) fn valid_bucket(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&name.len())
        && edge(name.chars().next())
        && edge(name.chars().last())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

impl GcsBlobStore {
    /// A store on `bucket`. With [`StorageEndpoint::Google`] the client
    /// reads Application Default Credentials (and can sign links when they
    /// hold a key or a service account); `link_ttl` is at most 7 days.
    pub async fn connect(
        endpoint: StorageEndpoint,
        bucket: &str,
        link_ttl: Duration,
    ) -> Result<Self, BlobError> {
        super::install_crypto_provider();
        if link_ttl.is_zero() || link_ttl > MAX_LINK_TTL {
            return Err(backend(
                "configure",
                bucket,
                "",
                None,
                format!(
                    "link lifetime {link_ttl:?} must be between 1 s and 7 days (Cloud Storage's limit for signed URLs)"
                ),
            ));
        }
        let (config, emulator) = match endpoint {
            StorageEndpoint::Google => {
                let config = ClientConfig::default().with_auth().await.map_err(|e| {
                    backend(
                        "load credentials",
                        bucket,
                        "",
                        None,
                        format!("{e}; set up Application Default Credentials (on Cloud Run, the service's account)"),
                    )
                })?;
                (config, None)
            }
            StorageEndpoint::Emulator(url) => {
                let url = url.trim_end_matches('/').to_string();
                let config = ClientConfig {
                    storage_endpoint: url.clone(),
                    ..ClientConfig::default()
                }
                .anonymous();
                (config, Some(url))
            }
        };
        Ok(Self {
            client: Client::new(config),
            bucket: bucket.to_string(),
            link_ttl,
            emulator,
            resumable_threshold: DEFAULT_RESUMABLE_THRESHOLD,
            chunk_size: DEFAULT_CHUNK_SIZE,
        })
    }

    /// Files over `threshold` go up resumably in chunks of `chunk_size`
    /// (rounded up to a multiple of 256 KiB). Tests lower both.
    pub fn with_resumable(mut self, threshold: u64, chunk_size: u64) -> Self {
        self.resumable_threshold = threshold;
        self.chunk_size = chunk_size.div_ceil(CHUNK_QUANTUM).max(1) * CHUNK_QUANTUM;
        self
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Creates the bucket if it is missing (tests, emulators; deployments
    /// create it from `terraform/gcp/`).
    pub async fn create_bucket(&self, project: &str) -> Result<(), BlobError> {
        use gcloud_storage::http::buckets::insert::{InsertBucketParam, InsertBucketRequest};
        let request = InsertBucketRequest {
            name: self.bucket.clone(),
            param: InsertBucketParam {
                project: project.to_string(),
                ..Default::default()
            },
            ..Default::default()
        };
        match self.client.insert_bucket(&request).await {
            Ok(_) => Ok(()),
            Err(e) if status_of(&e) == Some(409) => Ok(()),
            Err(e) => Err(backend(
                "create bucket",
                &self.bucket,
                "",
                status_of(&e),
                e.to_string(),
            )),
        }
    }

    fn fail(&self, operation: &'static str, key: &str, e: HttpError) -> BlobError {
        if status_of(&e) == Some(404) {
            return BlobError::NotFound {
                key: key.to_string(),
            };
        }
        backend(operation, &self.bucket, key, status_of(&e), e.to_string())
    }

    fn upload_request(&self) -> UploadObjectRequest {
        UploadObjectRequest {
            bucket: self.bucket.clone(),
            ..Default::default()
        }
    }

    fn metadata(key: &str, content_type: &str) -> UploadType {
        UploadType::Multipart(Box::new(Object {
            name: key.to_string(),
            content_type: Some(content_type.to_string()),
            ..Default::default()
        }))
    }

    async fn put_resumable(
        &self,
        key: &str,
        path: &Path,
        size: u64,
        content_type: &str,
    ) -> Result<(), BlobError> {
        let io = |operation, e: std::io::Error| BlobError::Backend {
            backend: BACKEND,
            operation,
            key: format!("{key} (from {})", path.display()),
            source: Box::new(e),
        };
        let session = self
            .client
            .prepare_resumable_upload(&self.upload_request(), &Self::metadata(key, content_type))
            .await
            .map_err(|e| self.fail("start resumable upload", key, e))?;
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| io("read source file", e))?;
        let mut offset = 0;
        let result: Result<(), BlobError> = async {
            while offset < size {
                let len = self.chunk_size.min(size - offset);
                let mut chunk = vec![0; len as usize];
                file.seek(std::io::SeekFrom::Start(offset))
                    .await
                    .map_err(|e| io("read source file", e))?;
                file.read_exact(&mut chunk)
                    .await
                    .map_err(|e| io("read source file", e))?;
                let range = ChunkSize::new(offset, offset + len - 1, Some(size));
                let status = session
                    .upload_multiple_chunk(chunk, &range)
                    .await
                    .map_err(|e| self.fail("upload chunk", key, e))?;
                offset = match status {
                    UploadStatus::Ok(_) => size,
                    UploadStatus::ResumeIncomplete(r) => r.last_byte + 1,
                    UploadStatus::NotStarted => 0,
                };
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            // Best effort: an abandoned session expires after a week anyway.
            if let Err(e) = session.cancel().await {
                tracing::warn!(key, error = %e, "could not cancel a failed resumable upload");
            }
        }
        result
    }
}

#[async_trait]
impl BlobStore for GcsBlobStore {
    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), BlobError> {
        validate_key(key)?;
        self.client
            .upload_object(
                &self.upload_request(),
                body,
                &Self::metadata(key, content_type),
            )
            .await
            .map_err(|e| self.fail("put", key, e))?;
        Ok(())
    }

    async fn put_file(&self, key: &str, path: &Path, content_type: &str) -> Result<(), BlobError> {
        validate_key(key)?;
        let io = |e: std::io::Error| BlobError::Backend {
            backend: BACKEND,
            operation: "read source file",
            key: format!("{key} (from {})", path.display()),
            source: Box::new(e),
        };
        let size = tokio::fs::metadata(path).await.map_err(io)?.len();
        if size > self.resumable_threshold {
            return self.put_resumable(key, path, size, content_type).await;
        }
        let body = tokio::fs::read(path).await.map_err(io)?;
        self.put(key, body, content_type).await
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        validate_key(key)?;
        let request = GetObjectRequest {
            bucket: self.bucket.clone(),
            object: key.to_string(),
            ..Default::default()
        };
        let meta = self
            .client
            .get_object(&request)
            .await
            .map_err(|e| self.fail("get", key, e))?;
        if u64::try_from(meta.size).unwrap_or(0) > MAX_GET_BYTES {
            return Err(backend(
                "get",
                &self.bucket,
                key,
                None,
                format!(
                    "the object is {} bytes, over the {MAX_GET_BYTES}-byte limit of an in-memory read; use get_to_file",
                    meta.size
                ),
            ));
        }
        self.client
            .download_object(&request, &Range::default())
            .await
            .map_err(|e| self.fail("get", key, e))
    }

    async fn get_to_file(&self, key: &str, path: &Path) -> Result<(), BlobError> {
        validate_key(key)?;
        let request = GetObjectRequest {
            bucket: self.bucket.clone(),
            object: key.to_string(),
            ..Default::default()
        };
        // The request first: a missing key must not create anything locally.
        let mut stream = self
            .client
            .download_streamed_object(&request, &Range::default())
            .await
            .map_err(|e| self.fail("get_to_file", key, e))?;
        let io = |(operation, e): (&'static str, std::io::Error)| BlobError::Backend {
            backend: BACKEND,
            operation,
            key: format!("{key} (to {})", path.display()),
            source: Box::new(e),
        };
        let mut file = AtomicDownload::start(path).await.map_err(io)?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.fail("get_to_file", key, e))?;
            file.write(&chunk).await.map_err(io)?;
        }
        file.finish().await.map_err(io)
    }

    async fn exists(&self, key: &str) -> Result<bool, BlobError> {
        validate_key(key)?;
        let request = GetObjectRequest {
            bucket: self.bucket.clone(),
            object: key.to_string(),
            ..Default::default()
        };
        match self.client.get_object(&request).await {
            Ok(_) => Ok(true),
            Err(e) if status_of(&e) == Some(404) => Ok(false),
            Err(e) => Err(self.fail("exists", key, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        validate_prefix(prefix)?;
        let mut keys = Vec::new();
        let mut page_token = None;
        loop {
            let request = ListObjectsRequest {
                bucket: self.bucket.clone(),
                prefix: Some(prefix.to_string()).filter(|p| !p.is_empty()),
                page_token: page_token.take(),
                ..Default::default()
            };
            let page = self
                .client
                .list_objects(&request)
                .await
                .map_err(|e| self.fail("list", prefix, e))?;
            keys.extend(page.items.unwrap_or_default().into_iter().map(|o| o.name));
            match page.next_page_token {
                Some(token) if !token.is_empty() => page_token = Some(token),
                _ => break,
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// A V4 signed `GET` URL valid for the link lifetime; the plain media
    /// URL on an emulator; `None` when the credentials cannot sign (user
    /// credentials from `gcloud auth application-default login`). It does
    /// not check that the object exists.
    async fn link(&self, key: &str) -> Result<Option<String>, BlobError> {
        validate_key(key)?;
        if let Some(base) = &self.emulator {
            let object: String =
                percent_encoding::utf8_percent_encode(key, percent_encoding::NON_ALPHANUMERIC)
                    .collect();
            return Ok(Some(format!(
                "{base}/storage/v1/b/{}/o/{object}?alt=media",
                self.bucket
            )));
        }
        let options = SignedURLOptions {
            method: SignedURLMethod::GET,
            expires: self.link_ttl,
            ..Default::default()
        };
        match self
            .client
            .signed_url(&self.bucket, key, None, None, options)
            .await
        {
            Ok(url) => Ok(Some(url)),
            Err(e) => {
                tracing::warn!(key, error = %e, "cannot sign a report link with these credentials; no link");
                Ok(None)
            }
        }
    }
}
