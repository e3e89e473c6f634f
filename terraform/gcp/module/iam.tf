# One least-privilege account per role: intake (the public front door) and
# workers (the four handlers). Grants on single resources where the service
# allows it (bucket, topics, subscriptions, secrets); Firestore has no
# per-database IAM, so datastore.user is on the project.

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
