# One storage account for everything: Table Storage (runs), Blob Storage
# (snapshots, logs, reports, queue overflow), Storage Queues between the
# handlers and their poison queues (Bicep: storage, blobService,
# blobContainer, lifecycle, runsTable, queues). Every child is created
# through Resource Manager (storage_account_id), not the data plane, so
# disabling shared keys does not lock Terraform out.

resource "azurerm_storage_account" "storage" {
  #checkov:skip=CKV_AZURE_35: Container Apps on the consumption plan (and KEDA's queue scaler) reach storage through its public endpoint; a VNet with private endpoints costs money every idle hour. Access is by Entra ID only (shared keys disabled, no anonymous blobs).
  #checkov:skip=CKV_AZURE_59: same reason as CKV_AZURE_35.
  #checkov:skip=CKV2_AZURE_33: same reason as CKV_AZURE_35 (a private endpoint needs a VNet, which costs money every idle hour).
  #checkov:skip=CKV_AZURE_43: the name is <prefix><13 hex> or storage_account_name, both validated as 3-24 lowercase letters and digits, which checkov cannot evaluate.
  #checkov:skip=CKV_AZURE_206: run state is short-lived (runs, leases, reports kept days); ZRS survives a zone outage, geo-replication would double the bill for it.
  #checkov:skip=CKV_AZURE_33: no classic Storage Analytics logging (the Bicep has none either): it would bill a $logs write for each of KEDA's queue polls (every 10 s per queue) while idle; the handlers log every message they take, ack or poison, with run and shard ids, to Log Analytics.
  #checkov:skip=CKV2_AZURE_1: Microsoft-managed keys encrypt at rest; a customer-managed key needs a Key Vault key with purge protection and key access for the account, for short-lived run state (runs, leases, reports kept days).
  name                     = local.storage_name
  resource_group_name      = var.resource_group_name
  location                 = local.location
  account_kind             = "StorageV2"
  account_tier             = "Standard"
  account_replication_type = "ZRS" # a zone outage loses no run state; still $0 when idle

  # Managed identities only: no account key, no SAS signed with it.
  shared_access_key_enabled       = false
  allow_nested_items_to_be_public = false
  min_tls_version                 = "TLS1_2"
  https_traffic_only_enabled      = true
  public_network_access_enabled   = true

  blob_properties {
    delete_retention_policy {
      days = 7
    }
  }

  tags = local.tags
}

resource "azurerm_storage_container" "container" {
  #checkov:skip=CKV2_AZURE_21: blob read logging needs a diagnostic setting into a paid sink; the handlers log every report and snapshot they write to Log Analytics already.
  name                  = local.container
  storage_account_id    = azurerm_storage_account.storage.id
  container_access_type = "private"
}

# Queue bodies over 64 KiB wait in blobs under queue-overflow/; the ack
# deletes them, a crash may leave one: this removes leftovers.
resource "azurerm_storage_management_policy" "lifecycle" {
  storage_account_id = azurerm_storage_account.storage.id

  rule {
    name    = "queue-overflow"
    enabled = true

    filters {
      blob_types   = ["blockBlob"]
      prefix_match = ["${local.container}/queue-overflow/"]
    }

    actions {
      base_blob {
        delete_after_days_since_modification_greater_than = 14
      }
    }
  }
}

resource "azurerm_storage_table" "runs" {
  #checkov:skip=CKV2_AZURE_20: same reason as CKV_AZURE_33 on the account (no Storage Analytics logging; the handlers log their run-store writes to Log Analytics).
  name               = local.table
  storage_account_id = azurerm_storage_account.storage.id
}

# The four work queues and their poison queues (a message moves there after
# max_dequeues deliveries, or at once when it cannot be decoded).
resource "azurerm_storage_queue" "queue" {
  for_each = toset(concat(local.queue_names, local.poison_names))

  name               = each.key
  storage_account_id = azurerm_storage_account.storage.id
}
