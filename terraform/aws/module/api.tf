# The HTTP API in front of trigger (template: HttpApi and the trigger's
# GithubWebhook, RunRequest, RunStatus and Health events): POST
# /webhooks/github, public and GitHub-signed; POST /runs and GET /runs/{id},
# IAM (SigV4); GET /healthz, public. All go to trigger, which only verifies
# and queues (requests queue), so it answers within GitHub's 10 s.

resource "aws_apigatewayv2_api" "http" {
  name             = "${var.name}-http"
  description      = "testexec - POST /webhooks/github (GitHub-signed), POST /runs and GET /runs/{id} (IAM), GET /healthz"
  protocol_type    = "HTTP"
  fail_on_warnings = true
  tags             = local.tags
}

# SAM's HttpApi: the $default stage, deployed on every change.
resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.http.id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_burst_limit = 50
    throttling_rate_limit  = 20
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api_access.arn
    format = jsonencode({
      requestId        = "$context.requestId"
      ip               = "$context.identity.sourceIp"
      requestTime      = "$context.requestTime"
      routeKey         = "$context.routeKey"
      status           = "$context.status"
      responseLength   = "$context.responseLength"
      integrationError = "$context.integrationErrorMessage"
      caller           = "$context.identity.userArn"
    })
  }

  tags = local.tags
}

resource "aws_apigatewayv2_integration" "trigger" {
  api_id                 = aws_apigatewayv2_api.http.id
  integration_type       = "AWS_PROXY"
  integration_method     = "POST"
  integration_uri        = aws_lambda_function.trigger.invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = 10000
}

# Public on purpose: GitHub cannot sign with AWS credentials; trigger verifies
# X-Hub-Signature-256 (HMAC with the webhook secret) and refuses unsigned or
# badly signed deliveries.
resource "aws_apigatewayv2_route" "webhook" {
  #checkov:skip=CKV_AWS_309:GitHub cannot sign with AWS credentials; trigger verifies X-Hub-Signature-256 (HMAC with the webhook secret) and refuses unsigned or badly signed deliveries (the template's Auth Authorizer NONE).
  api_id             = aws_apigatewayv2_api.http.id
  route_key          = "POST /webhooks/github"
  authorization_type = "NONE"
  target             = "integrations/${aws_apigatewayv2_integration.trigger.id}"
}

# Run requests from people and tools: SigV4-signed (IAM), so only principals
# granted execute-api:Invoke on this route can start runs.
resource "aws_apigatewayv2_route" "runs" {
  api_id             = aws_apigatewayv2_api.http.id
  route_key          = "POST /runs"
  authorization_type = "AWS_IAM"
  target             = "integrations/${aws_apigatewayv2_integration.trigger.id}"
}

# A run's status and report links, for whoever may start runs (the deploy's
# smoke run polls it, scripts/deploy.sh): IAM like POST /runs.
resource "aws_apigatewayv2_route" "run_status" {
  api_id             = aws_apigatewayv2_api.http.id
  route_key          = "GET /runs/{id}"
  authorization_type = "AWS_IAM"
  target             = "integrations/${aws_apigatewayv2_integration.trigger.id}"
}

# Liveness for deploy checks and uptime probes: answers `ok` and reads
# nothing, so it is public; the stage's throttling bounds what it costs.
resource "aws_apigatewayv2_route" "health" {
  #checkov:skip=CKV_AWS_309:liveness probe for deploy checks and uptime monitors; it answers `ok`, reads no data and starts no work (the template's Auth Authorizer NONE).
  api_id             = aws_apigatewayv2_api.http.id
  route_key          = "GET /healthz"
  authorization_type = "NONE"
  target             = "integrations/${aws_apigatewayv2_integration.trigger.id}"
}

# API Gateway may invoke trigger for these routes only (SAM adds one
# permission per route event, scoped the same way).
resource "aws_lambda_permission" "webhook" {
  statement_id  = "HttpApiWebhook"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.trigger.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.http.execution_arn}/*/POST/webhooks/github"
}

resource "aws_lambda_permission" "runs" {
  statement_id  = "HttpApiRuns"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.trigger.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.http.execution_arn}/*/POST/runs"
}

resource "aws_lambda_permission" "run_status" {
  statement_id  = "HttpApiRunStatus"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.trigger.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.http.execution_arn}/*/GET/runs/*"
}

resource "aws_lambda_permission" "health" {
  statement_id  = "HttpApiHealth"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.trigger.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.http.execution_arn}/*/GET/healthz"
}

resource "aws_cloudwatch_log_group" "api_access" {
  #checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts at rest with a service key; the access log holds no secrets, and a KMS key would add cost and a key policy.
  #checkov:skip=CKV_AWS_338:Retention is log_retention_days (default 30, as the template's LogRetentionDays); access logs older than that are not needed to debug deliveries.
  name              = "/aws/apigateway/${var.name}-access"
  retention_in_days = var.log_retention_days
  tags              = local.tags
}
