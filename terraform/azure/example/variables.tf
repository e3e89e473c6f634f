variable "subscription_id" {
  description = "Subscription to deploy into (azurerm 4.x requires it; or set ARM_SUBSCRIPTION_ID and leave this null)."
  type        = string
  default     = null
}

variable "resource_group_name" {
  description = "Existing resource group holding the Key Vault; everything is created in it."
  type        = string
}

variable "location" {
  description = "Region; null: the resource group's."
  type        = string
  default     = null
}

variable "prefix" {
  description = "Prefix of resource names: 3-11 lowercase letters and digits."
  type        = string
  default     = "testexec"
}

variable "image" {
  description = "The testexec image built with FEATURES=azure, e.g. myregistry.azurecr.io/testexec:<tag>."
  type        = string
}

variable "execute_image" {
  description = "The execute image: testexec plus your suites' toolchain, e.g. myregistry.azurecr.io/testexec-execute:<tag>."
  type        = string
}

variable "key_vault_name" {
  description = "Key Vault holding github-app-private-key, github-webhook-secret and api-token."
  type        = string
}

variable "github_app_id" {
  description = "The GitHub App id."
  type        = string
}

variable "storage_account_name" {
  description = "Null: derived from the prefix and the resource group. Set it to adopt an account the Bicep created."
  type        = string
  default     = null
}
