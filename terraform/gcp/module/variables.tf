# The module's inputs mirror gcp-cloudrun/deploy.sh's settings (same
# defaults). The secret VALUES are not inputs: the module creates the three
# Secret Manager secrets and you add their versions with gcloud, so no
# secret is in the plan (see ../example/README.md).

variable "project" {
  description = "Project id (deploy.sh: PROJECT)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project))
    error_message = "project: a project id, 6-30 lowercase letters, digits and hyphens."
  }
}

variable "region" {
  description = "Cloud Run, Firestore and bucket region (deploy.sh: REGION)."
  type        = string
  default     = "us-central1"
  nullable    = false
}

variable "image" {
  description = "The host image (Dockerfile, built with FEATURES=gcp) (deploy.sh: IMAGE)."
  type        = string
  nullable    = false

  validation {
    condition     = length(trimspace(var.image)) > 0 && !can(regex("\\s", var.image))
    error_message = "image must be an image reference without spaces."
  }
}

variable "worker_image" {
  description = "The worker image: the host plus your test toolchain; null: image (deploy.sh: WORKER_IMAGE)."
  type        = string
  default     = null
}

variable "bucket" {
  description = "Report/log bucket; null: <project>-testexec (deploy.sh: BUCKET)."
  type        = string
  default     = null
}

variable "workers" {
  description = "Worker pool instances pulling shards (manual: the pool does not scale itself); 0 when idle costs nothing (deploy.sh: WORKERS)."
  type        = number
  default     = 1
  nullable    = false

  validation {
    condition     = var.workers >= 0 && floor(var.workers) == var.workers
    error_message = "workers: a whole number, 0 or more."
  }
}

variable "github_app_id" {
  description = "The GitHub App's id (deploy.sh: GITHUB_APP_ID)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[0-9]+$", var.github_app_id))
    error_message = "github_app_id is the App's numeric id."
  }
}

variable "schedule" {
  description = "Cron for a nightly run of schedule_repo; null: none (deploy.sh: SCHEDULE)."
  type        = string
  default     = null
}

variable "schedule_repo" {
  description = "owner/name the schedule runs (deploy.sh: SCHEDULE_REPO)."
  type        = string
  default     = null

  validation {
    condition     = var.schedule_repo == null || can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.schedule_repo))
    error_message = "schedule_repo: owner/name."
  }
}
