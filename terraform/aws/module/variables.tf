# The module's inputs mirror template.yaml's Parameters (same defaults, same
# bounds); the SAM-only ones (the stack name, the build's DockerBuildArgs) are
# replaced by `name`, `lambda_zip_dir`, `execute_image_uri` and `tags`. Empty
# strings in the template (its "not set") are `null` here.

variable "name" {
  description = "Prefix of every resource name (the template's stack name): functions <name>-trigger ..., log groups /aws/lambda/<name>-<function>, queues, table, roles. IAM role names are account-wide: use a different name per region."
  type        = string
  default     = "testexec"
  nullable    = false

  validation {
    # Lowercase because the bucket name starts with it; 32 characters keep
    # <name>-execute within Lambda's 64 and the bucket prefix within S3's 37.
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.name))
    error_message = "name: 2-32 characters, lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "architecture" {
  description = "CPU architecture of all four functions (template: Architecture). The zips (and the execute image) must be built for it: cargo lambda build --arm64 or --x86-64."
  type        = string
  default     = "arm64"
  nullable    = false

  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture must be arm64 or x86_64."
  }
}

variable "lambda_zip_dir" {
  description = "Directory holding <function>/bootstrap.zip for trigger, collect and report (and execute when execute_image_uri is null): target/lambda after `cargo lambda build --release --output-format zip`, or an unpacked lambda-zips-<arch> artifact of the release workflow."
  type        = string
  nullable    = false

  validation {
    # Checked at plan time, so a missing build fails before anything changes.
    condition     = alltrue([for f in ["trigger", "collect", "report"] : fileexists("${var.lambda_zip_dir}/${f}/bootstrap.zip")])
    error_message = "lambda_zip_dir must contain trigger/bootstrap.zip, collect/bootstrap.zip and report/bootstrap.zip (cargo lambda build --release --output-format zip)."
  }
}

variable "execute_image_uri" {
  description = "ECR image URI (tag or digest) of the execute function, built from functions/execute/Dockerfile with your suites' toolchain as BASE_IMAGE: how template.yaml deploys execute. Null deploys execute/bootstrap.zip on provided.al2023 instead, which has no test toolchain (the same as the Dockerfile's default BASE_IMAGE)."
  type        = string
  default     = null

  validation {
    # Lambda only pulls images from ECR in the same account and region.
    condition     = var.execute_image_uri == null || can(regex("^[0-9]{12}\\.dkr\\.ecr\\.[a-z0-9-]+\\.amazonaws\\.com(\\.cn)?/[a-z0-9._/-]+(:[A-Za-z0-9._-]+|@sha256:[a-f0-9]{64})$", var.execute_image_uri))
    error_message = "execute_image_uri must be an ECR image URI: <account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag> or @sha256:<digest>."
  }
}

variable "execute_memory_size" {
  description = "Memory (MB) of execute, which runs the test suites; Lambda scales CPU with memory (1769 MB = 1 vCPU). Template: ExecuteMemorySize."
  type        = number
  default     = 2048
  nullable    = false

  validation {
    condition     = var.execute_memory_size >= 512 && var.execute_memory_size <= 10240 && floor(var.execute_memory_size) == var.execute_memory_size
    error_message = "execute_memory_size must be a whole number of MB, 512-10240."
  }
}

variable "execute_ephemeral_storage" {
  description = "/tmp size (MB) of execute, which unpacks the source and the suite's output there. Template: ExecuteEphemeralStorage."
  type        = number
  default     = 2048
  nullable    = false

  validation {
    condition     = var.execute_ephemeral_storage >= 512 && var.execute_ephemeral_storage <= 10240 && floor(var.execute_ephemeral_storage) == var.execute_ephemeral_storage
    error_message = "execute_ephemeral_storage must be a whole number of MB, 512-10240."
  }
}

variable "execute_max_concurrency" {
  description = "Most shards executed at once: the shards queue's event source maximum concurrency. Template: ExecuteMaxConcurrency."
  type        = number
  default     = 20
  nullable    = false

  validation {
    # 2 is the least SQS event sources accept.
    condition     = var.execute_max_concurrency >= 2 && var.execute_max_concurrency <= 1000 && floor(var.execute_max_concurrency) == var.execute_max_concurrency
    error_message = "execute_max_concurrency must be a whole number, 2-1000."
  }
}

