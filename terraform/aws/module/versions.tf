# Terraform 1.5 or newer (optional object attributes with defaults, used by
# var.nightly, need 1.3). The AWS provider 6.x: the version this module is
# written and checked against; logging_config on functions and
# scaling_config on event source mappings need at least 5.26. `terraform
# init` records the exact provider in the root's .terraform.lock.hcl:
# commit that file.
terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }
}
