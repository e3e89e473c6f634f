# The four functions (template: TriggerFunction, ExecuteFunction,
# CollectFunction, ReportFunction), their log groups and their SQS event
# sources. Timeouts drive the queues' visibility timeouts (queues.tf: 6x the
# consumer's timeout, so a batch Lambda is retrying is never handed to a
# second consumer): trigger 180 s, execute 900 s, collect 120 s, report 300 s.

locals {
  zip = { for f in ["trigger", "execute", "collect", "report"] : f => "${var.lambda_zip_dir}/${f}/bootstrap.zip" }

  # execute runs from an image (the template's PackageType: Image) unless no
  # image is given; then from its zip on the OS-only runtime.
  execute_is_image = var.execute_image_uri != null

  # Optional settings: a null value leaves the variable out, as the
  # template's `!If [..., !Ref AWS::NoValue]` does.
  trigger_env = merge(local.common_env, {
    for k, v in {
      TESTEXEC_WEBHOOK_SECRET     = local.webhook_secret
      TESTEXEC_GITHUB_APP_ID      = var.github_app_id
      TESTEXEC_GITHUB_PRIVATE_KEY = local.github_private_key
      TESTEXEC_ALLOWED_REPOS      = local.allowed_repos
    } : k => v if v != null
  })
  report_env = merge(local.common_env, {
    for k, v in {
      TESTEXEC_GITHUB_APP_ID      = var.github_app_id
      TESTEXEC_GITHUB_PRIVATE_KEY = local.github_private_key
    } : k => v if v != null
  })
}

# ------------------------------------------------------------------ trigger
resource "aws_lambda_function" "trigger" {
  #checkov:skip=CKV_AWS_117:No VPC resources to reach; a VPC would only add NAT cost for the GitHub and AWS API calls.
  #checkov:skip=CKV_AWS_115:Concurrency is bounded by the requests queue's event source and the API's throttling; reserving some would take it from the account's unreserved pool.
  #checkov:skip=CKV_AWS_173:The secrets reach the environment at deploy time (docs/lambda.md); Lambda encrypts it at rest with its AWS managed key and only principals allowed lambda:GetFunctionConfiguration can read it. A customer managed key would add kms:Decrypt to that, at a cost (docs/deploy-aws.md, Secrets).
  #checkov:skip=CKV_AWS_272:Code signing needs a signing profile and signed artifacts; the code comes from this repository's own build, deployed by the principal that built it (the template does not sign either).
  function_name = "${var.name}-trigger"
  description   = "testexec trigger - webhooks, run requests, schedules; plans runs and enqueues shards."
  role          = aws_iam_role.trigger.arn

  filename         = local.zip.trigger
  source_code_hash = filebase64sha256(local.zip.trigger)
  handler          = "bootstrap"
  runtime          = "provided.al2023"
  architectures    = [var.architecture]

  memory_size = 512
  timeout     = 180

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.function["trigger"].name
    application_log_level = var.log_level
    system_log_level      = "INFO"
  }

  # Asynchronous invocations (the scheduled run, `--invocation-type Event`)
  # that fail after Lambda's retries land here.
  dead_letter_config {
    target_arn = aws_sqs_queue.async_dlq.arn
  }

  environment {
    variables = local.trigger_env
  }

  tags = local.tags

  # The role's policy must exist before the first invocation can log.
  depends_on = [aws_iam_role_policy.trigger]
}

# ------------------------------------------------------------------ execute
resource "aws_lambda_function" "execute" {
  #checkov:skip=CKV_AWS_116:Only invoked by the shards queue's event source (synchronously); failed messages go to that queue's dead-letter queue (shards-dlq).
  #checkov:skip=CKV_AWS_117:No VPC resources to reach; a VPC would only add NAT cost for the S3, SQS and GitHub calls.
  #checkov:skip=CKV_AWS_115:Concurrency is capped by the event source's scaling_config.maximum_concurrency (execute_max_concurrency) without reserving account capacity.
  #checkov:skip=CKV_AWS_173:Environment holds only resource names and URLs, encrypted at rest with Lambda's AWS managed key.
  #checkov:skip=CKV_AWS_272:Code signing needs a signing profile and signed artifacts; the code comes from this repository's own build, deployed by the principal that built it (the template does not sign either).
  function_name = "${var.name}-execute"
  description   = "testexec execute - runs one shard of a suite and uploads its log and JUnit."
  role          = aws_iam_role.execute.arn

  package_type     = local.execute_is_image ? "Image" : "Zip"
  image_uri        = var.execute_image_uri
  filename         = local.execute_is_image ? null : local.zip.execute
  source_code_hash = local.execute_is_image ? null : filebase64sha256(local.zip.execute)
  handler          = local.execute_is_image ? null : "bootstrap"
  runtime          = local.execute_is_image ? null : "provided.al2023"
  architectures    = [var.architecture]

  memory_size = var.execute_memory_size
  timeout     = 900

  ephemeral_storage {
    size = var.execute_ephemeral_storage
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.function["execute"].name
    application_log_level = var.log_level
    system_log_level      = "INFO"
  }

  environment {
    variables = local.common_env
  }

  tags = local.tags

  depends_on = [aws_iam_role_policy.execute]
}

