output "intake_url" {
  description = "The intake's URL."
  value       = module.testexec.intake_url
}

output "webhook_url" {
  description = "Payload URL for the GitHub App's webhook."
  value       = "${module.testexec.intake_url}/webhooks/github"
}

output "handlers_url" {
  description = "The private handlers service (Pub/Sub pushes to <handlers_url>/queues/<handler>)."
  value       = module.testexec.handlers_url
}

output "bucket" {
  description = "The report/log bucket."
  value       = module.testexec.bucket
}

output "dead_letter_subscriptions" {
  description = "Dead-letter subscriptions by queue."
  value       = module.testexec.dead_letter_subscriptions
}
