# EventBridge schedules (template: ReportFunction's Sweep event, NightlyRule).

# Every 5 minutes the standard "Scheduled Event" (no input): report reads it
# as "sweep runs whose shards never reported".
resource "aws_cloudwatch_event_rule" "sweep" {
  name                = "${var.name}-sweep"
  description         = "testexec sweep - finalises runs whose shards never reported."
  schedule_expression = "rate(5 minutes)"
  state               = "ENABLED"
  tags                = local.tags
}

resource "aws_cloudwatch_event_target" "sweep" {
  rule      = aws_cloudwatch_event_rule.sweep.name
  target_id = "report"
  arn       = aws_lambda_function.report.arn
}

resource "aws_lambda_permission" "sweep" {
  statement_id  = "SweepSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.report.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.sweep.arn
}

# The optional scheduled run. A target's input replaces the whole event, so
# the input is shaped as an EventBridge event whose detail is the run request
# of docs/lambda.md: trigger then records the run's origin as a schedule (a
# bare request would read as a direct invocation).
resource "aws_cloudwatch_event_rule" "nightly" {
  count = var.nightly == null ? 0 : 1

  name                = "${var.name}-nightly"
  description         = "testexec scheduled run of ${var.nightly.repo}@${var.nightly.ref}"
  schedule_expression = var.nightly.schedule
  state               = "ENABLED"
  tags                = local.tags
}

resource "aws_cloudwatch_event_target" "nightly" {
  count = var.nightly == null ? 0 : 1

  rule      = aws_cloudwatch_event_rule.nightly[0].name
  target_id = "trigger"
  arn       = aws_lambda_function.trigger.arn
  input = jsonencode({
    "detail-type" = "Scheduled Event"
    source        = "testexec.schedule"
    # A null suite is left out: the manifest's only suite runs.
    detail = { for k, v in {
      repo  = var.nightly.repo
      ref   = var.nightly.ref
      suite = var.nightly.suite
    } : k => v if v != null }
  })
}

resource "aws_lambda_permission" "nightly" {
  count = var.nightly == null ? 0 : 1

  statement_id  = "NightlySchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.trigger.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.nightly[0].arn
}
