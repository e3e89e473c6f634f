# Terraform 1.5 or newer. The azurerm provider 4.x, at least 4.77: the KEDA
# scale rules of the handler jobs authenticate with the worker identity
# (`identity_id` on job scale rules, 4.73), and the storage table is created
# through Resource Manager with `storage_account_id` (4.77), so nothing needs
# the account's shared key, which this module disables. `terraform init`
# records the exact provider in the root's .terraform.lock.hcl: commit it.
terraform {
  required_version = ">= 1.5.0"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 4.77"
    }
  }
}
