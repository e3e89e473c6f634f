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

# The handlers: trigger, collect and report, fed by Pub/Sub push
# (POST /queues/<queue>). Private: only the push account may invoke it
# (Cloud Run checks its ID token), and the app checks the token's audience
# and sender again (TESTEXEC_GCP_PUSH_*). Scales to zero; a request may take
# up to the push subscriptions' 600 s ack deadline. The custom audience lets
# Cloud Run accept the tokens' /queues audience whatever URL form it routes.
resource "google_cloud_run_v2_service" "handlers" {
  project             = var.project
  name                = "testexec-handlers"
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_ALL"
  custom_audiences    = [local.push_audience]
  deletion_protection = false

  template {
    service_account                  = google_service_account.sa["workers"].email
    timeout                          = "600s"
    max_instance_request_concurrency = 10

    scaling {
      min_instance_count = 0
      max_instance_count = 10
    }

    containers {
      image = var.image
      args  = ["serve", "--jobs", "0", "--queue-push"]

      resources {
        limits = {
          cpu    = "1"
          memory = "1Gi"
        }
      }

      dynamic "env" {
        for_each = merge(local.env, local.handlers_env)
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

# --no-allow-unauthenticated: the push account is the only invoker.
resource "google_cloud_run_v2_service_iam_member" "handlers_push" {
  project  = var.project
  location = var.region
  name     = google_cloud_run_v2_service.handlers.name
  role     = "roles/run.invoker"
  member   = google_service_account.push.member
}

# The workers: a worker pool (no ingress) running `testexec worker --queue
# execute`: pulls shards only, renewing each lease every 200 s, so a shard
# of any length runs once. It does not scale itself from the queue's depth
# (no Pub/Sub autoscaler for worker pools here): set var.workers, the manual
# instance count; 0 when idle costs nothing.
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
      args  = ["worker", "--queue", "execute"]

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

# The sweep: one pass (`testexec sweep`: runs past their deadline are
# finalised), started every 5 minutes by Cloud Scheduler (scheduler.tf).
resource "google_cloud_run_v2_job" "sweep" {
  project             = var.project
  name                = "testexec-sweep"
  location            = var.region
  deletion_protection = false

  template {
    task_count = 1

    template {
      service_account = google_service_account.sa["workers"].email
      timeout         = "300s"
      max_retries     = 0

      containers {
        image = var.image
        args  = ["sweep"]

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
  }

  depends_on = [google_secret_manager_secret_iam_member.accessor, google_project_iam_member.datastore_user]
}

# The scheduler account may start the sweep job and nothing else:
# roles/run.invoker on this job is run.jobs.run without overrides (it cannot
# change the job's args or env, as roles/run.developer could, nor deploy).
resource "google_cloud_run_v2_job_iam_member" "sweep_scheduler" {
  project  = var.project
  location = var.region
  name     = google_cloud_run_v2_job.sweep.name
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member
}
