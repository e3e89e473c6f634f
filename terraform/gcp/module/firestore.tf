# Firestore (native mode), the project's (default) database; delivery claims
# and test history expire through TTL policies on expires_at.

resource "google_firestore_database" "db" {
  # No point-in-time recovery (as deploy.sh): run state is short-lived (claims expire by TTL, runs are kept days) and PITR bills storage for 7 days of versions.
  project     = var.project
  name        = "(default)"
  location_id = var.region
  type        = "FIRESTORE_NATIVE"
  depends_on  = [google_project_service.api]
}

resource "google_firestore_field" "deliveries_ttl" {
  project    = var.project
  database   = google_firestore_database.db.name
  collection = "${local.prefix}_deliveries"
  field      = "expires_at"

  ttl_config {}
}

resource "google_firestore_field" "history_ttl" {
  project    = var.project
  database   = google_firestore_database.db.name
  collection = "${local.prefix}_history"
  field      = "expires_at"

  ttl_config {}
}
