# The template's Outputs, same meaning (snake_case names).

output "webhook_url" {
  description = "Payload URL for the GitHub App's webhook (content type application/json)."
  value       = "${aws_apigatewayv2_api.http.api_endpoint}/webhooks/github"
}

output "runs_url" {
  description = "POST a run request here, SigV4-signed (IAM auth)."
  value       = "${aws_apigatewayv2_api.http.api_endpoint}/runs"
}

output "runs_route_arn" {
  description = "execute-api ARN of POST /runs: grant execute-api:Invoke on it to whoever may start runs."
  value       = "${aws_apigatewayv2_api.http.execution_arn}/*/POST/runs"
}

output "function_names" {
  description = "The four functions' names, by role (trigger, execute, collect, report)."
  value = {
    trigger = aws_lambda_function.trigger.function_name
    execute = aws_lambda_function.execute.function_name
    collect = aws_lambda_function.collect.function_name
    report  = aws_lambda_function.report.function_name
  }
}

output "table_name" {
  description = "The DynamoDB table."
  value       = aws_dynamodb_table.table.name
}

output "bucket_name" {
  description = "The S3 bucket (reports, logs, sources, timing history)."
  value       = aws_s3_bucket.bucket.id
}

output "queue_urls" {
  description = "The work queues' URLs (requests, shards, results, reports)."
  value       = { for k, q in aws_sqs_queue.queue : k => q.url }
}

output "dlq_urls" {
  description = "The dead-letter queues' URLs (requests, shards, results, reports, and async: failed scheduled invocations of trigger and report)."
  value       = merge({ for k, q in aws_sqs_queue.dlq : k => q.url }, { async = aws_sqs_queue.async_dlq.url })
}

output "log_group_names" {
  description = "CloudWatch log groups of the functions and the API's access log."
  value       = merge({ for k, g in aws_cloudwatch_log_group.function : k => g.name }, { api = aws_cloudwatch_log_group.api_access.name })
}
