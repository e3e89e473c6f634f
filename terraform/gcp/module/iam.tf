# One least-privilege account per role: intake (the public front door),
# workers (the handlers service, the worker pool, the sweep job), push (the
# identity of the push subscriptions: may invoke the handlers service,
# nothing else) and scheduler (may start the sweep job, nothing else). Grants
# on single resources where the service allows it (bucket, topics,
# subscriptions, secrets, services, jobs); Firestore has no per-database
# IAM, so datastore.user is on the project.

resource "google_service_account" "sa" {
  for_each = toset(["intake", "workers"])

  project      = var.project
  account_id   = "testexec-${each.key}"
  display_name = "testexec ${each.key}"
  description  = "testexec ${each.key}"
  depends_on   = [google_project_service.api]
}

resource "google_project_iam_member" "datastore_user" {
  for_each = google_service_account.sa

  project = var.project
  role    = "roles/datastore.user"
  member  = each.value.member
}

# Report links are V4 URLs signed through IAM signBlob as the worker itself.
resource "google_service_account_iam_member" "workers_sign_self" {
  service_account_id = google_service_account.sa["workers"].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = google_service_account.sa["workers"].member
}

resource "google_service_account" "push" {
  project      = var.project
  account_id   = "testexec-push"
  display_name = "testexec push"
  description  = "testexec push"
  depends_on   = [google_project_service.api]
}

resource "google_service_account" "scheduler" {
  project      = var.project
  account_id   = "testexec-scheduler"
  display_name = "testexec scheduler"
  description  = "testexec scheduler"
  depends_on   = [google_project_service.api]
}

# Pub/Sub's agent mints the push subscriptions' OIDC tokens as the push
# account: projects created before 8 April 2021 need this grant; newer ones
# have it through the agent's own role, where it is harmless.
resource "google_service_account_iam_member" "push_token_creator" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}
