output "intake_url" {
  description = "Base URL of the intake: the GitHub App's webhook is <intake_url>/webhooks/github."
  value       = module.testexec.intake_url
}

output "webhook_url" {
  description = "Payload URL for the GitHub App's webhook (content type application/json)."
  value       = "${module.testexec.intake_url}/webhooks/github"
}

output "storage_account" {
  description = "The storage account."
  value       = module.testexec.storage_account
}

output "poison_queues" {
  description = "The poison queues to watch."
  value       = module.testexec.poison_queues
}

output "job_names" {
  description = "The Container Apps jobs."
  value       = module.testexec.job_names
}

output "log_analytics_workspace_id" {
  description = "Workspace id for az monitor log-analytics query."
  value       = module.testexec.log_analytics_workspace_id
}
