output "intake_url" {
  description = "The intake's URL: the GitHub App's webhook is <intake_url>/webhooks/github, runs are POSTed to <intake_url>/runs."
  value       = google_cloud_run_v2_service.intake.uri
}

output "handlers_url" {
  description = "The private handlers service's URL: Pub/Sub pushes to <handlers_url>/queues/<trigger|collect|report> with ID tokens for <handlers_url>/queues."
  value       = local.handlers_url
}

output "bucket" {
  description = "The report/log bucket."
  value       = google_storage_bucket.bucket.name
}

output "topics" {
  description = "The queue topics (requests, shards, results, reports)."
  value       = { for q, t in google_pubsub_topic.queue : q => t.name }
}

output "dead_letter_subscriptions" {
  description = "Where dead letters wait (7 days): pull from these to inspect and replay."
  value       = { for q, s in google_pubsub_subscription.dlq : q => s.name }
}

output "service_accounts" {
  description = "The service accounts (intake, workers, push, scheduler)."
  value = merge({ for k, sa in google_service_account.sa : k => sa.email }, {
    push      = google_service_account.push.email
    scheduler = google_service_account.scheduler.email
  })
}

output "secret_ids" {
  description = "The Secret Manager secrets to add versions to."
  value       = [for s in google_secret_manager_secret.secret : s.secret_id]
}
