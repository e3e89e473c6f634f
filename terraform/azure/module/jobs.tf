# One event-driven job per handler: KEDA's azure-queue scaler, authenticated
# with the worker identity, starts one execution per waiting message
# (queueLength 1); each takes one message (`worker --once`), handles it,
# acks it and exits. A failed handler releases the message; after
# max_dequeues deliveries it lands in the poison queue (Bicep: jobs).

resource "azurerm_container_app_job" "handler" {
  for_each = local.handlers

  name                         = "${var.prefix}-${each.key}"
  resource_group_name          = var.resource_group_name
  location                     = local.location
  container_app_environment_id = azurerm_container_app_environment.env.id
  replica_timeout_in_seconds   = each.value.timeout
  replica_retry_limit          = 0
  tags                         = local.tags

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.worker.id]
  }

  dynamic "secret" {
    for_each = local.secret_urls
    content {
      name                = secret.key
      key_vault_secret_id = secret.value
      identity            = azurerm_user_assigned_identity.worker.id
    }
  }

  event_trigger_config {
    parallelism              = 1
    replica_completion_count = 1

    scale {
      min_executions              = 0
      max_executions              = 50
      polling_interval_in_seconds = 10

      rules {
        name             = "queue"
        custom_rule_type = "azure-queue"
        metadata = {
          accountName = azurerm_storage_account.storage.name
          queueName   = azurerm_storage_queue.queue["${local.queue_prefix}-${each.value.queue}"].name
          queueLength = "1"
        }
        identity_id = azurerm_user_assigned_identity.worker.id
      }
    }
  }

  template {
    container {
      name   = each.key
      image  = each.value.image
      args   = ["worker", "--queue", each.key, "--once", "--wait", "5"]
      cpu    = each.value.cpu
      memory = each.value.memory

      dynamic "env" {
        for_each = concat(local.common_env, local.worker_env)
        content {
          name        = env.value.name
          value       = env.value.value
          secret_name = env.value.secret
        }
      }
    }
  }

  depends_on = [azurerm_role_assignment.vault, azurerm_role_assignment.storage]
}

# The sweep, every 5 minutes as on AWS: runs past their deadline get the
# shards that never reported errored, lost hand-offs to report are queued
# again (`testexec sweep`, one pass, then exit). Nothing else stays up to do
# it: the intake scales to zero (Bicep: sweep).
resource "azurerm_container_app_job" "sweep" {
  name                         = "${var.prefix}-sweep"
  resource_group_name          = var.resource_group_name
  location                     = local.location
  container_app_environment_id = azurerm_container_app_environment.env.id
  replica_timeout_in_seconds   = 300
  replica_retry_limit          = 0
  tags                         = local.tags

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.worker.id]
  }

  dynamic "secret" {
    for_each = local.secret_urls
    content {
      name                = secret.key
      key_vault_secret_id = secret.value
      identity            = azurerm_user_assigned_identity.worker.id
    }
  }

  schedule_trigger_config {
    cron_expression          = "*/5 * * * *"
    parallelism              = 1
    replica_completion_count = 1
  }

  template {
    container {
      name   = "sweep"
      image  = var.image
      args   = ["sweep"]
      cpu    = 0.25
      memory = "0.5Gi"

      dynamic "env" {
        for_each = concat(local.common_env, local.worker_env)
        content {
          name        = env.value.name
          value       = env.value.value
          secret_name = env.value.secret
        }
      }
    }
  }

  depends_on = [azurerm_role_assignment.vault, azurerm_role_assignment.storage]
}
