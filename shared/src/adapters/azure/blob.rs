//! [`BlobStore`] on one Blob Storage container (`azure_storage_blob`).
//!
//! Keys are blob names (checked by the same `adapters::validate_key` as
//! every store); content types are stored with the blob and served back,
//! so a report opened from its link renders. `put_file` streams a large
//! file as staged blocks of [`BLOCK_BYTES`] (memory stays at one block);
//! `get_to_file` streams into a temporary file beside the destination and
//! renames it, so a failed download leaves nothing. `link` is a read-only
//! SAS for the one blob: user-delegation in production, account-key
//! against azurite (see `auth`).

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::http::{RequestContent, StatusCode, Url};
use azure_core::time::OffsetDateTime;
use azure_storage_blob::models::{
    BlobClientUploadOptions, BlobContainerClientListBlobsOptions,
    BlockBlobClientCommitBlockListOptions, BlockLookupList, KeyInfo,
};
use azure_storage_blob::{
    BlobContainerClient, BlobContainerClientOptions, BlobServiceClient, BlobServiceClientOptions,
};
use futures::TryStreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::AzureSettings;
use super::auth::{
    self, DelegationKey, SasSigner, Service, SharedKeyPolicy, StorageCredential, blob_read_sas,
};
use super::error::{blob_error, is_status};
use crate::adapters::{validate_key, validate_prefix};
use crate::app::ports::BlobStore;
use crate::errors::BlobError;

/// Files up to this size go up in one request; larger ones as blocks.
pub const SINGLE_PUT_BYTES: u64 = 16 * 1024 * 1024;
/// Size of one staged block (Blob Storage allows up to 4000 MiB and 50,000
/// blocks; 8 MiB blocks cover 390 GiB).
pub const BLOCK_BYTES: u64 = 8 * 1024 * 1024;
/// Most blocks in one blob.
const MAX_BLOCKS: u64 = 50_000;
/// A user delegation key is asked for this long (and reused while it has
/// more than one link lifetime left).
const DELEGATION_KEY_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// The Blob Storage store. Cheap to share behind an `Arc`.
pub struct AzureBlobStore {
    container: BlobContainerClient,
    service: BlobServiceClient,
    account: String,
    container_name: String,
    /// The account key (azurite): links are signed with it.
    account_key: Option<Vec<u8>>,
    link_ttl: Duration,
    delegation: tokio::sync::Mutex<Option<DelegationKey>>,
}

impl AzureBlobStore {
    pub(crate) fn new(
        settings: &AzureSettings,
        credential: &StorageCredential,
    ) -> Result<Self, String> {
        let (token, signer, account_key) = match credential {
            StorageCredential::Token(t) => (Some(t.clone()), None, None),
            StorageCredential::SharedKey { account, key } => (
                None,
                Some(
                    SharedKeyPolicy::new(account, key, Service::BlobOrQueue)
                        .map_err(|e| e.to_string())?,
                ),
                Some(
                    azure_core::base64::decode(key.secret())
                        .map_err(|_| auth::BadAccountKey.to_string())?,
                ),
            ),
        };
        let endpoint = settings.blob_endpoint.trim_end_matches('/');
        let url = |s: String| Url::parse(&s).map_err(|e| format!("bad blob URL `{s}`: {e}"));
        let container = BlobContainerClient::new(
            url(format!("{endpoint}/{}", settings.container))?,
            token.clone(),
            Some(BlobContainerClientOptions {
                client_options: super::client_options(signer.clone())?,
                ..Default::default()
            }),
        )
        .map_err(|e| e.to_string())?;
        let service = BlobServiceClient::new(
            url(endpoint.to_string())?,
            token,
            Some(BlobServiceClientOptions {
                client_options: super::client_options(signer)?,
                ..Default::default()
            }),
        )
        .map_err(|e| e.to_string())?;
        Ok(Self {
            container,
            service,
            account: settings.account.clone(),
            container_name: settings.container.clone(),
            account_key,
            link_ttl: settings.link_ttl,
            delegation: tokio::sync::Mutex::new(None),
        })
    }

    pub fn container(&self) -> &str {
        &self.container_name
    }

