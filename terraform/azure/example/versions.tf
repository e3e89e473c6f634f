terraform {
  required_version = ">= 1.5.0"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 4.77"
    }
  }

  # State holds no secret value (the secrets stay in Key Vault; the apps get
  # references), but it names every resource: keep it in a storage account
  # only the deployers can read. Fill in and uncomment, or pass the settings
  # with `terraform init -backend-config=...`.
  # backend "azurerm" {
  #   resource_group_name  = "tfstate"
  #   storage_account_name = "tfstate1234"
  #   container_name       = "tfstate"
  #   key                  = "testexec.tfstate"
  #   use_azuread_auth     = true
  # }
}

provider "azurerm" {
  features {}

  subscription_id = var.subscription_id

  # The module disables shared-key access on its storage account: whatever
  # the provider still does on the storage data plane must use Entra ID.
  storage_use_azuread = true
}
