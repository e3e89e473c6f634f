# Alarms (template: *DlqAlarm, *ErrorsAlarm, ExecuteThrottlesAlarm). Missing
# data is "not breaching": no traffic is not a problem.

locals {
  alarm_actions = var.alarm_topic_arn == null ? [] : [var.alarm_topic_arn]

  # A message in a dead-letter queue is a run that needs attention.
  dlq_alarms = {
    requests = { queue = aws_sqs_queue.dlq["requests"].name, description = "run requests failed 5 times (requests-dlq)" }
    shards   = { queue = aws_sqs_queue.dlq["shards"].name, description = "shards failed 5 times (shards-dlq)" }
    results  = { queue = aws_sqs_queue.dlq["results"].name, description = "shard results failed 5 times (results-dlq)" }
    reports  = { queue = aws_sqs_queue.dlq["reports"].name, description = "report jobs failed 5 times (reports-dlq)" }
    async    = { queue = aws_sqs_queue.async_dlq.name, description = "a scheduled or asynchronous invocation failed (async-dlq)" }
  }

  # Function errors: an invocation that returned an error or crashed (a
  # partial batch failure is not one; those show up in the DLQs). Plus
  # execute's throttles: the account's concurrency ran out, shards wait.
  function_alarms = {
    trigger-errors    = { function = aws_lambda_function.trigger.function_name, metric = "Errors", description = "trigger invocations failed" }
    execute-errors    = { function = aws_lambda_function.execute.function_name, metric = "Errors", description = "execute invocations failed (crash, timeout, out of memory)" }
    execute-throttles = { function = aws_lambda_function.execute.function_name, metric = "Throttles", description = "execute throttled (account concurrency exhausted); shards wait in the queue" }
    collect-errors    = { function = aws_lambda_function.collect.function_name, metric = "Errors", description = "collect invocations failed" }
    report-errors     = { function = aws_lambda_function.report.function_name, metric = "Errors", description = "report invocations failed" }
  }
}

resource "aws_cloudwatch_metric_alarm" "dlq" {
  for_each = local.dlq_alarms

  alarm_name          = "${var.name}-${each.key}-dlq"
  alarm_description   = "testexec - ${each.value.description}; see docs/deploy-aws.md, Dead letters"
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value.queue }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "function" {
  for_each = local.function_alarms

  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = "testexec - ${each.value.description}"
  namespace           = "AWS/Lambda"
  metric_name         = each.value.metric
  dimensions          = { FunctionName = each.value.function }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  tags                = local.tags
}
