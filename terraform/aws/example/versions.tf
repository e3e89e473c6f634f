terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }

  # State holds the functions' environment, including the webhook secret and
  # the GitHub App key (terraform/aws/module/main.tf says why): keep it in an
  # encrypted bucket only the deployers can read. Fill in and uncomment, or
  # pass the settings with `terraform init -backend-config=...`.
  # backend "s3" {
  #   bucket       = "my-terraform-state"
  #   key          = "testexec/terraform.tfstate"
  #   region       = "us-east-1"
  #   encrypt      = true
  #   use_lockfile = true
  # }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      project = "testexec"
    }
  }
}
