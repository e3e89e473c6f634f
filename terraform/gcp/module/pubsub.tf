# Per queue: a topic, a pull subscription (600 s ack deadline, the worker
# renews its lease) with a dead-letter policy after 5 delivery attempts, and
# a dead-letter topic with a subscription (kept 7 days there, the default).

resource "google_pubsub_topic" "queue" {
  #checkov:skip=CKV_GCP_83: Google-managed encryption; a CMEK needs a KMS key that bills every month, idle or not, for short-lived messages.
  for_each = toset(local.queues)

  project    = var.project
  name       = "${local.prefix}-${each.key}"
  depends_on = [google_project_service.api]
}

resource "google_pubsub_topic" "dlq" {
  #checkov:skip=CKV_GCP_83: same reason as the queue topics.
  for_each = toset(local.queues)

  project    = var.project
  name       = "${local.prefix}-${each.key}-dlq"
  depends_on = [google_project_service.api]
}

resource "google_pubsub_subscription" "dlq" {
  for_each = toset(local.queues)

  project              = var.project
  name                 = "${local.prefix}-${each.key}-dlq-sub"
  topic                = google_pubsub_topic.dlq[each.key].id
  ack_deadline_seconds = 60
}

resource "google_pubsub_subscription" "queue" {
  for_each = toset(local.queues)

  project              = var.project
  name                 = "${local.prefix}-${each.key}-sub"
  topic                = google_pubsub_topic.queue[each.key].id
  ack_deadline_seconds = 600

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dlq[each.key].id
    max_delivery_attempts = 5
  }
}

# Pub/Sub's agent must publish to the dead-letter topic and acknowledge on
# the source subscription.
resource "google_pubsub_topic_iam_member" "dlq_agent" {
  for_each = toset(local.queues)

  project = var.project
  topic   = google_pubsub_topic.dlq[each.key].name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "queue_agent" {
  for_each = toset(local.queues)

  project      = var.project
  subscription = google_pubsub_subscription.queue[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "queue_workers" {
  for_each = toset(local.queues)

  project      = var.project
  subscription = google_pubsub_subscription.queue[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = google_service_account.sa["workers"].member
}

resource "google_pubsub_topic_iam_member" "queue_workers" {
  for_each = toset(local.queues)

  project = var.project
  topic   = google_pubsub_topic.queue[each.key].name
  role    = "roles/pubsub.publisher"
  member  = google_service_account.sa["workers"].member
}

resource "google_pubsub_subscription_iam_member" "dlq_workers" {
  for_each = toset(local.queues)

  project      = var.project
  subscription = google_pubsub_subscription.dlq[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = google_service_account.sa["workers"].member
}

# The intake only queues run requests.
resource "google_pubsub_topic_iam_member" "requests_intake" {
  project = var.project
  topic   = google_pubsub_topic.queue["requests"].name
  role    = "roles/pubsub.publisher"
  member  = google_service_account.sa["intake"].member
}
