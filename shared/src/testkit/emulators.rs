//! What tests need from outside the workspace, found or skipped in one way:
//! the emulators `scripts/emulators.sh` starts (moto, s3s-fs, azurite; Pub/Sub,
//! Firestore and fake-gcs-server through `scripts/emulators-gcp.sh`), other end to
//! end inputs `scripts/test-deps.sh` prepares, free ports and unique names.
//!
//! A test whose input is missing is skipped with a message on stderr (it
//! passes), unless `TESTEXEC_REQUIRE_E2E=1` (`scripts/test.sh` sets it): then
//! it fails, so CI cannot go green by skipping everything.
//!
//! ```ignore
//! let Some(url) = testexec::testkit::emulators::endpoint("TESTEXEC_TEST_MOTO_ENDPOINT") else {
//!     return;
//! };
//! ```

use std::fmt::Display;

/// The variable that turns a skip into a failure.
pub const REQUIRE_E2E: &str = "TESTEXEC_REQUIRE_E2E";

/// True when `TESTEXEC_REQUIRE_E2E=1`: missing inputs fail instead of skip.
pub fn require_e2e() -> bool {
    std::env::var(REQUIRE_E2E).as_deref() == Ok("1")
}

/// `None` after printing why the test is skipped; panics instead when
/// `TESTEXEC_REQUIRE_E2E=1`. `reason` says what is missing and how to get it.
#[track_caller]
pub fn skip<T>(reason: impl Display) -> Option<T> {
    assert!(!require_e2e(), "{REQUIRE_E2E}=1 but {reason}");
    eprintln!("skipping: {reason}");
    None
}

/// The non-empty value of `var`, or [`skip`] naming it.
#[track_caller]
pub fn endpoint(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => skip(format_args!(
            "`{var}` is not set: run the tests through scripts/test.sh (it starts the emulators and sets it)"
        )),
    }
}

/// A loopback port free right now, for a child process that must be told
/// its port up front. Another process may take it before the child binds:
/// prefer port 0 and reading the bound address back wherever the child can
/// report it.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

/// A resource name no other test uses (tests share one emulator).
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// moto server (DynamoDB, SQS, S3), or `None` to skip.
#[cfg(feature = "aws")]
pub async fn moto() -> Option<aws_config::SdkConfig> {
    let url = endpoint("TESTEXEC_TEST_MOTO_ENDPOINT")?;
    Some(crate::adapters::aws::provision::emulator_sdk_config(&url, "testing", "testing").await)
}

/// s3s-fs (S3 with SigV4 checked), or `None` to skip.
#[cfg(feature = "aws")]
pub async fn s3s() -> Option<aws_config::SdkConfig> {
    let url = endpoint("TESTEXEC_TEST_S3S_ENDPOINT")?;
    let key = std::env::var("TESTEXEC_TEST_S3S_ACCESS_KEY").unwrap_or_default();
    let secret = std::env::var("TESTEXEC_TEST_S3S_SECRET_KEY").unwrap_or_default();
    Some(crate::adapters::aws::provision::emulator_sdk_config(&url, &key, &secret).await)
}

/// azurite (Blob, Queue, Table with its well-known development account),
/// or `None` to skip. `scripts/emulators-azure.sh` starts it.
#[cfg(feature = "azure")]
pub fn azurite() -> Option<crate::adapters::azure::provision::Emulator> {
    let blob = endpoint("TESTEXEC_TEST_AZURITE_BLOB")?;
    Some(crate::adapters::azure::provision::Emulator {
        blob,
        queue: endpoint("TESTEXEC_TEST_AZURITE_QUEUE")?,
        table: endpoint("TESTEXEC_TEST_AZURITE_TABLE")?,
        account: endpoint("TESTEXEC_TEST_AZURITE_ACCOUNT")?,
        key: endpoint("TESTEXEC_TEST_AZURITE_KEY")?,
    })
}

/// Settings for the GCP emulators `scripts/emulators-gcp.sh` starts
/// (Pub/Sub, Firestore, fake-gcs-server), naming resources no other test
/// uses (collections, bucket, topics and subscriptions under a fresh
/// prefix; create them with `GcpBackends::provision`), or `None` to skip.
/// Leases are `visibility` long (whole seconds, 1-600).
#[cfg(feature = "gcp")]
pub fn gcp(visibility: std::time::Duration) -> Option<crate::adapters::gcp::GcpSettings> {
    use crate::adapters::gcp::{GcpSettings, PubSubOptions, env};
    let pubsub = endpoint(env::PUBSUB_EMULATOR_HOST)?;
    // Read by the Firestore client itself; checked here so a missing one skips.
    endpoint(env::FIRESTORE_EMULATOR_HOST)?;
    let storage = endpoint(env::STORAGE_EMULATOR_HOST)?;
    let name = unique_name("te");
    Some(GcpSettings {
        project: std::env::var("TESTEXEC_TEST_GCP_PROJECT")
            .unwrap_or_else(|_| "testexec-test".into()),
        firestore_database: "(default)".into(),
        firestore_prefix: format!("{}_", name.replace('-', "_")),
        bucket: name.clone(),
        pubsub_prefix: name,
        pubsub: PubSubOptions {
            visibility,
            max_delivery_attempts: 5,
        },
        link_ttl: std::time::Duration::from_secs(3600),
        pubsub_emulator: Some(pubsub),
        storage_emulator: Some(storage),
    })
}