# ------------------------------------------------------------------ collect
resource "aws_lambda_function" "collect" {
  #checkov:skip=CKV_AWS_116:Only invoked by the results queue's event source (synchronously); failed messages go to that queue's dead-letter queue (results-dlq).
  #checkov:skip=CKV_AWS_117:No VPC resources to reach; a VPC would only add NAT cost for the DynamoDB, S3 and SQS calls.
  #checkov:skip=CKV_AWS_115:Concurrency is bounded by the results queue's event source; reserving some would take it from the account's unreserved pool.
  #checkov:skip=CKV_AWS_173:Environment holds only resource names and URLs, encrypted at rest with Lambda's AWS managed key.
  #checkov:skip=CKV_AWS_272:Code signing needs a signing profile and signed artifacts; the code comes from this repository's own build, deployed by the principal that built it (the template does not sign either).
  function_name = "${var.name}-collect"
  description   = "testexec collect - ingests shard results, counts, hands finished runs to report."
  role          = aws_iam_role.collect.arn

  filename         = local.zip.collect
  source_code_hash = filebase64sha256(local.zip.collect)
  handler          = "bootstrap"
  runtime          = "provided.al2023"
  architectures    = [var.architecture]

  memory_size = 512
  timeout     = 120

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.function["collect"].name
    application_log_level = var.log_level
    system_log_level      = "INFO"
  }

  environment {
    variables = local.common_env
  }

  tags = local.tags

  depends_on = [aws_iam_role_policy.collect]
}

# ------------------------------------------------------------------- report
resource "aws_lambda_function" "report" {
  #checkov:skip=CKV_AWS_117:No VPC resources to reach; a VPC would only add NAT cost for the GitHub and AWS API calls.
  #checkov:skip=CKV_AWS_115:Concurrency is bounded by the reports queue's event source and one sweep per 5 minutes; reserving some would take it from the account's unreserved pool.
  #checkov:skip=CKV_AWS_173:The secrets reach the environment at deploy time (docs/lambda.md); Lambda encrypts it at rest with its AWS managed key and only principals allowed lambda:GetFunctionConfiguration can read it. A customer managed key would add kms:Decrypt to that, at a cost (docs/deploy-aws.md, Secrets).
  #checkov:skip=CKV_AWS_272:Code signing needs a signing profile and signed artifacts; the code comes from this repository's own build, deployed by the principal that built it (the template does not sign either).
  function_name = "${var.name}-report"
  description   = "testexec report - renders reports, completes check runs, sweeps stuck runs."
  role          = aws_iam_role.report.arn

  filename         = local.zip.report
  source_code_hash = filebase64sha256(local.zip.report)
  handler          = "bootstrap"
  runtime          = "provided.al2023"
  architectures    = [var.architecture]

  memory_size = 1024
  timeout     = 300

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.function["report"].name
    application_log_level = var.log_level
    system_log_level      = "INFO"
  }

  # Failed asynchronous invocations (the sweep schedule) land here.
  dead_letter_config {
    target_arn = aws_sqs_queue.async_dlq.arn
  }

  environment {
    variables = local.report_env
  }

  tags = local.tags

  depends_on = [aws_iam_role_policy.report]
}

# --------------------------------------------------------------- log groups
# Created here (not on first invocation) so retention is set and the roles
# need no logs:CreateLogGroup.
resource "aws_cloudwatch_log_group" "function" {
  #checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts at rest with a service key; the functions never log secrets (docs/lambda.md), and a KMS key would add cost and a key policy.
  #checkov:skip=CKV_AWS_338:Retention is log_retention_days (default 30, as the template's LogRetentionDays); a year of debug-level JSON logs costs more than it helps, and run reports live in the bucket.
  for_each = toset(["trigger", "execute", "collect", "report"])

  name              = "/aws/lambda/${var.name}-${each.key}"
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

# ------------------------------------------------------------ event sources
# The HTTP routes only verify and queue; the slow work (source fetch,
# planning) happens when trigger takes the request off this queue.
resource "aws_lambda_event_source_mapping" "requests" {
  event_source_arn        = aws_sqs_queue.queue["requests"].arn
  function_name           = aws_lambda_function.trigger.arn
  batch_size              = 5
  function_response_types = ["ReportBatchItemFailures"]
}

resource "aws_lambda_event_source_mapping" "shards" {
  event_source_arn = aws_sqs_queue.queue["shards"].arn
  function_name    = aws_lambda_function.execute.arn
  # One shard per invocation: a shard can take the whole timeout.
  batch_size              = 1
  function_response_types = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.execute_max_concurrency
  }
}

resource "aws_lambda_event_source_mapping" "results" {
  event_source_arn = aws_sqs_queue.queue["results"].arn
  function_name    = aws_lambda_function.collect.arn
  batch_size       = 10
  # Results of one run arrive together; a short window batches them.
  maximum_batching_window_in_seconds = 5
  function_response_types            = ["ReportBatchItemFailures"]
}

resource "aws_lambda_event_source_mapping" "reports" {
  event_source_arn = aws_sqs_queue.queue["reports"].arn
  function_name    = aws_lambda_function.report.arn
  # One run per invocation: rendering a large run takes a while.
  batch_size              = 1
  function_response_types = ["ReportBatchItemFailures"]
}
