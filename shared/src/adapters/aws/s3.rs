//! [`BlobStore`] on one S3 bucket: key `a/b/c` is the object `a/b/c`.
//!
//! Keys obey the same rules as the file blob store
//! ([`crate::adapters::validate_key`]), so `InvalidKey` means the same thing
//! on every backend.
//!
//! Uploads: `put` is one `PutObject`. `put_file` streams the file: one
//! `PutObject` up to [`S3BlobStore::multipart_threshold`], a multipart upload
//! above it, each part read from the file at its offset (never the whole
//! file in memory). A multipart upload that fails or is cancelled is aborted,
//! so no orphaned parts are billed.
//!
//! Downloads: `get_to_file` streams into a temporary file beside the
//! destination and renames it over the destination at the end, so a failed
//! download never leaves a partial file.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::operation::create_bucket::CreateBucketError;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::operation::head_object::HeadObjectError;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};

use super::MAX_LINK_TTL;
use crate::adapters::{AtomicDownload, validate_key, validate_prefix};
use crate::app::ports::BlobStore;
use crate::errors::BlobError;

const BACKEND: &str = "s3";

/// S3's smallest part (every part but the last).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// S3's largest part.
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// S3's largest number of parts in one upload.
pub const MAX_PARTS: u64 = 10_000;
/// Default part size: large enough that a 1 GiB snapshot is 128 requests,
/// small enough that a retried part costs little.
pub const DEFAULT_PART_SIZE: u64 = 8 * 1024 * 1024;
/// Default size above which `put_file` goes multipart: below two parts a
/// single request is cheaper than three (create, part, complete).
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 2 * DEFAULT_PART_SIZE;

/// An S3 client for `sdk`, path-style when an emulator needs it.
pub fn client(sdk: &aws_config::SdkConfig, path_style: bool) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(path_style)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Creates `bucket` if it does not exist yet (tests, emulators). Succeeds
/// when the bucket already exists and this client can reach it.
pub async fn create_bucket(client: &aws_sdk_s3::Client, bucket: &str) -> Result<(), BlobError> {
    let err = |operation, e: String| BlobError::Backend {
        backend: BACKEND,
        operation,
        key: format!("bucket {bucket}"),
        source: e.into(),
    };
    let mut request = client.create_bucket().bucket(bucket);
    // us-east-1 refuses a location constraint naming itself; every other
    // region requires one.
    if let Some(region) = client.config().region().map(|r| r.as_ref().to_string()) {
        if region != "us-east-1" {
            use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
            request = request.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region.as_str()))
                    .build(),
            );
        }
    }
    match request.send().await {
        Ok(_) => Ok(()),
        Err(SdkError::ServiceError(e))
            if matches!(
                e.err(),
                CreateBucketError::BucketAlreadyOwnedByYou(_)
                    | CreateBucketError::BucketAlreadyExists(_)
            ) =>
        {
            // "Already exists" may mean someone else's bucket: only ours if
            // we can reach it.
            client
                .head_bucket()
                .bucket(bucket)
                .send()
                .await
                .map(drop)
                .map_err(|e| err("head bucket", DisplayErrorContext(&e).to_string()))
        }
        Err(e) => Err(err("create bucket", DisplayErrorContext(&e).to_string())),
    }
}

pub struct S3BlobStore {
    client: aws_sdk_s3::Client,
    bucket: String,
    link_ttl: Duration,
    multipart_threshold: u64,
    part_size: u64,
}

impl S3BlobStore {
    /// `link_ttl` is capped at S3's 7-day maximum for presigned URLs.
    pub fn new(client: aws_sdk_s3::Client, bucket: String, link_ttl: Duration) -> Self {
        Self {
            client,
            bucket,
            link_ttl: link_ttl.min(MAX_LINK_TTL),
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            part_size: DEFAULT_PART_SIZE,
        }
    }

