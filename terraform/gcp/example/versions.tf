terraform {
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.47"
    }
  }

  # Fill in and uncomment, or pass with `terraform init -backend-config=...`.
  # With a schedule, state holds the API token (../module/scheduler.tf).
  # backend "gcs" {
  #   bucket = "my-terraform-state"
  #   prefix = "testexec"
  # }
}

provider "google" {
  project = var.project
  region  = var.region
}
