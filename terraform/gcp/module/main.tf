# testexec on Google Cloud: the stack of gcp-cloudrun/deploy.sh, resource for
# resource. One file per concern: services.tf (APIs), iam.tf (service
# accounts and their grants), firestore.tf, storage.tf, pubsub.tf,
# secrets.tf, run.tf (the intake service, the worker pool), scheduler.tf.

data "google_project" "project" {
  project_id = var.project
}

locals {
  prefix       = "testexec"
  queues       = ["requests", "shards", "results", "reports"]
  bucket       = coalesce(var.bucket, "${var.project}-testexec")
  worker_image = coalesce(var.worker_image, var.image)

  # Pub/Sub's own agent forwards dead letters.
  pubsub_agent = "serviceAccount:service-${data.google_project.project.number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  # What every container reads (JSON lines: Cloud Logging makes structured
  # entries of them).
  env = {
    TESTEXEC_BACKEND          = "gcp"
    GOOGLE_CLOUD_PROJECT      = var.project
    TESTEXEC_GCS_BUCKET       = google_storage_bucket.bucket.name
    TESTEXEC_LOG_FORMAT       = "json"
    RUST_LOG                  = "info"
    TESTEXEC_PUBSUB_PREFIX    = local.prefix
    TESTEXEC_FIRESTORE_PREFIX = "${local.prefix}_"
    TESTEXEC_GITHUB_APP_ID    = var.github_app_id
  }
  worker_env = {
    TESTEXEC_BIND                   = "127.0.0.1"
    TESTEXEC_PUBSUB_VISIBILITY_SECS = "600"
  }

  # Environment variable => Secret Manager secret, resolved by Cloud Run.
  secrets = {
    TESTEXEC_API_TOKEN          = "testexec-api-token"
    TESTEXEC_WEBHOOK_SECRET     = "testexec-webhook-secret"
    TESTEXEC_GITHUB_PRIVATE_KEY = "testexec-github-key"
  }
}