variable "log_level" {
  description = "Application log level of the functions (JSON logs). Template: LogLevel."
  type        = string
  default     = "INFO"
  nullable    = false

  validation {
    condition     = contains(["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"], var.log_level)
    error_message = "log_level must be one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL."
  }
}

variable "webhook_secret_arn" {
  description = "ARN of the Secrets Manager secret (plain SecretString) holding the GitHub webhook secret. Null = webhooks are refused (POST /runs and invocations still work). Template: WebhookSecretArn."
  type        = string
  default     = null

  validation {
    condition     = var.webhook_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+$", var.webhook_secret_arn))
    error_message = "webhook_secret_arn must be a Secrets Manager secret ARN (the full ARN, with its 6-character suffix)."
  }
}

variable "github_app_id" {
  description = "Numeric id of the GitHub App that reads sources and posts check runs. Null = no GitHub App. Template: GithubAppId."
  type        = string
  default     = null

  validation {
    condition     = var.github_app_id == null || can(regex("^[0-9]+$", var.github_app_id))
    error_message = "github_app_id must be the App's numeric id."
  }
}

variable "github_private_key_secret_arn" {
  description = "ARN of the Secrets Manager secret (plain SecretString, PEM) holding the GitHub App's private key. Template: GithubPrivateKeySecretArn."
  type        = string
  default     = null

  validation {
    condition     = var.github_private_key_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+$", var.github_private_key_secret_arn))
    error_message = "github_private_key_secret_arn must be a Secrets Manager secret ARN (the full ARN, with its 6-character suffix)."
  }
}

variable "allowed_repos" {
  description = "owner/name repositories allowed to start runs (webhooks and POST /runs). Empty allows every repository. Template: AllowedRepos (comma-separated there)."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for r in var.allowed_repos : can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", r))])
    error_message = "allowed_repos entries must be owner/name."
  }
}

variable "nightly" {
  description = "An optional scheduled run (template: NightlyRepo, NightlyRef, NightlySuite, NightlySchedule): repo owner/name, ref (default main), suite (null = the manifest's only suite), schedule (EventBridge expression, UTC). Null = no scheduled run."
  type = object({
    repo     = string
    ref      = optional(string, "main")
    suite    = optional(string)
    schedule = optional(string, "cron(0 3 * * ? *)")
  })
  default = null

  validation {
    # A conditional, not ||: before Terraform 1.12 both sides of || are
    # evaluated, and var.nightly.suite of a null object is an error.
    condition = var.nightly == null ? true : (
      can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.nightly.repo)) &&
      can(regex("^[A-Za-z0-9._/-]{1,255}$", var.nightly.ref)) &&
      (var.nightly.suite == null ? true : can(regex("^[A-Za-z0-9._-]{1,128}$", var.nightly.suite))) &&
      can(regex("^(cron|rate)\\(.+\\)$", var.nightly.schedule))
    )
    error_message = "nightly: repo must be owner/name, ref 1-255 of [A-Za-z0-9._/-], suite up to 128 of [A-Za-z0-9._-], schedule cron(...) or rate(...)."
  }
}

variable "run_retention_days" {
  description = "Days after which a run's objects (runs/ prefix: source, logs, JUnit, reports) expire from the bucket. Template: RunRetentionDays."
  type        = number
  default     = 30
  nullable    = false

  validation {
    condition     = var.run_retention_days >= 1 && var.run_retention_days <= 3650 && floor(var.run_retention_days) == var.run_retention_days
    error_message = "run_retention_days must be a whole number, 1-3650."
  }
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the functions' and the API's logs. Template: LogRetentionDays."
  type        = number
  default     = 30
  nullable    = false

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one CloudWatch Logs accepts: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653."
  }
}

variable "link_ttl_seconds" {
  description = "Lifetime of the presigned report links (S3 allows at most 7 days). Template: LinkTtlSeconds."
  type        = number
  default     = 86400
  nullable    = false

  validation {
    condition     = var.link_ttl_seconds >= 1 && var.link_ttl_seconds <= 604800 && floor(var.link_ttl_seconds) == var.link_ttl_seconds
    error_message = "link_ttl_seconds must be a whole number, 1-604800."
  }
}

variable "alarm_topic_arn" {
  description = "SNS topic notified when an alarm fires. Null = alarms without actions. Template: AlarmTopicArn."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_topic_arn == null || can(regex("^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]+$", var.alarm_topic_arn))
    error_message = "alarm_topic_arn must be an SNS topic ARN."
  }
}

variable "tags" {
  description = "Tags for every resource that takes them (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}
  nullable    = false
}
