# The Bicep's outputs (intakeUrl, storageAccount, poisonQueues; snake_case),
# and the names the docs' commands need.

output "intake_url" {
  description = "The intake's base URL: the GitHub App's webhook is <intake_url>/webhooks/github, runs are POSTed to <intake_url>/runs."
  value       = "https://${azurerm_container_app.intake.ingress[0].fqdn}"
}

output "storage_account" {
  description = "The storage account (runs table, blob container, queues)."
  value       = azurerm_storage_account.storage.name
}

output "poison_queues" {
  description = "The poison queues (requests, shards, results, reports): messages delivered max_dequeues times, or undecodable."
  value       = local.poison_names
}

output "queues" {
  description = "The work queues (requests, shards, results, reports)."
  value       = local.queue_names
}

output "job_names" {
  description = "The Container Apps jobs by handler, and the sweep."
  value       = merge({ for k, j in azurerm_container_app_job.handler : k => j.name }, { sweep = azurerm_container_app_job.sweep.name })
}

output "log_analytics_workspace_id" {
  description = "Log Analytics workspace (customer id) the containers log to: az monitor log-analytics query -w <this>."
  value       = azurerm_log_analytics_workspace.logs.workspace_id
}

output "identity_client_ids" {
  description = "Client ids of the managed identities (intake, worker)."
  value = {
    intake = azurerm_user_assigned_identity.intake.client_id
    worker = azurerm_user_assigned_identity.worker.client_id
  }
}
