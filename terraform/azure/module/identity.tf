# One identity for the intake app, one for the handler jobs (and the sweep).
# Least privilege: data-plane roles on this storage account only (no
# management-plane rights, no other account), and secret reads on the one
# vault. Blob Data Contributor includes generating user delegation keys,
# which sign the report links (Bicep: intakeIdentity, workerIdentity,
# storageGrants, vaultGrants).

resource "azurerm_user_assigned_identity" "intake" {
  name                = "${var.prefix}-intake"
  resource_group_name = var.resource_group_name
  location            = local.location
  tags                = local.tags
}

resource "azurerm_user_assigned_identity" "worker" {
  name                = "${var.prefix}-worker"
  resource_group_name = var.resource_group_name
  location            = local.location
  tags                = local.tags
}

locals {
  identities = {
    intake = azurerm_user_assigned_identity.intake.principal_id
    worker = azurerm_user_assigned_identity.worker.principal_id
  }

  # "<identity>/<role>" => role definition id; keys are known at plan time.
  storage_grants = {
    "intake/queue" = { identity = "intake", role = local.roles.queue_data_contributor }
    "intake/table" = { identity = "intake", role = local.roles.table_data_contributor }
    "intake/blob"  = { identity = "intake", role = local.roles.blob_data_contributor }
    "worker/queue" = { identity = "worker", role = local.roles.queue_data_contributor }
    "worker/table" = { identity = "worker", role = local.roles.table_data_contributor }
    "worker/blob"  = { identity = "worker", role = local.roles.blob_data_contributor }
  }
  vault_grants = {
    "intake/secrets" = { identity = "intake", role = local.roles.key_vault_secrets_user }
    "worker/secrets" = { identity = "worker", role = local.roles.key_vault_secrets_user }
  }
}

resource "azurerm_role_assignment" "storage" {
  for_each = local.storage_grants

  scope              = azurerm_storage_account.storage.id
  role_definition_id = "${data.azurerm_subscription.current.id}/providers/Microsoft.Authorization/roleDefinitions/${each.value.role}"
  principal_id       = local.identities[each.value.identity]
  principal_type     = "ServicePrincipal"
}

resource "azurerm_role_assignment" "vault" {
  for_each = local.vault_grants

  scope              = data.azurerm_key_vault.vault.id
  role_definition_id = "${data.azurerm_subscription.current.id}/providers/Microsoft.Authorization/roleDefinitions/${each.value.role}"
  principal_id       = local.identities[each.value.identity]
  principal_type     = "ServicePrincipal"
}
