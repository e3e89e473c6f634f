# The example's inputs: where to deploy, what was built, and the GitHub
# settings. Everything else keeps the module's defaults (the template's).

variable "region" {
  description = "AWS region to deploy to."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as us-east-1."
  }
}

variable "name" {
  description = "Prefix of every resource name (see the module's variable)."
  type        = string
  default     = "testexec"
}

variable "architecture" {
  description = "arm64 or x86_64: what the zips (and the execute image) were built for."
  type        = string
  default     = "arm64"
}

variable "lambda_zip_dir" {
  description = "Directory holding <function>/bootstrap.zip (target/lambda after cargo lambda build --release --output-format zip, relative to this directory or absolute)."
  type        = string
  default     = "../../../target/lambda"
}

variable "execute_image_uri" {
  description = "ECR image URI of the execute function (functions/execute/Dockerfile with your toolchain). Null runs execute from its zip, without a test toolchain."
  type        = string
  default     = null
}

variable "webhook_secret_arn" {
  description = "Secrets Manager ARN of the GitHub webhook secret. Null refuses webhooks."
  type        = string
  default     = null
}

variable "github_app_id" {
  description = "The GitHub App's numeric id."
  type        = string
  default     = null
}

variable "github_private_key_secret_arn" {
  description = "Secrets Manager ARN of the GitHub App's private key (PEM)."
  type        = string
  default     = null
}

variable "allowed_repos" {
  description = "owner/name repositories allowed to start runs; empty allows all."
  type        = list(string)
  default     = []
}

variable "nightly" {
  description = "Optional scheduled run: { repo, ref, suite, schedule }."
  type = object({
    repo     = string
    ref      = optional(string, "main")
    suite    = optional(string)
    schedule = optional(string, "cron(0 3 * * ? *)")
  })
  default = null
}

variable "alarm_topic_arn" {
  description = "SNS topic for alarm notifications; null creates the alarms without actions."
  type        = string
  default     = null
}