    /// Creates the container (idempotent; tests and local runs).
    pub async fn create_container(&self) -> Result<(), BlobError> {
        match self.container.create(None).await {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, StatusCode::Conflict) => Ok(()),
            Err(e) => Err(blob_error("create container", &self.container_name, &e)),
        }
    }

    /// Deletes a blob; a missing one is fine. Used for queue overflow blobs.
    pub(crate) async fn delete(&self, key: &str) -> Result<(), BlobError> {
        validate_key(key)?;
        match self.container.blob_client(key).delete(None).await {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, StatusCode::NotFound) => Ok(()),
            Err(e) => Err(blob_error("delete", key, &e)),
        }
    }

    async fn put_blocks(
        &self,
        key: &str,
        path: &Path,
        size: u64,
        content_type: &str,
    ) -> Result<(), BlobError> {
        let io = |operation: &'static str| {
            move |e: std::io::Error| BlobError::Backend {
                backend: "azure-blob",
                operation,
                key: key.to_string(),
                source: format!("{}: {e}", path.display()).into(),
            }
        };
        let block = BLOCK_BYTES.max(size.div_ceil(MAX_BLOCKS));
        let client = self.container.blob_client(key).block_blob_client();
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(io("read source file"))?;
        let mut ids = Vec::new();
        let mut offset = 0u64;
        while offset < size {
            let len = block.min(size - offset);
            let mut buf = vec![0u8; len as usize];
            file.seek(std::io::SeekFrom::Start(offset))
                .await
                .map_err(io("read source file"))?;
            file.read_exact(&mut buf)
                .await
                .map_err(io("read source file"))?;
            // Block ids must have one length within a blob.
            let id = format!("block-{:06}", ids.len()).into_bytes();
            client
                .stage_block(&id, len, RequestContent::from(buf), None)
                .await
                .map_err(|e| blob_error("stage block", key, &e))?;
            ids.push(id);
            offset += len;
        }
        let list = BlockLookupList {
            latest: Some(ids),
            ..Default::default()
        };
        let content: RequestContent<BlockLookupList, _> = list
            .try_into()
            .map_err(|e: azure_core::Error| blob_error("commit block list", key, &e))?;
        let options = BlockBlobClientCommitBlockListOptions {
            blob_content_type: Some(content_type.to_string()),
            ..Default::default()
        };
        client
            .commit_block_list(content, Some(options))
            .await
            .map_err(|e| blob_error("commit block list", key, &e))?;
        Ok(())
    }

    /// A user delegation key with at least one link lifetime left.
    async fn delegation_key(&self) -> Result<DelegationKey, BlobError> {
        let mut cached = self.delegation.lock().await;
        let now = OffsetDateTime::now_utc();
        if let Some(k) = cached.as_ref() {
            if k.expires_at - now > self.link_ttl {
                return Ok(k.clone());
            }
        }
        let start = now - Duration::from_secs(300);
        let expiry = now + DELEGATION_KEY_LIFETIME - Duration::from_secs(600);
        let info = KeyInfo {
            start: Some(start),
            expiry: Some(expiry),
            ..Default::default()
        };
        let err = |e: &azure_core::Error| blob_error("get user delegation key", "", e);
        let content: RequestContent<KeyInfo, _> = info.try_into().map_err(|e| err(&e))?;
        let key = self
            .service
            .get_user_delegation_key(content, None)
            .await
            .map_err(|e| err(&e))?
            .into_model()
            .map_err(|e| err(&e))?;
        let field = |v: Option<String>, name: &str| {
            v.ok_or_else(|| BlobError::Backend {
                backend: "azure-blob",
                operation: "get user delegation key",
                key: String::new(),
                source: format!("the delegation key has no {name}").into(),
            })
        };
        let start_at = key.signed_start.unwrap_or(start);
        let expires_at = key.signed_expiry.unwrap_or(expiry);
        let fresh = DelegationKey {
            oid: field(key.signed_oid, "signed oid")?,
            tid: field(key.signed_tid, "signed tid")?,
            start: auth::iso8601(start_at),
            expiry: auth::iso8601(expires_at),
            expires_at,
            service: field(key.signed_service, "signed service")?,
            version: field(key.signed_version, "signed version")?,
            value: key.value.unwrap_or_default(),
        };
        *cached = Some(fresh.clone());
        Ok(fresh)
    }
}

