//! The blob store on one S3 bucket. (Being implemented.)

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;

use crate::errors::BlobError;
use crate::ports::BlobStore;

/// An S3 client for `sdk`, path-style when an emulator needs it.
pub fn client(sdk: &aws_config::SdkConfig, path_style: bool) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(path_style)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

pub struct S3BlobStore {
    #[allow(dead_code)]
    client: aws_sdk_s3::Client,
    #[allow(dead_code)]
    bucket: String,
    #[allow(dead_code)]
    link_ttl: Duration,
}

impl S3BlobStore {
    pub fn new(client: aws_sdk_s3::Client, bucket: String, link_ttl: Duration) -> Self {
        Self {
            client,
            bucket,
            link_ttl,
        }
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put(&self, _key: &str, _body: Vec<u8>, _ct: &str) -> Result<(), BlobError> {
        todo!()
    }
    async fn put_file(&self, _key: &str, _path: &Path, _ct: &str) -> Result<(), BlobError> {
        todo!()
    }
    async fn get(&self, _key: &str) -> Result<Vec<u8>, BlobError> {
        todo!()
    }
    async fn get_to_file(&self, _key: &str, _path: &Path) -> Result<(), BlobError> {
        todo!()
    }
    async fn exists(&self, _key: &str) -> Result<bool, BlobError> {
        todo!()
    }
    async fn list(&self, _prefix: &str) -> Result<Vec<String>, BlobError> {
        todo!()
    }
    async fn link(&self, _key: &str) -> Result<Option<String>, BlobError> {
        todo!()
    }
}
