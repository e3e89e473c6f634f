# One role per function, only the actions it uses on only its resources
# (template: TriggerRole, ExecuteRole, CollectRole, ReportRole; the actions
# are checked against the template by scripts/check-terraform-drift.py).
# The single "*" resource is X-Ray's: PutTraceSegments and
# PutTelemetryRecords support no resource-level permissions.

locals {
  # The table and both of its indexes (Query runs on the indexes).
  table_resources = [
    aws_dynamodb_table.table.arn,
    "${aws_dynamodb_table.table.arn}/index/runs-by-time",
    "${aws_dynamodb_table.table.arn}/index/active-runs",
  ]
  objects_resource = "${aws_s3_bucket.bucket.arn}/*"
  # Log statements name "<log group arn>:*", which is what the template's
  # !GetAtt LogGroup.Arn returns (Terraform's arn has no ":*").
}

data "aws_iam_policy_document" "assume_lambda" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

# ------------------------------------------------------------------ trigger
resource "aws_iam_role" "trigger" {
  name               = "${var.name}-trigger"
  description        = "testexec trigger"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
  tags               = local.tags
}

data "aws_iam_policy_document" "trigger" {
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function["trigger"].arn}:*"]
  }
  statement {
    sid       = "Tracing"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }
  statement {
    sid = "Table"
    actions = [
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:Query",
      "dynamodb:BatchGetItem",
      "dynamodb:BatchWriteItem",
      "dynamodb:TransactWriteItems",
      "dynamodb:ConditionCheckItem",
    ]
    resources = local.table_resources
  }
  statement {
    sid       = "Objects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
    resources = [local.objects_resource]
  }
  statement {
    sid       = "Enqueue"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.queue["shards"].arn, aws_sqs_queue.queue["requests"].arn, aws_sqs_queue.async_dlq.arn]
  }
  statement {
    sid       = "ConsumeRequests"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]
    resources = [aws_sqs_queue.queue["requests"].arn]
  }
  # A message no retry can help goes to the dead-letter queue at once.
  statement {
    sid       = "DeadLetterRequests"
    actions   = ["sqs:SendMessage", "sqs:GetQueueUrl"]
    resources = [aws_sqs_queue.dlq["requests"].arn]
  }
}

resource "aws_iam_role_policy" "trigger" {
  name   = "trigger"
  role   = aws_iam_role.trigger.id
  policy = data.aws_iam_policy_document.trigger.json
}

# ------------------------------------------------------------------ execute
resource "aws_iam_role" "execute" {
  name               = "${var.name}-execute"
  description        = "testexec execute"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
  tags               = local.tags
}

data "aws_iam_policy_document" "execute" {
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function["execute"].arn}:*"]
  }
  statement {
    sid       = "Tracing"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }
  statement {
    sid       = "Objects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
    resources = [local.objects_resource]
  }
  statement {
    sid       = "SendResults"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.queue["results"].arn]
  }
  statement {
    sid       = "ConsumeShards"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]
    resources = [aws_sqs_queue.queue["shards"].arn]
  }
  # A message no retry can help goes to the dead-letter queue at once.
  statement {
    sid       = "DeadLetterShards"
    actions   = ["sqs:SendMessage", "sqs:GetQueueUrl"]
    resources = [aws_sqs_queue.dlq["shards"].arn]
  }
}

resource "aws_iam_role_policy" "execute" {
  name   = "execute"
  role   = aws_iam_role.execute.id
  policy = data.aws_iam_policy_document.execute.json
}

# An execute image is pulled from ECR by Lambda when the function is created
# or updated, with the deployer's permissions: the role needs none for it.

# ------------------------------------------------------------------ collect
resource "aws_iam_role" "collect" {
  name               = "${var.name}-collect"
  description        = "testexec collect"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
  tags               = local.tags
}

data "aws_iam_policy_document" "collect" {
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function["collect"].arn}:*"]
  }
  statement {
    sid       = "Tracing"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }
  statement {
    sid = "Table"
    actions = [
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:Query",
      "dynamodb:BatchGetItem",
      "dynamodb:BatchWriteItem",
      "dynamodb:TransactWriteItems",
      "dynamodb:ConditionCheckItem",
    ]
    resources = local.table_resources
  }
  statement {
    sid       = "Objects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
    resources = [local.objects_resource]
  }
  statement {
    sid       = "SendReports"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.queue["reports"].arn]
  }
  statement {
    sid       = "ConsumeResults"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]
    resources = [aws_sqs_queue.queue["results"].arn]
  }
  # A message no retry can help goes to the dead-letter queue at once.
  statement {
    sid       = "DeadLetterResults"
    actions   = ["sqs:SendMessage", "sqs:GetQueueUrl"]
    resources = [aws_sqs_queue.dlq["results"].arn]
  }
}

resource "aws_iam_role_policy" "collect" {
  name   = "collect"
  role   = aws_iam_role.collect.id
  policy = data.aws_iam_policy_document.collect.json
}

# ------------------------------------------------------------------- report
resource "aws_iam_role" "report" {
  name               = "${var.name}-report"
  description        = "testexec report"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
  tags               = local.tags
}

data "aws_iam_policy_document" "report" {
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function["report"].arn}:*"]
  }
  statement {
    sid       = "Tracing"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }
  statement {
    sid = "Table"
    actions = [
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:Query",
      "dynamodb:BatchGetItem",
      "dynamodb:BatchWriteItem",
      "dynamodb:TransactWriteItems",
      "dynamodb:ConditionCheckItem",
    ]
    resources = local.table_resources
  }
  # GetObject also backs the presigned report links report signs.
  statement {
    sid       = "Objects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
    resources = [local.objects_resource]
  }
  statement {
    sid       = "ListRunObjects"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.bucket.arn]
  }
  # The sweep hands the runs it finalises to the reports queue.
  statement {
    sid       = "Enqueue"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.queue["reports"].arn, aws_sqs_queue.async_dlq.arn]
  }
  statement {
    sid       = "ConsumeReports"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]
    resources = [aws_sqs_queue.queue["reports"].arn]
  }
  # A message no retry can help goes to the dead-letter queue at once.
  statement {
    sid       = "DeadLetterReports"
    actions   = ["sqs:SendMessage", "sqs:GetQueueUrl"]
    resources = [aws_sqs_queue.dlq["reports"].arn]
  }
}

resource "aws_iam_role_policy" "report" {
  name   = "report"
  role   = aws_iam_role.report.id
  policy = data.aws_iam_policy_document.report.json
}
