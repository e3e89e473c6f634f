# Per queue: a topic, a subscription (600 s ack deadline) with a dead-letter
# policy after 5 delivery attempts, and a dead-letter topic with a
# subscription (kept 7 days there, the default). requests, results and
# reports are pushed to the handlers service with an OIDC token of the push
# account (the handler's answer acks; 600 s is the most Pub/Sub allows);
# shards are pulled by the worker pool, which renews its lease (a shard may
# run 30 min).

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

  # Push queues only (local.push_handlers); shards stay a pull subscription.
  dynamic "push_config" {
    for_each = contains(keys(local.push_handlers), each.key) ? [local.push_handlers[each.key]] : []
    content {
      push_endpoint = "${local.handlers_url}/queues/${push_config.value}"
      oidc_token {
        service_account_email = google_service_account.push.email
        audience              = local.push_audience
      }
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.handlers_push, google_service_account_iam_member.push_token_creator]
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

# The workers pull the shards; nobody pulls a push subscription.
resource "google_pubsub_subscription_iam_member" "queue_workers" {
  for_each = toset(local.pull_queues)

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