    /// Sets when `put_file` goes multipart (files larger than `threshold`
    /// bytes) and the part size. The part size is capped at S3's 5 GiB and
    /// raised where a file would need more than 10,000 parts. It is *not*
    /// raised to S3's 5 MiB minimum: S3 then refuses the completion with
    /// `EntityTooSmall`, which tests use to exercise the abort path.
    pub fn with_multipart(mut self, threshold: u64, part_size: u64) -> Self {
        self.multipart_threshold = threshold;
        self.part_size = part_size.clamp(1, MAX_PART_SIZE);
        self
    }

    pub fn multipart_threshold(&self) -> u64 {
        self.multipart_threshold
    }

    pub fn part_size(&self) -> u64 {
        self.part_size
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn backend<E>(&self, operation: &'static str, key: &str, e: E) -> BlobError
    where
        E: std::error::Error,
    {
        backend_err(operation, key, DisplayErrorContext(&e).to_string())
    }

    async fn put_single(
        &self,
        key: &str,
        path: &Path,
        content_type: &str,
    ) -> Result<(), BlobError> {
        let body = ByteStream::from_path(path)
            .await
            .map_err(|e| source_err(key, path, e))?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| self.backend("put_file", key, e))?;
        Ok(())
    }

    async fn put_multipart(
        &self,
        key: &str,
        path: &Path,
        size: u64,
        content_type: &str,
    ) -> Result<(), BlobError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            // Parts carry CRC32s and the completion lists them: the
            // combination S3 accepts whatever its default checksum policy.
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .send()
            .await
            .map_err(|e| self.backend("create multipart upload", key, e))?;
        let Some(upload_id) = created.upload_id().map(str::to_string) else {
            return Err(backend_err(
                "create multipart upload",
                key,
                "S3 answered without an upload id".into(),
            ));
        };
        let mut guard = AbortGuard {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.to_string(),
            upload_id: upload_id.clone(),
            armed: true,
        };
        match self.upload_parts(key, path, size, &upload_id).await {
            Ok(()) => {
                guard.armed = false;
                Ok(())
            }
            Err(e) => {
                guard.abort().await;
                Err(e)
            }
        }
    }

    /// Uploads every part and completes the upload. Parts go one at a time:
    /// memory stays at one part's buffer whatever the file size.
    async fn upload_parts(
        &self,
        key: &str,
        path: &Path,
        size: u64,
        upload_id: &str,
    ) -> Result<(), BlobError> {
        let part_size = self.part_size.max(size.div_ceil(MAX_PARTS));
        let count = size.div_ceil(part_size);
        let mut parts = Vec::with_capacity(count as usize);
        for index in 0..count {
            let offset = index * part_size;
            let length = part_size.min(size - offset);
            let body = ByteStream::read_from()
                .path(path)
                .offset(offset)
                .length(Length::Exact(length))
                .build()
                .await
                .map_err(|e| source_err(key, path, e))?;
            let number = (index + 1) as i32;
            let out = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .content_length(length as i64)
                .checksum_algorithm(ChecksumAlgorithm::Crc32)
                .body(body)
                .send()
                .await
                .map_err(|e| self.backend("upload part", key, e))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag().map(str::to_string))
                    .set_checksum_crc32(out.checksum_crc32().map(str::to_string))
                    .build(),
            );
        }
        tracing::debug!(key, size, parts = count, "multipart upload complete");
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.backend("complete multipart upload", key, e))?;
        Ok(())
    }

    async fn get_object(
        &self,
        operation: &'static str,
        key: &str,
    ) -> Result<aws_sdk_s3::operation::get_object::GetObjectOutput, BlobError> {
        validate_key(key)?;
        self.client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| match &e {
                SdkError::ServiceError(s) if matches!(s.err(), GetObjectError::NoSuchKey(_)) => {
                    not_found(key)
                }
                _ => self.backend(operation, key, e),
            })
    }
}

fn backend_err(operation: &'static str, key: &str, text: String) -> BlobError {
    BlobError::Backend {
        backend: BACKEND,
        operation,
        key: key.to_string(),
        source: text.into(),
    }
}

