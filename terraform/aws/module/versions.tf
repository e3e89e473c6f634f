# Terraform 1.5 for `check`-free preconditions and optional object attributes;
# the AWS provider 6.x for logging_config on functions and scaling_config on
# event source mappings (both older than 6.0, but 6.x is what this module is
# validated against). `terraform init` records the exact provider version in
# the root's .terraform.lock.hcl: commit that file.
terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }
}
