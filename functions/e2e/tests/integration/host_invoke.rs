//! `Host::invoke` over the AWS backends on moto, without the emulator: the
//! trigger's requests-queue batch with one good and one undecodable record
//! runs the good one and moves the bad one to the dead-letter queue at once; a redelivered job starts no second run; events a
//! function does not take fail the invocation with a clear error.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use testexec::adapters::aws::AwsBackends;
use testexec::adapters::aws::provision::{self, ProvisionOptions};
use testexec::app::messages::QueueName;
use testexec::app::messages::RunRequest;
use testexec::app::messages::{MESSAGE_VERSION, TriggerJob};
use testexec::app::ports::{QueueConsumer, RunStore};
use testexec::domain::model::RunId;
use testexec::hosts::lambda::host::{Function, Host};
use testexec::testkit::emulators;

fn sqs_event(records: &[(&str, &str)]) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id, "receiptHandle": "h", "body": body,
                "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:1:requests",
            })
        })
        .collect();
    json!({ "Records": records })
}

fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("testexec.toml"),
        "[suites.unit]\ncommand = [\"true\", \"{junit}\", \"{files}\"]\nfiles = [\"tests/*.txt\"]\nshards = 2\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("tests")).unwrap();
    for f in ["a", "b", "c"] {
        std::fs::write(dir.path().join(format!("tests/{f}.txt")), "x").unwrap();
    }
    dir
}

#[tokio::test]
async fn a_requests_batch_runs_the_good_record_and_dead_letters_the_bad_one() {
    let Some(sdk) = emulators::moto().await else {
        return;
    };
    let settings = provision::provision(
        &sdk,
        &emulators::unique_name("hst"),
        ProvisionOptions {
            visibility: Duration::from_secs(30),
            max_receives: 5,
            s3_path_style: true,
        },
    )
    .await
    .unwrap();
    let backends = AwsBackends::new(&sdk, &settings);
    let store = backends.store.clone();
    let consumer = backends.queue.clone();
    let work = tempfile::tempdir().unwrap();
    let env: HashMap<&str, String> =
        [("TESTEXEC_WORK_ROOT", work.path().display().to_string())].into();
    let host = Host::with_backends(Function::Trigger, backends, |k| env.get(k).cloned()).unwrap();

    let repo = repo();
    let run = RunId::new();
    let mut request = RunRequest::local(repo.path());
    request.run_id = Some(run);
    let job = serde_json::to_string(&TriggerJob {
        v: MESSAGE_VERSION,
        request,
    })
    .unwrap();
    // The bad record can never succeed: it goes to the dead-letter queue at
    // once and is reported handled (the event source mapping deletes it).
    let answer = host
        .invoke(sqs_event(&[("good", &job), ("bad", "{\"v\":1,")]))
        .await
        .unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    assert_eq!(
        consumer.dead_letters(QueueName::Requests).await.unwrap(),
        vec!["{\"v\":1,".to_string()]
    );
    let created = store.get_run(run).await.unwrap().expect("the run exists");
    assert_eq!(created.shard_count, 2);

    // The same job again (an SQS redelivery): acknowledged, no second run.
    let answer = host.invoke(sqs_event(&[("good", &job)])).await.unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    assert_eq!(store.list_shards(run).await.unwrap().len(), 2);

    // An HTTP event on execute, an S3 notification anywhere: refused by name.
    let execute = Host::new(Function::Execute, host.ports.clone(), host.settings.clone());
    let http: Value = serde_json::from_str(include_str!(
        "../../../../fixtures/aws/lambda_http-apigw_v2_proxy_request_minimal.json"
    ))
    .unwrap();
    let err = execute.invoke(http).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("execute function does not take API Gateway HTTP (v2)"),
        "{err}"
    );
    let s3: Value = serde_json::from_str(include_str!(
        "../../../../fixtures/aws/aws_lambda_events-example-s3-event.json"
    ))
    .unwrap();
    let err = host.invoke(s3).await.unwrap_err();
    assert!(err.to_string().contains("aws:s3"), "{err}");

    // A console test event without a repo names the missing field.
    let err = host.invoke(json!({"suite": "unit"})).await.unwrap_err();
    assert!(err.to_string().contains("`repo` is required"), "{err}");
}
