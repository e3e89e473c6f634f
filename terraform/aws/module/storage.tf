# The table and the bucket (template: Table, Bucket, BucketPolicy).
#
# Both are kept when the stack goes (the template's DeletionPolicy and
# UpdateReplacePolicy: Retain): run history and reports outlive a mistaken
# destroy. prevent_destroy makes `terraform destroy` (and any change that
# would replace them) fail; terraform/aws/example/README.md says how to
# remove them on purpose.

# ------------------------------------------------------------------- table
# Layout (docs/backends.md): PK/SK items per run, shard, delivery and repo;
# runs-by-time lists a repository's runs newest first, active-runs lets the
# sweep find unfinished runs without a scan.
resource "aws_dynamodb_table" "table" {
  #checkov:skip=CKV_AWS_119:Encrypted with the AWS managed key (aws/dynamodb); a customer managed key adds cost and a key policy to run without changing who can read the table (IAM does).
  name         = "${var.name}-table"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "PK"
  range_key    = "SK"

  attribute {
    name = "PK"
    type = "S"
  }
  attribute {
    name = "SK"
    type = "S"
  }
  attribute {
    name = "gsi1pk"
    type = "S"
  }
  attribute {
    name = "gsi1sk"
    type = "S"
  }
  attribute {
    name = "gsi2pk"
    type = "S"
  }
  attribute {
    name = "gsi2sk"
    type = "S"
  }

  global_secondary_index {
    name            = "runs-by-time"
    hash_key        = "gsi1pk"
    range_key       = "gsi1sk"
    projection_type = "ALL"
  }

  global_secondary_index {
    name            = "active-runs"
    hash_key        = "gsi2pk"
    range_key       = "gsi2sk"
    projection_type = "ALL"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  # No kms_key_arn: the AWS managed key, as the template's SSEEnabled: true.
  server_side_encryption {
    enabled = true
  }

  tags = local.tags

  lifecycle {
    prevent_destroy = true
  }
}

# ------------------------------------------------------------------ bucket
# Versioning is on: the timing history (outside runs/) is overwritten by
# every run, and a bad write or an accidental delete can be rolled back for
# 7 days; old versions then expire, so the cost stays bounded.
resource "aws_s3_bucket" "bucket" {
  #checkov:skip=CKV_AWS_18:Server access logs would need a second bucket (itself unlogged); every access is by the functions' roles, auditable with CloudTrail data events when needed.
  #checkov:skip=CKV_AWS_144:Run objects expire after run_retention_days and a run can be repeated; a replica bucket in a second region would double storage for data that is cheap to recreate (the template has none either).
  #checkov:skip=CKV_AWS_145:SSE-S3 (AES256) as in the template; SSE-KMS would add a KMS call per object read and write, and IAM already decides who can read the objects.
  #checkov:skip=CKV2_AWS_62:Nothing consumes object events: the functions hand work to each other through the queues (the template has no notifications either).
  bucket_prefix = "${var.name}-" # + 26 random characters
  tags          = local.tags

  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_s3_bucket_versioning" "bucket" {
  bucket = aws_s3_bucket.bucket.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "bucket" {
  bucket = aws_s3_bucket.bucket.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_public_access_block" "bucket" {
  bucket = aws_s3_bucket.bucket.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "bucket" {
  bucket = aws_s3_bucket.bucket.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "bucket" {
  bucket = aws_s3_bucket.bucket.id

  rule {
    id     = "expire-runs"
    status = "Enabled"
    filter {
      prefix = "runs/"
    }
    expiration {
      days = var.run_retention_days
    }
  }

  rule {
    id     = "expire-old-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 7
    }
  }

  rule {
    id     = "clean-delete-markers"
    status = "Enabled"
    filter {}
    expiration {
      expired_object_delete_marker = true
    }
  }

  rule {
    id     = "abort-incomplete-multipart"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  # Lifecycle rules need versioning settled first on a new bucket.
  depends_on = [aws_s3_bucket_versioning.bucket]
}

data "aws_iam_policy_document" "bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.bucket.arn,
      "${aws_s3_bucket.bucket.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "bucket" {
  bucket = aws_s3_bucket.bucket.id
  policy = data.aws_iam_policy_document.bucket.json

  # A policy put before the public access block is in place can be refused.
  depends_on = [aws_s3_bucket_public_access_block.bucket]
}
