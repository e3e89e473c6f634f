# The APIs the stack uses (deploy.sh: services enable). Left enabled on
# destroy: other things in the project may use them.
resource "google_project_service" "api" {
  for_each = toset([
    "run.googleapis.com", "pubsub.googleapis.com", "firestore.googleapis.com",
    "storage.googleapis.com", "secretmanager.googleapis.com", "cloudscheduler.googleapis.com",
    "iam.googleapis.com", "iamcredentials.googleapis.com",
  ])

  project            = var.project
  service            = each.key
  disable_on_destroy = false
}
