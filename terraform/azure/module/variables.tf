# The module's inputs mirror azure/main.bicep's parameters (same defaults,
# same bounds). `resource_group_name` replaces the Bicep's deployment scope
# (`az deployment group create -g`); `storage_account_name` and `tags` are
# Terraform-only (see their descriptions).

variable "resource_group_name" {
  description = "Existing resource group to deploy into (the Bicep's `-g`). The Key Vault named by key_vault_name must be in it too."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[-\\w._()]{1,90}$", var.resource_group_name)) && !endswith(var.resource_group_name, ".")
    error_message = "resource_group_name: 1-90 letters, digits, underscores, hyphens, periods and parentheses, not ending with a period."
  }
}

variable "location" {
  description = "Region of every resource (Bicep: location). Null: the resource group's region, as the Bicep's default."
  type        = string
  default     = null
}

variable "prefix" {
  description = "Prefix of resource names: lowercase letters and digits, 3-11 characters (Bicep: prefix). Names: <prefix>-intake, <prefix>-trigger ..., queues <prefix>-requests ..., the storage account <prefix><13 hex>."
  type        = string
  default     = "testexec"
  nullable    = false

  validation {
    # 11 characters keep <prefix> + 13 hash characters within the storage
    # account name's 24; lowercase letters and digits are all that name allows.
    condition     = can(regex("^[a-z0-9]{3,11}$", var.prefix))
    error_message = "prefix: 3-11 lowercase letters and digits."
  }
}

variable "image" {
  description = "The testexec image built with `--features azure` (serve and worker), e.g. myregistry.azurecr.io/testexec:2026-12-06 (Bicep: image)."
  type        = string
  nullable    = false

  validation {
    condition     = length(trimspace(var.image)) > 0 && !can(regex("\\s", var.image))
    error_message = "image must be an image reference without spaces: <registry>/<repository>:<tag> or @sha256:<digest>."
  }
}

variable "execute_image" {
  description = "The image that runs shard jobs: testexec plus the toolchain your tests need (see functions/execute/Dockerfile) (Bicep: executeImage)."
  type        = string
  nullable    = false

  validation {
    condition     = length(trimspace(var.execute_image)) > 0 && !can(regex("\\s", var.execute_image))
    error_message = "execute_image must be an image reference without spaces: <registry>/<repository>:<tag> or @sha256:<digest>."
  }
}

variable "key_vault_name" {
  description = "Key Vault (RBAC authorization, same resource group) holding the secrets `github-webhook-secret`, `github-app-private-key` and `api-token` (Bicep: keyVaultName)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$", var.key_vault_name))
    error_message = "key_vault_name: 3-24 letters, digits and hyphens, starting with a letter and ending with a letter or digit."
  }
}

variable "github_app_id" {
  description = "The GitHub App id (not a secret) (Bicep: githubAppId)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[0-9]+$", var.github_app_id))
    error_message = "github_app_id is the App's numeric id."
  }
}

variable "visibility_seconds" {
  description = "Seconds a worker holds a message before it comes back (the worker renews it while a shard runs) (Bicep: visibilitySeconds)."
  type        = number
  default     = 300
  nullable    = false

  validation {
    # Azure Storage Queues: a visibility timeout of at most 7 days.
    condition     = var.visibility_seconds >= 1 && var.visibility_seconds <= 604800 && floor(var.visibility_seconds) == var.visibility_seconds
    error_message = "visibility_seconds: a whole number of seconds from 1 to 604800 (7 days)."
  }
}

variable "max_dequeues" {
  description = "Deliveries before a message moves to its poison queue (Bicep: maxDequeues)."
  type        = number
  default     = 5
  nullable    = false

  validation {
    condition     = var.max_dequeues >= 1 && floor(var.max_dequeues) == var.max_dequeues
    error_message = "max_dequeues: a whole number, at least 1."
  }
}

variable "shard_timeout_seconds" {
  description = "Longest a shard job may run, in seconds (Container Apps job replica timeout) (Bicep: shardTimeoutSeconds)."
  type        = number
  default     = 3600
  nullable    = false

  validation {
    condition     = var.shard_timeout_seconds >= 1 && floor(var.shard_timeout_seconds) == var.shard_timeout_seconds
    error_message = "shard_timeout_seconds: a whole number of seconds, at least 1."
  }
}

variable "storage_account_name" {
  description = "Terraform-only. Name of the storage account; null: <prefix> + the first 13 hex digits of sha1(resource group id). The Bicep uses <prefix> + uniqueString(resource group id), a hash Terraform cannot compute: set this to that name to manage an account the Bicep created."
  type        = string
  default     = null

  validation {
    condition     = var.storage_account_name == null || can(regex("^[a-z0-9]{3,24}$", var.storage_account_name))
    error_message = "storage_account_name: 3-24 lowercase letters and digits."
  }
}

variable "tags" {
  description = "Terraform-only. Tags on every resource that takes them (the Bicep sets none)."
  type        = map(string)
  default     = {}
  nullable    = false
}
