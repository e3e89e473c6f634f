# An example root: testexec in one resource group, with the module's defaults
# (those of azure/main.bicep) for leases, retries and the shard timeout.
# See README.md in this directory.

module "testexec" {
  source = "../module"

  resource_group_name  = var.resource_group_name
  location             = var.location
  prefix               = var.prefix
  image                = var.image
  execute_image        = var.execute_image
  key_vault_name       = var.key_vault_name
  github_app_id        = var.github_app_id
  storage_account_name = var.storage_account_name

  # The Bicep's defaults, spelled out as the knobs most teams turn.
  visibility_seconds    = 300
  max_dequeues          = 5
  shard_timeout_seconds = 3600

  tags = {
    project = "testexec"
  }
}
