# The sweep, every 5 minutes: Cloud Scheduler runs the testexec-sweep job
# through the Cloud Run Admin API with an OAuth token of the scheduler
# account (roles/run.invoker on that job only, run.tf). 8,640 runs of a few
# seconds a month: within Cloud Run's free tier.
resource "google_cloud_scheduler_job" "sweep" {
  project   = var.project
  region    = var.region
  name      = "testexec-sweep"
  schedule  = "*/5 * * * *"
  time_zone = "Etc/UTC"

  http_target {
    uri         = "https://run.googleapis.com/v2/projects/${var.project}/locations/${var.region}/jobs/${google_cloud_run_v2_job.sweep.name}:run"
    http_method = "POST"
    oauth_token {
      service_account_email = google_service_account.scheduler.email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }

  depends_on = [google_cloud_run_v2_job_iam_member.sweep_scheduler]
}

# A nightly run, if asked for: POST /runs with the API token (deploy.sh:
# SCHEDULE). Cloud Scheduler sends the token as a plain header, so Terraform
# reads the secret's latest version at plan time and keeps it in state
# (marked sensitive): with a schedule, keep state in an access-controlled
# backend. Without one, nothing reads the secret.

data "google_secret_manager_secret_version" "api_token" {
  count   = var.schedule == null ? 0 : 1
  project = var.project
  secret  = google_secret_manager_secret.secret["testexec-api-token"].secret_id
}

resource "google_cloud_scheduler_job" "nightly" {
  count = var.schedule == null ? 0 : 1

  project  = var.project
  region   = var.region
  name     = "testexec-nightly"
  schedule = var.schedule

  http_target {
    uri         = "${google_cloud_run_v2_service.intake.uri}/runs"
    http_method = "POST"
    headers = {
      "Content-Type"  = "application/json"
      "Authorization" = "Bearer ${data.google_secret_manager_secret_version.api_token[0].secret_data}"
    }
    body = base64encode(jsonencode({ repo = var.schedule_repo, ref = "main" }))
  }

  lifecycle {
    precondition {
      condition     = var.schedule_repo != null
      error_message = "schedule needs schedule_repo (owner/name)."
    }
  }
}
