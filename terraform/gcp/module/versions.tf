# Terraform 1.5 or newer. The google provider 6.x, at least 6.47: the Cloud
# Run worker pool resource (6.37) with a manual instance count that may be 0
# (fixed in 6.47). `terraform init` records the exact provider in the root's
# .terraform.lock.hcl: commit it.
terraform {
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.47"
    }
  }
}
