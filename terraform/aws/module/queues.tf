# The four work queues, each with a dead-letter queue after 5 receives
# (at-least-once delivery: a duplicate is normal, five failures are not), and
# the dead-letter queue of failed asynchronous invocations (template:
# RequestsQueue ... ReportsDlq, AsyncDlq). SQS-managed encryption (SSE-SQS)
# needs no key policy. DLQs keep messages 14 days for redrive.

locals {
  # Visibility timeout = 6x the consuming function's timeout (functions.tf),
  # as AWS recommends for Lambda event sources; checked against the template
  # by scripts/check-terraform-drift.py.
  queues = {
    requests = { visibility_timeout_seconds = 1080 } # trigger 180 s
    shards   = { visibility_timeout_seconds = 5400 } # execute 900 s
    results  = { visibility_timeout_seconds = 720 }  # collect 120 s
    reports  = { visibility_timeout_seconds = 1800 } # report 300 s
  }
  max_receive_count       = 5
  queue_retention_seconds = 345600  # 4 days, the SQS default
  dlq_retention_seconds   = 1209600 # 14 days, the SQS maximum
}

resource "aws_sqs_queue" "dlq" {
  for_each = local.queues

  name                      = "${var.name}-${each.key}-dlq"
  message_retention_seconds = local.dlq_retention_seconds
  sqs_managed_sse_enabled   = true
  tags                      = local.tags
}

resource "aws_sqs_queue" "queue" {
  for_each = local.queues

  name                       = "${var.name}-${each.key}"
  visibility_timeout_seconds = each.value.visibility_timeout_seconds
  message_retention_seconds  = local.queue_retention_seconds
  sqs_managed_sse_enabled    = true

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq[each.key].arn
    maxReceiveCount     = local.max_receive_count
  })

  tags = local.tags
}

# Failed asynchronous invocations of trigger and report (schedules).
resource "aws_sqs_queue" "async_dlq" {
  name                      = "${var.name}-async-dlq"
  message_retention_seconds = local.dlq_retention_seconds
  sqs_managed_sse_enabled   = true
  tags                      = local.tags
}
