//! Creates the table, bucket and queues the way `template.yaml` does, for
//! tests and local runs against emulators (moto, s3s-fs).

use aws_config::SdkConfig;

/// An SDK configuration for an emulator at `endpoint` with fixed
/// credentials (moto accepts any; s3s-fs checks them).
pub async fn emulator_sdk_config(endpoint: &str, access_key: &str, secret_key: &str) -> SdkConfig {
    super::config_loader()
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

use std::time::Duration;

use super::{AwsSettings, QueueUrls, env};
use crate::errors::ProvisionError;

/// How [`provision`] sets up the queues and the S3 client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProvisionOptions {
    /// Visibility timeout of the four queues (whole seconds, at least 1).
    pub visibility: Duration,
    /// Deliveries before a message moves to its dead-letter queue.
    pub max_receives: u32,
    /// Path-style S3 addressing (emulators).
    pub s3_path_style: bool,
}

impl Default for ProvisionOptions {
    /// The template's values: 6 × a 15-minute function timeout, 5 receives.
    fn default() -> Self {
        Self {
            visibility: Duration::from_secs(6 * 15 * 60),
            max_receives: 5,
            s3_path_style: false,
        }
    }
}

/// The names [`provision`] gives the table and the bucket.
pub fn table_name(prefix: &str) -> String {
    format!("{prefix}-runs")
}

pub fn bucket_name(prefix: &str) -> String {
    format!("{prefix}-blobs")
}

fn check_prefix(prefix: &str) -> Result<(), ProvisionError> {
    let reason = if prefix.is_empty() {
        Some("it is empty")
    } else if prefix.len() > 40 {
        Some("it is longer than 40 characters")
    } else if !prefix
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Some("it has a character other than a-z, 0-9 and `-` (S3 bucket names)")
    } else if !prefix.starts_with(|c: char| c.is_ascii_lowercase()) {
        Some("it does not start with a letter")
    } else if prefix.ends_with('-') || prefix.contains("--") {
        Some("it ends with `-` or has `--`")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ProvisionError::InvalidPrefix {
            prefix: prefix.chars().take(100).collect(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Creates what the AWS backends need, named after `prefix`: the table
/// `<prefix>-runs`, the bucket `<prefix>-blobs` and the queues
/// `<prefix>-shards|results|reports|requests` (each with a `-dlq`), and
/// returns the settings that point the backends at them. Idempotent. For
/// tests and local runs against emulators; deployments use `template.yaml`.
pub async fn provision(
    sdk: &SdkConfig,
    prefix: &str,
    options: ProvisionOptions,
) -> Result<AwsSettings, ProvisionError> {
    check_prefix(prefix)?;
    let (table, bucket) = (table_name(prefix), bucket_name(prefix));
    super::dynamodb::create_table(&aws_sdk_dynamodb::Client::new(sdk), &table)
        .await
        .map_err(ProvisionError::Table)?;
    super::s3::create_bucket(&super::s3::client(sdk, options.s3_path_style), &bucket)
        .await
        .map_err(ProvisionError::Bucket)?;
    let queues: QueueUrls = super::sqs::create_queues(
        &aws_sdk_sqs::Client::new(sdk),
        prefix,
        options.visibility,
        options.max_receives,
    )
    .await
    .map_err(ProvisionError::Queues)?;
    tracing::info!(prefix, table, bucket, "provisioned AWS resources");
    Ok(AwsSettings {
        table,
        bucket,
        queues,
        link_ttl: Duration::from_secs(24 * 3600),
        s3_path_style: options.s3_path_style,
        // A worker renews before the queues' own timeout can expire.
        queue_lease: options.visibility,
    })
}

/// The environment of a function using `settings`: the variables
/// [`AwsSettings::from_env`] reads (names in [`super::env`]).
pub fn to_env(settings: &AwsSettings) -> Vec<(&'static str, String)> {
    vec![
        (env::TABLE, settings.table.clone()),
        (env::BUCKET, settings.bucket.clone()),
        (env::SHARDS_QUEUE_URL, settings.queues.shards.clone()),
        (env::RESULTS_QUEUE_URL, settings.queues.results.clone()),
        (env::REPORTS_QUEUE_URL, settings.queues.reports.clone()),
        (env::REQUESTS_QUEUE_URL, settings.queues.requests.clone()),
        (env::LINK_TTL_SECS, settings.link_ttl.as_secs().to_string()),
        (env::S3_PATH_STYLE, settings.s3_path_style.to_string()),
        (
            env::QUEUE_LEASE_SECS,
            settings.queue_lease.as_secs().to_string(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_env_round_trips_through_from_lookup() {
        let settings = AwsSettings {
            table: "p-runs".into(),
            bucket: "p-blobs".into(),
            queues: QueueUrls {
                shards: "http://q/p-shards".into(),
                results: "http://q/p-results".into(),
                reports: "http://q/p-reports".into(),
                requests: "http://q/p-requests".into(),
            },
            link_ttl: Duration::from_secs(3600),
            s3_path_style: true,
            queue_lease: Duration::from_secs(45),
        };
        let vars = to_env(&settings);
        let back = AwsSettings::from_lookup(|k| {
            vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
        })
        .expect("the pairs are a complete environment");
        assert_eq!(back, settings);
    }

    #[test]
    fn prefixes_must_name_buckets_and_queues() {
        for bad in ["", "Upper", "1abc", "a_b", "a-", "a--b", &"a".repeat(41)] {
            let err = check_prefix(bad).unwrap_err();
            assert!(err.to_string().contains("prefix"), "{err}");
        }
        check_prefix("t-01jabcdefghjkmnpqrstvwxyz0").expect("a unique_name is a valid prefix");
    }
}
