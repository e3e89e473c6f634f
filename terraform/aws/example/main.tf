# An example root: testexec in one account and region, with the module's
# defaults (those of template.yaml) for sizing, retention and links.
# See README.md in this directory.

module "testexec" {
  source = "../module"

  name                          = var.name
  architecture                  = var.architecture
  lambda_zip_dir                = abspath(var.lambda_zip_dir)
  execute_image_uri             = var.execute_image_uri
  webhook_secret_arn            = var.webhook_secret_arn
  github_app_id                 = var.github_app_id
  github_private_key_secret_arn = var.github_private_key_secret_arn
  allowed_repos                 = var.allowed_repos
  nightly                       = var.nightly
  alarm_topic_arn               = var.alarm_topic_arn

  # The template's defaults, spelled out as the knobs most teams turn.
  execute_memory_size       = 2048
  execute_ephemeral_storage = 2048
  execute_max_concurrency   = 20
  log_level                 = "INFO"
  run_retention_days        = 30
  log_retention_days        = 30
  link_ttl_seconds          = 86400
}
