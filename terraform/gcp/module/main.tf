# testexec on Google Cloud: the stack of gcp-cloudrun/deploy.sh, resource for
# resource. One file per concern: services.tf (APIs), iam.tf (service
# accounts and their grants), firestore.tf, storage.tf, pubsub.tf,
# secrets.tf, run.tf (the intake and handlers services, the worker pool, the
# sweep job), scheduler.tf (the sweep's schedule, the optional nightly run).

data "google_project" "project" {
  project_id = var.project
}

locals {
  prefix       = "testexec"
  queues       = ["requests", "shards", "results", "reports"]
  bucket       = coalesce(var.bucket, "${var.project}-testexec")
  worker_image = coalesce(var.worker_image, var.image)

  # Pub/Sub's own agent forwards dead letters and mints the push tokens.
  pubsub_agent = "serviceAccount:service-${data.google_project.project.number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  # The handlers' URL, known before the service exists (it is in its own
  # environment): Cloud Run's deterministic
  # https://SERVICE-PROJECT_NUMBER.REGION.run.app form. Pushes go to
  # <handlers_url>/queues/<handler>, with ID tokens for push_audience.
  handlers_url  = "https://testexec-handlers-${data.google_project.project.number}.${var.region}.run.app"
  push_audience = "${local.handlers_url}/queues"

  # The queues Pub/Sub pushes to the handlers (queue => POST /queues/<handler>);
  # shards are pulled by the worker pool (a shard outlives any push deadline).
  push_handlers = {
    requests = "trigger"
    results  = "collect"
    reports  = "report"
  }
  pull_queues = [for q in local.queues : q if !contains(keys(local.push_handlers), q)]

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
  # The worker pool renews its shard leases every third of this.
  worker_env = {
    TESTEXEC_PUBSUB_VISIBILITY_SECS = "600"
  }
  # The handlers accept only pushes carrying an ID token for this audience
  # from the push account.
  handlers_env = {
    TESTEXEC_GCP_PUSH_AUDIENCE        = local.push_audience
    TESTEXEC_GCP_PUSH_SERVICE_ACCOUNT = google_service_account.push.email
  }

  # Environment variable => Secret Manager secret, resolved by Cloud Run.
  secrets = {
    TESTEXEC_API_TOKEN          = "testexec-api-token"
    TESTEXEC_WEBHOOK_SECRET     = "testexec-webhook-secret"
    TESTEXEC_GITHUB_PRIVATE_KEY = "testexec-github-key"
  }
}
