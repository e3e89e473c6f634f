# The front door: GitHub webhooks and POST /runs. It only verifies and
# queues (--jobs 0): the handlers run as the jobs in jobs.tf (Bicep: intake).
# 0 replicas while nobody calls it.

resource "azurerm_container_app" "intake" {
  name                         = "${var.prefix}-intake"
  resource_group_name          = var.resource_group_name
  container_app_environment_id = azurerm_container_app_environment.env.id
  revision_mode                = "Single"
  tags                         = local.tags

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.intake.id]
  }

  dynamic "secret" {
    for_each = local.secret_urls
    content {
      name                = secret.key
      key_vault_secret_id = secret.value
      identity            = azurerm_user_assigned_identity.intake.id
    }
  }

  ingress {
    external_enabled           = true
    target_port                = 8080
    transport                  = "http"
    allow_insecure_connections = false

    traffic_weight {
      latest_revision = true
      percentage      = 100
    }
  }

  template {
    min_replicas = 0
    max_replicas = 5

    http_scale_rule {
      name                = "http"
      concurrent_requests = "50"
    }

    container {
      name   = "intake"
      image  = var.image
      args   = ["serve", "--jobs", "0"]
      cpu    = 0.25
      memory = "0.5Gi"

      dynamic "env" {
        for_each = concat(local.common_env, local.intake_env)
        content {
          name        = env.value.name
          value       = env.value.value
          secret_name = env.value.secret
        }
      }

      liveness_probe {
        transport = "HTTP"
        path      = "/healthz"
        port      = 8080
      }

      readiness_probe {
        transport = "HTTP"
        path      = "/healthz"
        port      = 8080
      }
    }
  }

  # The secrets are read with the identity's role on the vault, and the
  # first revision touches storage at once: grants first.
  depends_on = [azurerm_role_assignment.vault, azurerm_role_assignment.storage]
}
