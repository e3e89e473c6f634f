# The three secrets, without their values: add a version to each with
# `gcloud secrets versions add` (../example/README.md), so no secret value
# is ever in Terraform's plan or state. Both accounts may read them.

resource "google_secret_manager_secret" "secret" {
  # Google-managed encryption, as deploy.sh: a CMEK bills a KMS key every month, idle or not.
  for_each = toset(values(local.secrets))

  project   = var.project
  secret_id = each.key

  replication {
    auto {}
  }

  depends_on = [google_project_service.api]
}

resource "google_secret_manager_secret_iam_member" "accessor" {
  for_each = { for pair in setproduct(values(local.secrets), ["intake", "workers"]) : "${pair[0]}/${pair[1]}" => pair }

  project   = var.project
  secret_id = google_secret_manager_secret.secret[each.value[0]].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.sa[each.value[1]].member
}
