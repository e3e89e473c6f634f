output "webhook_url" {
  description = "GitHub App → Webhook URL."
  value       = module.testexec.webhook_url
}

output "runs_url" {
  description = "POST /runs (SigV4)."
  value       = module.testexec.runs_url
}

output "runs_route_arn" {
  description = "Grant execute-api:Invoke on this to whoever may start runs."
  value       = module.testexec.runs_route_arn
}

output "function_names" {
  description = "The four functions."
  value       = module.testexec.function_names
}

output "table_name" {
  description = "The DynamoDB table."
  value       = module.testexec.table_name
}

output "bucket_name" {
  description = "The S3 bucket."
  value       = module.testexec.bucket_name
}

output "queue_urls" {
  description = "The work queues."
  value       = module.testexec.queue_urls
}

output "dlq_urls" {
  description = "The dead-letter queues."
  value       = module.testexec.dlq_urls
}
