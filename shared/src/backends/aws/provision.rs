//! Creates the table, bucket and queues the way `template.yaml` does, for
//! tests and local runs against emulators (moto, s3s-fs).

use aws_config::SdkConfig;

/// An SDK configuration for an emulator at `endpoint` with fixed
/// credentials (moto accepts any; s3s-fs checks them).
pub async fn emulator_sdk_config(endpoint: &str, access_key: &str, secret_key: &str) -> SdkConfig {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            access_key,
            secret_key,
            None,
            None,
            "testexec-emulator",
        ))
        .load()
        .await
}
