# Reports, logs, snapshots, timing history: uniform access, never public.

resource "google_storage_bucket" "bucket" {
  #checkov:skip=CKV_GCP_62: access logs need a second bucket that bills storage; the handlers log every object they write, with run and shard ids, to Cloud Logging.
  #checkov:skip=CKV_GCP_78: run artefacts are written once under unique keys; versioning would keep every deleted or overwritten object and bill for it.
  project                     = var.project
  name                        = local.bucket
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  depends_on                  = [google_project_service.api]
}

resource "google_storage_bucket_iam_member" "workers" {
  bucket = google_storage_bucket.bucket.name
  role   = "roles/storage.objectAdmin"
  member = google_service_account.sa["workers"].member
}

resource "google_storage_bucket_iam_member" "intake" {
  bucket = google_storage_bucket.bucket.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.sa["intake"].member
}
