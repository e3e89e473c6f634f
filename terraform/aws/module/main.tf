# testexec on AWS: the stack of template.yaml, resource for resource. One file
# per concern: functions.tf (functions, log groups, event sources),
# queues.tf, storage.tf (table, bucket), api.tf (HTTP API), schedules.tf
# (EventBridge), iam.tf (one role per function), alarms.tf, dashboard.tf.
# scripts/check-terraform-drift.py fails CI when this and template.yaml
# disagree on what matters (env var names, memory, timeouts, queue settings,
# table keys and indexes, IAM actions, schedules).

locals {
  # The environment every function gets (template: Globals.Function.
  # Environment; names: testexec::adapters::aws::env, docs/lambda.md).
  common_env = {
    TESTEXEC_TABLE              = aws_dynamodb_table.table.name
    TESTEXEC_BUCKET             = aws_s3_bucket.bucket.id
    TESTEXEC_SHARDS_QUEUE_URL   = aws_sqs_queue.queue["shards"].url
    TESTEXEC_RESULTS_QUEUE_URL  = aws_sqs_queue.queue["results"].url
    TESTEXEC_REPORTS_QUEUE_URL  = aws_sqs_queue.queue["reports"].url
    TESTEXEC_REQUESTS_QUEUE_URL = aws_sqs_queue.queue["requests"].url
    TESTEXEC_LINK_TTL_SECS      = tostring(var.link_ttl_seconds)
    # The CloudWatch namespace of the functions' EMF metrics (dashboard.tf).
    TESTEXEC_METRICS_NAMESPACE = "testexec/${var.name}"
  }

  # The GitHub settings of trigger and report; a null value drops the variable
  # (the template's `!If [..., !Ref AWS::NoValue]`).
  webhook_secret     = one(data.aws_secretsmanager_secret_version.webhook_secret[*].secret_string)
  github_private_key = one(data.aws_secretsmanager_secret_version.github_private_key[*].secret_string)
  allowed_repos      = length(var.allowed_repos) == 0 ? null : join(",", var.allowed_repos)

  tags = merge({ "testexec:stack" = var.name }, var.tags)
}

# The functions read the webhook secret and the App key from plain environment
# variables (docs/lambda.md, Secrets: no Secrets Manager call at cold start).
# The template resolves them at deploy time with dynamic references; here the
# deployer's credentials read them at plan time. Terraform keeps data source
# results and the functions' environment in its state, so the values are in
# the state file whatever the module does: keep state in an encrypted,
# access-controlled backend (terraform/aws/example/README.md). They are
# marked sensitive, so plans never print them.
data "aws_secretsmanager_secret_version" "webhook_secret" {
  count     = var.webhook_secret_arn == null ? 0 : 1
  secret_id = var.webhook_secret_arn
}

data "aws_secretsmanager_secret_version" "github_private_key" {
  count     = var.github_private_key_secret_arn == null ? 0 : 1
  secret_id = var.github_private_key_secret_arn
}
