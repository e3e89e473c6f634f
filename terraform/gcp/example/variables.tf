variable "project" {
  description = "Project id."
  type        = string
}

variable "region" {
  description = "Region of Cloud Run, Firestore and the bucket."
  type        = string
  default     = "us-central1"
}

variable "image" {
  description = "The host image built with FEATURES=gcp."
  type        = string
}

variable "worker_image" {
  description = "The worker image (host plus your toolchain); null: image."
  type        = string
  default     = null
}

variable "workers" {
  description = "Worker pool instances pulling shards (manual; 0: none, nothing pulls shards)."
  type        = number
  default     = 1
}

variable "github_app_id" {
  description = "The GitHub App's id."
  type        = string
}

variable "schedule" {
  description = "Cron of a nightly run; null: none."
  type        = string
  default     = null
}

variable "schedule_repo" {
  description = "owner/name of the nightly run."
  type        = string
  default     = null
}