fn not_found(key: &str) -> BlobError {
    BlobError::NotFound {
        key: key.to_string(),
    }
}

/// A failure reading the local source file: names the file, and is never
/// "blob not found".
fn source_err(
    key: &str,
    path: &Path,
    e: impl std::error::Error + Send + Sync + 'static,
) -> BlobError {
    BlobError::Backend {
        backend: BACKEND,
        operation: "read source file",
        key: format!("{key} (from {})", path.display()),
        source: Box::new(e),
    }
}

/// Aborts a multipart upload that did not complete: on error explicitly
/// (awaited), and on cancellation (the future dropped mid-upload, e.g. a
/// Lambda timeout) from `Drop`, as a spawned task.
struct AbortGuard {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    upload_id: String,
    armed: bool,
}

impl AbortGuard {
    async fn abort(&mut self) {
        self.armed = false;
        abort_upload(&self.client, &self.bucket, &self.key, &self.upload_id).await;
    }
}

async fn abort_upload(client: &aws_sdk_s3::Client, bucket: &str, key: &str, upload_id: &str) {
    let result = client
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await;
    match result {
        Ok(_) => tracing::debug!(key, "aborted multipart upload"),
        // The bucket's lifecycle rule (AbortIncompleteMultipartUpload) is the
        // backstop for this case.
        Err(e) => tracing::warn!(
            key,
            upload_id,
            error = %DisplayErrorContext(&e),
            "could not abort a failed multipart upload; its parts stay until the bucket's lifecycle rule removes them"
        ),
    }
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (client, bucket, key, id) = (
                self.client.clone(),
                std::mem::take(&mut self.bucket),
                std::mem::take(&mut self.key),
                std::mem::take(&mut self.upload_id),
            );
            runtime.spawn(async move { abort_upload(&client, &bucket, &key, &id).await });
        }
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), BlobError> {
        validate_key(key)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| self.backend("put", key, e))?;
        Ok(())
    }

    async fn put_file(&self, key: &str, path: &Path, content_type: &str) -> Result<(), BlobError> {
        validate_key(key)?;
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|e| source_err(key, path, e))?
            .len();
        if size > self.multipart_threshold {
            self.put_multipart(key, path, size, content_type).await
        } else {
            self.put_single(key, path, content_type).await
        }
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        let out = self.get_object("get", key).await?;
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| self.backend("get", key, e))?;
        Ok(bytes.into_bytes().to_vec())
    }

    async fn get_to_file(&self, key: &str, path: &Path) -> Result<(), BlobError> {
        // The request first: a missing key must not create anything locally.
        let mut out = self.get_object("get_to_file", key).await?;
        let io = |(operation, e): (&'static str, std::io::Error)| BlobError::Backend {
            backend: BACKEND,
            operation,
            key: format!("{key} (to {})", path.display()),
            source: Box::new(e),
        };
        let mut file = AtomicDownload::start(path).await.map_err(io)?;
        while let Some(chunk) = out.body.next().await {
            let chunk = chunk.map_err(|e| self.backend("get_to_file", key, e))?;
            file.write(&chunk).await.map_err(io)?;
        }
        file.finish().await.map_err(io)
    }

    async fn exists(&self, key: &str) -> Result<bool, BlobError> {
        validate_key(key)?;
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), HeadObjectError::NotFound(_))
                    || e.raw().status().as_u16() == 404 =>
            {
                Ok(false)
            }
            Err(e) => Err(self.backend("exists", key, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        validate_prefix(prefix)?;
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.backend("list", prefix, e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
        }
        // S3 lists in UTF-8 byte order already; sorting makes it a promise
        // that does not depend on the server (emulators differ).
        keys.sort();
        Ok(keys)
    }

    async fn link(&self, key: &str) -> Result<Option<String>, BlobError> {
        validate_key(key)?;
        let config = PresigningConfig::expires_in(self.link_ttl)
            .map_err(|e| self.backend("presign", key, e))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| self.backend("presign", key, e))?;
        Ok(Some(request.uri().to_string()))
    }
}
