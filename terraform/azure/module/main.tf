# testexec on Azure Container Apps: the stack of azure/main.bicep, resource
# for resource. One file per concern: storage.tf (account, container,
# lifecycle, table, queues), identity.tf (managed identities, role
# assignments), environment.tf (Log Analytics, Container Apps environment),
# intake.tf (the front door), jobs.tf (one event-driven job per handler, the
# scheduled sweep). scripts/check-azure-drift.py fails CI when this and the
# Bicep disagree on what matters (names, job args, triggers and scaling,
# sizes, role definitions per identity, storage settings).
#
# Scale to zero everywhere, and nothing holds a storage key: every container
# authenticates with its managed identity, shared-key access is disabled.

data "azurerm_resource_group" "rg" {
  name = var.resource_group_name
}

data "azurerm_subscription" "current" {}

# The existing vault with the GitHub secrets (Bicep: `existing` in the same
# resource group).
data "azurerm_key_vault" "vault" {
  name                = var.key_vault_name
  resource_group_name = var.resource_group_name
}

locals {
  location = coalesce(var.location, data.azurerm_resource_group.rg.location)

  # Bicep: take('${prefix}${uniqueString(resourceGroup().id)}', 24).
  storage_name = coalesce(var.storage_account_name, substr("${var.prefix}${substr(sha1(data.azurerm_resource_group.rg.id), 0, 13)}", 0, 24))
  container    = "testexec"
  table        = "testexecruns"
  queue_prefix = var.prefix

  # The four handlers: each consumes one queue, as one Container Apps job.
  handlers = {
    trigger = { queue = "requests", image = var.image, timeout = 900, cpu = 0.5, memory = "1Gi" }
    execute = { queue = "shards", image = var.execute_image, timeout = var.shard_timeout_seconds, cpu = 2.0, memory = "4Gi" }
    collect = { queue = "results", image = var.image, timeout = 600, cpu = 0.5, memory = "1Gi" }
    report  = { queue = "reports", image = var.image, timeout = 900, cpu = 0.5, memory = "1Gi" }
  }
  queue_names  = [for h in values(local.handlers) : "${local.queue_prefix}-${h.queue}"]
  poison_names = [for h in values(local.handlers) : "${local.queue_prefix}-${h.queue}-poison"]

  # Built-in role definition ids.
  roles = {
    queue_data_contributor = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
    table_data_contributor = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
    blob_data_contributor  = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
    key_vault_secrets_user = "4633458b-17de-408a-b874-0445c86b69e6"
  }

  # What every testexec container reads (docs/backends.md, "Azure backends").
  # No storage key: TESTEXEC_AZURE_STORAGE_KEY stays unset, so the managed
  # identity named by TESTEXEC_AZURE_CLIENT_ID signs every request. `secret`
  # names a Container Apps secret (a Key Vault reference) instead of a value.
  common_env = [
    { name = "TESTEXEC_BACKEND", value = "azure", secret = null },
    { name = "TESTEXEC_LOG_FORMAT", value = "json", secret = null },
    { name = "RUST_LOG", value = "info", secret = null },
    { name = "TESTEXEC_AZURE_STORAGE_ACCOUNT", value = azurerm_storage_account.storage.name, secret = null },
    { name = "TESTEXEC_AZURE_CONTAINER", value = local.container, secret = null },
    { name = "TESTEXEC_AZURE_TABLE", value = local.table, secret = null },
    { name = "TESTEXEC_AZURE_QUEUE_PREFIX", value = local.queue_prefix, secret = null },
    { name = "TESTEXEC_AZURE_VISIBILITY_SECS", value = tostring(var.visibility_seconds), secret = null },
    { name = "TESTEXEC_AZURE_MAX_DEQUEUES", value = tostring(var.max_dequeues), secret = null },
    { name = "TESTEXEC_GITHUB_APP_ID", value = var.github_app_id, secret = null },
    { name = "TESTEXEC_GITHUB_PRIVATE_KEY", value = null, secret = "github-app-private-key" },
    { name = "TESTEXEC_WEBHOOK_SECRET", value = null, secret = "github-webhook-secret" },
  ]
  # Added to common_env: the jobs' identity and scratch directory, the
  # intake's identity and the token of POST /runs.
  worker_env = [
    { name = "TESTEXEC_AZURE_CLIENT_ID", value = azurerm_user_assigned_identity.worker.client_id, secret = null },
    { name = "TESTEXEC_STATE_DIR", value = "/tmp/testexec", secret = null },
  ]
  intake_env = [
    { name = "TESTEXEC_AZURE_CLIENT_ID", value = azurerm_user_assigned_identity.intake.client_id, secret = null },
    { name = "TESTEXEC_API_TOKEN", value = null, secret = "api-token" },
  ]

  # Secrets are Key Vault references (versionless: the newest version),
  # each read with its container's identity. vault_uri ends with "/".
  secret_names = ["github-app-private-key", "github-webhook-secret", "api-token"]
  secret_urls  = { for s in local.secret_names : s => "${data.azurerm_key_vault.vault.vault_uri}secrets/${s}" }

  tags = var.tags
}