#[async_trait]
impl BlobStore for AzureBlobStore {
    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), BlobError> {
        validate_key(key)?;
        let options = BlobClientUploadOptions {
            blob_content_type: Some(content_type.to_string()),
            ..Default::default()
        };
        self.container
            .blob_client(key)
            .upload(RequestContent::from(body), Some(options))
            .await
            .map_err(|e| blob_error("put", key, &e))?;
        Ok(())
    }

    async fn put_file(&self, key: &str, path: &Path, content_type: &str) -> Result<(), BlobError> {
        validate_key(key)?;
        let read_err = |e: std::io::Error| BlobError::Backend {
            backend: "azure-blob",
            operation: "read source file",
            key: key.to_string(),
            source: format!("{}: {e}", path.display()).into(),
        };
        let size = tokio::fs::metadata(path).await.map_err(read_err)?.len();
        if size > SINGLE_PUT_BYTES {
            return self.put_blocks(key, path, size, content_type).await;
        }
        let body = tokio::fs::read(path).await.map_err(read_err)?;
        self.put(key, body, content_type).await
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        validate_key(key)?;
        let rsp = match self.container.blob_client(key).download(None).await {
            Ok(rsp) => rsp,
            Err(e) if is_status(&e, StatusCode::NotFound) => {
                return Err(BlobError::NotFound { key: key.into() });
            }
            Err(e) => return Err(blob_error("get", key, &e)),
        };
        let bytes = rsp
            .body
            .collect()
            .await
            .map_err(|e| blob_error("get", key, &e))?;
        Ok(bytes.to_vec())
    }

    async fn get_to_file(&self, key: &str, path: &Path) -> Result<(), BlobError> {
        validate_key(key)?;
        // The request first: a missing key creates nothing.
        let rsp = match self.container.blob_client(key).download(None).await {
            Ok(rsp) => rsp,
            Err(e) if is_status(&e, StatusCode::NotFound) => {
                return Err(BlobError::NotFound { key: key.into() });
            }
            Err(e) => return Err(blob_error("get", key, &e)),
        };
        let io = |e: std::io::Error| BlobError::Backend {
            backend: "azure-blob",
            operation: "write destination file",
            key: key.to_string(),
            source: format!("{}: {e}", path.display()).into(),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "download".into());
        let tmp = path.with_file_name(format!(
            "{}{}-{}-{name}",
            crate::adapters::TMP_PREFIX,
            std::process::id(),
            ulid::Ulid::new()
        ));
        // Removes the temporary file on any failure or cancellation.
        struct Cleanup(Option<std::path::PathBuf>);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                if let Some(p) = self.0.take() {
                    let _ = std::fs::remove_file(p);
                }
            }
        }
        let mut guard = Cleanup(Some(tmp.clone()));
        let mut file = tokio::fs::File::create(&tmp).await.map_err(io)?;
        let mut body = rsp.body;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| blob_error("get", key, &e))?
        {
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.flush().await.map_err(io)?;
        file.sync_data().await.map_err(io)?;
        drop(file);
        tokio::fs::rename(&tmp, path).await.map_err(io)?;
        guard.0 = None;
        Ok(())
    }

    async fn exists(&self, key: &str) -> Result<bool, BlobError> {
        validate_key(key)?;
        match self.container.blob_client(key).get_properties(None).await {
            Ok(_) => Ok(true),
            Err(e) if is_status(&e, StatusCode::NotFound) => Ok(false),
            Err(e) => Err(blob_error("exists", key, &e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        validate_prefix(prefix)?;
        let options = BlobContainerClientListBlobsOptions {
            prefix: (!prefix.is_empty()).then(|| prefix.to_string()),
            ..Default::default()
        };
        let mut pager = self
            .container
            .list_blobs(Some(options))
            .map_err(|e| blob_error("list", prefix, &e))?;
        let mut keys = Vec::new();
        while let Some(item) = pager
            .try_next()
            .await
            .map_err(|e| blob_error("list", prefix, &e))?
        {
            if let Some(name) = item.name {
                keys.push(name);
            }
        }
        // Byte order, as the other stores promise.
        keys.sort();
        Ok(keys)
    }

    async fn link(&self, key: &str) -> Result<Option<String>, BlobError> {
        validate_key(key)?;
        let url = self.container.blob_client(key).url().clone();
        let https = url.scheme() == "https";
        let canonical = format!("/blob/{}/{}/{key}", self.account, self.container_name);
        let mut expiry = OffsetDateTime::now_utc() + self.link_ttl;
        let params = match &self.account_key {
            Some(k) => blob_read_sas(&canonical, expiry, https, SasSigner::AccountKey(k)),
            None => {
                let dk = self.delegation_key().await?;
                // A link cannot outlive the key that signed it.
                if expiry > dk.expires_at {
                    expiry = dk.expires_at;
                }
                blob_read_sas(&canonical, expiry, https, SasSigner::Delegation(&dk))
            }
        };
        Ok(Some(auth::with_sas(url, &params).to_string()))
    }
}
