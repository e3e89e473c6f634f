# The intake: webhooks and POST /runs, answered at once (queued); no
# workers (--jobs 0), so it scales to zero between requests. Public: GitHub
# cannot authenticate to Google; the app checks the webhook signature and
# the bearer token of POST /runs.

resource "google_cloud_run_v2_service" "intake" {
  project             = var.project
  name                = "testexec-intake"
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = false

  template {
    service_account                  = google_service_account.sa["intake"].email
    timeout                          = "60s"
    max_instance_request_concurrency = 40

    scaling {
      min_instance_count = 0
      max_instance_count = 10
    }

    containers {
      image = var.image
      args  = ["serve", "--jobs", "0"]

      dynamic "env" {
        for_each = local.env
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = local.secrets
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.secret[env.value].secret_id
              version = "latest"
            }
          }
        }
      }
    }
  }

  depends_on = [google_secret_manager_secret_iam_member.accessor, google_project_iam_member.datastore_user]
}

# --allow-unauthenticated
resource "google_cloud_run_v2_service_iam_member" "intake_public" {
  # Public on purpose: the intake is the front door for GitHub webhooks (HMAC-signed, verified in the app) and POST /runs (bearer token); nothing else is public.
  project  = var.project
  location = var.region
  name     = google_cloud_run_v2_service.intake.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# The workers: a worker pool (no ingress) pulling the four queues, renewing
# each lease every 200 s, so a shard of any length runs once. Scale with
# var.workers (manual instance count; 0 when idle costs nothing).
resource "google_cloud_run_v2_worker_pool" "workers" {
  project             = var.project
  name                = "testexec-workers"
  location            = var.region
  launch_stage        = "BETA"
  deletion_protection = false

  scaling {
    scaling_mode          = "MANUAL"
    manual_instance_count = var.workers
  }

  template {
    service_account = google_service_account.sa["workers"].email

    containers {
      image = local.worker_image
      args  = ["serve", "--jobs", "2"]

      resources {
        limits = {
          cpu    = "2"
          memory = "4Gi"
        }
      }

      dynamic "env" {
        for_each = merge(local.env, local.worker_env)
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = local.secrets
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.secret[env.value].secret_id
              version = "latest"
            }
          }
        }
      }
    }
  }

  depends_on = [
    google_secret_manager_secret_iam_member.accessor,
    google_project_iam_member.datastore_user,
    google_pubsub_subscription_iam_member.queue_workers,
  ]
}
