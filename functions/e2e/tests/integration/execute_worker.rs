//! `execute` outside Lambda: the polling worker over the real SQS backend
//! (moto). A job that fails is released and comes back with its attempt
//! count raised; an empty queue ends `--once` without work.

use std::collections::HashMap;
use std::time::Duration;

use testexec::adapters::aws::AwsBackends;
use testexec::adapters::aws::provision::{self, ProvisionOptions};
use testexec::app::messages::QueueName;
use testexec::app::ports::{JobQueue, QueueConsumer};
use testexec::hosts::lambda::host::{Function, Host};
use testexec::hosts::worker::{Args, poll_once};
use testexec::testkit::emulators;

#[tokio::test]
async fn the_worker_releases_a_failed_job_and_acks_nothing_else() {
    let Some(sdk) = emulators::moto().await else {
        return;
    };
    let prefix = emulators::unique_name("wrk");
    let settings = provision::provision(
        &sdk,
        &prefix,
        ProvisionOptions {
            visibility: Duration::from_secs(30),
            max_receives: 5,
            s3_path_style: true,
        },
    )
    .await
    .unwrap();
    let backends = AwsBackends::new(&sdk, &settings);
    let queue = backends.queue.clone();
    let env: HashMap<&str, &str> = HashMap::new();
    let host = Host::with_backends(Function::Execute, backends, |k| {
        env.get(k).map(|v| v.to_string())
    })
    .unwrap();

    // Nothing waiting: no work, and the worker says so.
    assert!(!poll_once(&host, queue.as_ref(), Duration::from_secs(1)).await);

    queue
        .send_batch(QueueName::Shards, vec!["{not a shard job".into()])
        .await
        .unwrap();
    assert!(poll_once(&host, queue.as_ref(), Duration::from_secs(5)).await);
    // Released at once (not deleted, not left invisible for 30 s): the
    // next receive gets it again, as its second attempt.
    let again = queue
        .receive(QueueName::Shards, Duration::from_secs(5))
        .await
        .unwrap()
        .expect("the failed job was released");
    assert_eq!(again.body, "{not a shard job");
    assert_eq!(again.attempt, 2);
}

#[test]
fn the_worker_takes_once_and_nothing_else() {
    assert_eq!(
        Args::parse(["--once".to_string()]).unwrap(),
        Args { once: true }
    );
    assert_eq!(
        Args::parse(Vec::<String>::new()).unwrap(),
        Args { once: false }
    );
    let err = Args::parse(["--bogus".to_string()]).unwrap_err();
    assert!(err.to_string().contains("--once"), "{err}");
}
