#!/usr/bin/env bash
# One deploy command for every target (docs/deploy.md):
#
#   scripts/deploy.sh TARGET [--env staging|production] [--dry-run]
#
#   aws-sam        template.yaml with SAM: stack <prefix>-<env>; automatic rollback
#   aws-terraform  terraform/aws/example: workspace <env>, var file <env>.tfvars
#   gcp            terraform/gcp/example (issue 11), when that folder exists
#   azure          terraform/azure/example (issue 12), when that folder exists
#   k8s            k8s/overlays/<env> with kubectl -k (issue 14), when that folder exists
#
# Steps: pre-flight (tools, AWS login, settings), build, deploy, health check
# (GET /healthz on the deployed URL), smoke run (POST /runs naming
# TESTEXEC_SMOKE_REPO, poll GET /runs/{id} until final, fail unless `passed`).
#
# --dry-run prints every command (argv, shell-quoted, secrets masked) and runs
# none of them: no network, no AWS calls, nothing built. Values a real run
# would read from a command's output are shown as <placeholders>.
#
# Exit codes: 0 deployed, healthy and smoke run passed; 1 a step failed (the
# message says which, and whether the stack was rolled back); 2 target not
# available yet; 3 pre-flight failed (a tool, login or setting is missing);
# 64 usage.
#
# Settings (environment variables; CI maps them from GitHub variables/secrets):
#   AWS_REGION (or AWS_DEFAULT_REGION)   aws-*: the region to deploy to
#   TESTEXEC_GITHUB_APP_ID               aws-sam: the GitHub App's numeric id
#   TESTEXEC_WEBHOOK_SECRET_ARN          aws-sam: Secrets Manager ARN of the webhook secret
#   TESTEXEC_GITHUB_KEY_SECRET_ARN       aws-sam: Secrets Manager ARN of the App's private key
#   TESTEXEC_SMOKE_REPO                  owner/name the smoke run tests (its suite must pass)
#   TESTEXEC_SMOKE_REF     [main]        branch, tag or commit of the smoke run
#   TESTEXEC_SMOKE_SUITE   []            suite of the smoke run; empty: the manifest's only suite
#   TESTEXEC_SMOKE_TIMEOUT [900]         seconds to wait for the smoke run's final status
#   TESTEXEC_SMOKE_POLL_SECONDS [10]     seconds between two GET /runs/{id}
#   TESTEXEC_API_TOKEN                   gcp/azure/k8s: bearer token for POST /runs (secret)
#   TESTEXEC_URL                         k8s: the intake's base URL (the Ingress)
#   TESTEXEC_STACK_PREFIX  [testexec]    aws-sam: stack name is <prefix>-<env>
#   TESTEXEC_ARCH          [arm64]       arm64 or x86_64 (Lambda architecture)
#   TESTEXEC_ALLOWED_REPOS []            aws-sam: AllowedRepos (must include the smoke repo)
#   TESTEXEC_ALARM_TOPIC_ARN []          aws-sam: AlarmTopicArn
#   TESTEXEC_TF_VAR_FILE   [<env>.tfvars] Terraform targets: the var file (relative to the root, or absolute)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# Commands are echoed on fd 3, the original stdout, so that they show even
# when printed from inside a $(...) capture.
exec 3>&1

usage() { # [EXIT_CODE]: 64 (usage error) unless asked for help
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit "${1:-64}"
}
err() { echo "deploy: error: $*" >&2; }
note() { echo "deploy: $*" >&2; }

target=""
env_name=staging
dry_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --env) [ $# -ge 2 ] || usage; env_name=$2; shift 2 ;;
    --env=*) env_name=${1#--env=}; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) usage 0 ;;
    -*) err "unknown option $1"; usage ;;
    *) [ -z "$target" ] || { err "one TARGET only (got $target and $1)"; usage; }; target=$1; shift ;;
  esac
done
[ -n "$target" ] || { err "TARGET missing"; usage; }
case "$target" in
  aws-sam | aws-terraform | gcp | azure | k8s) ;;
  *) err "unknown TARGET '$target' (aws-sam, aws-terraform, gcp, azure, k8s)"; exit 64 ;;
esac
case "$env_name" in
  staging | production) ;;
  *) err "--env must be staging or production (got '$env_name')"; exit 64 ;;
esac

# ------------------------------------------------------------------ printing
# Values never shown: every printed argument has each of these replaced by ***.
secrets=()
add_secret() { [ -z "$1" ] || secrets+=("$1"); }

mask() {
  local s=$1 x
  for x in "${secrets[@]}"; do s=${s//"$x"/***}; done
  printf '%s' "$s"
}

# Shell quoting that a reader can paste: bare when safe, else single quotes.
quote() {
  if [[ $1 =~ ^[A-Za-z0-9_./:=@,+%-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

print_cmd() {
  local out="+" a
  for a in "$@"; do out+=" $(quote "$(mask "$a")")"; done
  printf '%s\n' "$out" >&3
}

# run CMD...: prints it, then runs it unless --dry-run.
run() {
  print_cmd "$@"
  [ "$dry_run" = 1 ] || "$@"
}

# capture VAR PLACEHOLDER CMD...: prints CMD, runs it and stores its stdout in
# VAR; under --dry-run stores PLACEHOLDER instead.
capture() {
  local __var=$1 __placeholder=$2 __out
  shift 2
  print_cmd "$@"
  if [ "$dry_run" = 1 ]; then
    printf -v "$__var" '%s' "$__placeholder"
    return 0
  fi
  __out=$("$@") || return $?
  printf -v "$__var" '%s' "$__out"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ----------------------------------------------------------------- pre-flight
preflight_failed=0
missing() { err "$1"; [ -z "${2:-}" ] || echo "  hint: $2" >&2; preflight_failed=1; }

need_tools() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null 2>&1 && continue
    local hint
    case "$t" in
      sam) hint="pip install aws-sam-cli==1.170.0" ;;
      aws) hint="install the AWS CLI v2 (https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html)" ;;
      terraform) hint="install Terraform >= 1.5 (https://developer.hashicorp.com/terraform/install)" ;;
      cargo-lambda) hint="pip install cargo-lambda==1.9.2 ziglang==0.15.1" ;;
      docker) hint="sam build builds the execute image with Docker; install and start it" ;;
      kubectl) hint="install kubectl and select the cluster's context" ;;
      *) hint="install $t (apt-get install $t)" ;;
    esac
    if [ "$dry_run" = 1 ]; then
      # A dry run runs nothing, so it only warns.
      note "dry run: $t not found (a real run would stop here; $hint)"
    else
      missing "$t not found" "$hint"
    fi
  done
}

need_var() { # NAME HINT [REGEX DESCRIPTION]
  local name=$1 hint=$2 re=${3:-} what=${4:-}
  local value=${!name:-}
  if [ -z "$value" ]; then
    missing "$name is not set" "$hint"
  elif [ -n "$re" ] && ! [[ $value =~ $re ]]; then
    missing "$name is not $what (got '$(mask "$value")')" "$hint"
  fi
}

region=${AWS_REGION:-${AWS_DEFAULT_REGION:-}}
arch=${TESTEXEC_ARCH:-arm64}
smoke_repo=${TESTEXEC_SMOKE_REPO:-}
smoke_ref=${TESTEXEC_SMOKE_REF:-main}
smoke_suite=${TESTEXEC_SMOKE_SUITE:-}
smoke_timeout=${TESTEXEC_SMOKE_TIMEOUT:-900}
smoke_poll=${TESTEXEC_SMOKE_POLL_SECONDS:-10}
add_secret "${TESTEXEC_API_TOKEN:-}"

common_checks() {
  if [ "$auth" = sigv4 ]; then
    need_var TESTEXEC_SMOKE_REPO "owner/name of a repository with a testexec.toml whose suite passes on the deployed execute image" \
      '^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$' "owner/name"
  else
    # A container host also starts runs in the local repositories it was
    # given by name (TESTEXEC_LOCAL_REPOS, docs/http.md).
    need_var TESTEXEC_SMOKE_REPO "owner/name, or the name of a local repository the host was given (TESTEXEC_LOCAL_REPOS)" \
      '^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)?$' "owner/name or a local repository name"
  fi
  # The request body is built by hand, so its values must need no JSON escaping.
  [[ $smoke_ref =~ ^[A-Za-z0-9_./-]+$ ]] || missing "TESTEXEC_SMOKE_REF '$smoke_ref' is not a plain ref" "a branch, tag or commit sha"
  [[ $smoke_suite =~ ^[A-Za-z0-9_.-]*$ ]] || missing "TESTEXEC_SMOKE_SUITE '$smoke_suite' is not a suite name" "a [suites.NAME] of the repository's testexec.toml"
  [[ $smoke_timeout =~ ^[0-9]+$ ]] || missing "TESTEXEC_SMOKE_TIMEOUT '$smoke_timeout' is not a number of seconds" "e.g. 900"
  [[ $smoke_poll =~ ^[0-9]+$ ]] || missing "TESTEXEC_SMOKE_POLL_SECONDS '$smoke_poll' is not a number of seconds" "e.g. 10"
  case "$arch" in arm64 | x86_64) ;; *) missing "TESTEXEC_ARCH must be arm64 or x86_64 (got '$arch')" "arm64 is the default" ;; esac
}

aws_checks() {
  [ -n "$region" ] || missing "AWS_REGION is not set" "export AWS_REGION=eu-west-1 (the region to deploy to)"
}

# aws sts get-caller-identity: are we logged in, and as whom.
aws_login() {
  local who
  if ! capture who '<caller identity>' aws sts get-caller-identity --region "$region" --query Arn --output text; then
    err "not logged in to AWS (aws sts get-caller-identity failed)"
    echo "  hint: in CI, aws-actions/configure-aws-credentials with role-to-assume; by hand, aws sso login --profile P && export AWS_PROFILE=P" >&2
    exit 3
  fi
  [ "$dry_run" = 1 ] || note "deploying to $region as $who"
}

preflight_done() {
  if [ "$preflight_failed" = 1 ]; then
    err "pre-flight failed: see above (docs/deploy.md, Settings)"
    exit 3
  fi
}

# ------------------------------------------------------- health and smoke run
# HTTP auth for POST /runs and GET /runs/{id}: sigv4 (API Gateway's AWS_IAM
# routes: a bearer token cannot pass them, API Gateway wants a SigV4
# signature) or bearer (the container host's TESTEXEC_API_TOKEN).
auth=sigv4
aws_key="" aws_secret="" aws_token=""

# The signing credentials of the logged-in principal (the OIDC-assumed role
# in CI). They reach curl on stdin, never in argv.
load_aws_credentials() {
  if [ -n "${AWS_ACCESS_KEY_ID:-}" ] && [ -n "${AWS_SECRET_ACCESS_KEY:-}" ]; then
    aws_key=$AWS_ACCESS_KEY_ID aws_secret=$AWS_SECRET_ACCESS_KEY aws_token=${AWS_SESSION_TOKEN:-}
  else
    local creds
    capture creds '{}' aws configure export-credentials --format process
    if [ "$dry_run" = 0 ]; then
      aws_key=$(jq -r '.AccessKeyId // empty' <<<"$creds")
      aws_secret=$(jq -r '.SecretAccessKey // empty' <<<"$creds")
      aws_token=$(jq -r '.SessionToken // empty' <<<"$creds")
      if [ -z "$aws_key" ] || [ -z "$aws_secret" ]; then
        err "no AWS credentials to sign the smoke run with"
        return 1
      fi
    fi
  fi
  add_secret "$aws_key"
  add_secret "$aws_secret"
  add_secret "$aws_token"
}

# curl's config file syntax: a double-quoted value escapes \ and ".
curl_quote() { local v=${1//\\/\\\\}; printf '"%s"' "${v//\"/\\\"}"; }

auth_config() {
  if [ "$auth" = sigv4 ]; then
    printf 'user = %s\n' "$(curl_quote "$aws_key:$aws_secret")"
    [ -z "$aws_token" ] || printf 'header = %s\n' "$(curl_quote "x-amz-security-token: $aws_token")"
  else
    printf 'header = %s\n' "$(curl_quote "Authorization: Bearer ${TESTEXEC_API_TOKEN:-}")"
  fi
}

# api METHOD URL OUTFILE [BODY]: an authenticated request; prints the status
# code (000 when there was no answer).
api() {
  local method=$1 url=$2 out=$3 body=${4:-}
  local argv=(curl -sS --max-time 30 -X "$method" -o "$out" -w '%{http_code}' --config -)
  [ "$auth" != sigv4 ] || argv+=(--aws-sigv4 "aws:amz:$region:execute-api")
  [ -z "$body" ] || argv+=(-H 'content-type: application/json' --data-binary "$body")
  argv+=("$url")
  print_cmd "${argv[@]}"
  if [ "$auth" = sigv4 ]; then
    echo "  (stdin: curl config with the AWS credentials, not shown)" >&3
  else
    echo "  (stdin: curl config with Authorization: Bearer ***)" >&3
  fi
  if [ "$dry_run" = 1 ]; then
    echo 000
    return 0
  fi
  auth_config | "${argv[@]}" || true
}

health_check() { # BASE_URL
  local body
  if ! capture body ok curl -fsS --max-time 10 --retry 6 --retry-delay 5 --retry-all-errors "$1/healthz"; then
    err "health check failed: GET $1/healthz did not answer 200"
    return 1
  fi
  if [ "$body" != ok ]; then
    err "health check failed: GET $1/healthz answered '$body', not 'ok'"
    return 1
  fi
  [ "$dry_run" = 1 ] || note "healthy: GET $1/healthz = ok"
}

smoke_run() { # BASE_URL
  local base=$1 code run_id status deadline
  local request="{\"repo\":\"$smoke_repo\""
  # A local repository (no owner) runs as it is on disk: it takes no ref.
  [[ $smoke_repo != */* ]] || request+=",\"ref\":\"$smoke_ref\""
  [ -z "$smoke_suite" ] || request+=",\"suite\":\"$smoke_suite\""
  request+="}"
  code=$(api POST "$base/runs" "$work/start.json" "$request")
  if [ "$dry_run" = 1 ]; then
    run_id='<run id>'
  elif [ "$code" != 202 ]; then
    err "smoke run: POST $base/runs answered $code: $(head -c 500 "$work/start.json" 2>/dev/null)"
    [ "$code" != 403 ] || echo "  hint: the deploying principal needs execute-api:Invoke on the API (docs/deploy.md, OIDC role)" >&2
    return 1
  else
    run_id=$(jq -r '.run_id // empty' "$work/start.json")
    [ -n "$run_id" ] || { err "smoke run: no run_id in $(head -c 500 "$work/start.json")"; return 1; }
  fi
  [ "$dry_run" = 1 ] || note "smoke run $run_id of $smoke_repo started; waiting up to ${smoke_timeout}s"
  deadline=$((SECONDS + smoke_timeout))
  while :; do
    code=$(api GET "$base/runs/$run_id" "$work/run.json")
    if [ "$dry_run" = 1 ]; then
      echo "  (repeated every ${smoke_poll} s until .run.status is passed, failed or errored, at most ${smoke_timeout} s)" >&3
      return 0
    fi
    case "$code" in
      200)
        status=$(jq -r '.run.status // empty' "$work/run.json")
        case "$status" in
          passed) note "smoke run $run_id passed"; return 0 ;;
          failed | errored)
            err "smoke run $run_id $status: $(jq -r --arg base "$base" '"error: \(.run.error // "none"); report: \(if .report then $base + .report else "none" end)"' "$work/run.json" | head -c 1000)"
            return 1 ;;
        esac ;;
      404) status="not started yet" ;; # the trigger has not taken the request off its queue
      *) err "smoke run: GET $base/runs/$run_id answered $code: $(head -c 300 "$work/run.json" 2>/dev/null)"; return 1 ;;
    esac
    if [ "$SECONDS" -ge "$deadline" ]; then
      err "smoke run $run_id not final after ${smoke_timeout}s (last status: $status)"
      return 1
    fi
    sleep "$smoke_poll"
  done
}

verify() { # BASE_URL
  health_check "$1" && smoke_run "$1"
}

# ------------------------------------------------------------------- aws-sam
deploy_aws_sam() {
  local prefix=${TESTEXEC_STACK_PREFIX:-testexec}
  local stack="$prefix-$env_name"
  [[ $prefix =~ ^[A-Za-z][A-Za-z0-9-]{0,39}$ ]] ||
    missing "TESTEXEC_STACK_PREFIX '$prefix' is not a stack name prefix" "letters, digits and -, at most 40 (function names are <stack>-trigger, limited to 64)"
  need_tools sam aws cargo-lambda docker curl jq
  aws_checks
  common_checks
  need_var TESTEXEC_GITHUB_APP_ID "the App's numeric id (GitHub: Settings, Developer settings, GitHub Apps; docs/github.md)" '^[0-9]+$' "a number"
  need_var TESTEXEC_WEBHOOK_SECRET_ARN "aws secretsmanager create-secret --name testexec/webhook-secret ... (docs/deploy-aws.md, Secrets)" \
    '^arn:aws[a-z-]*:secretsmanager:' "a Secrets Manager ARN"
  need_var TESTEXEC_GITHUB_KEY_SECRET_ARN "aws secretsmanager create-secret --name testexec/github-app-key ... (docs/deploy-aws.md, Secrets)" \
    '^arn:aws[a-z-]*:secretsmanager:' "a Secrets Manager ARN"
  if [ -n "${TESTEXEC_ALLOWED_REPOS:-}" ] && [[ ",${TESTEXEC_ALLOWED_REPOS}," != *",$smoke_repo,"* ]]; then
    missing "TESTEXEC_ALLOWED_REPOS does not include the smoke repository $smoke_repo" "add it, or POST /runs refuses the smoke run"
  fi
  preflight_done
  aws_login

  # sam's --parameter-overrides is one string of Key=Value pairs.
  local overrides="Architecture=$arch GithubAppId=$TESTEXEC_GITHUB_APP_ID"
  overrides+=" WebhookSecretArn=$TESTEXEC_WEBHOOK_SECRET_ARN GithubPrivateKeySecretArn=$TESTEXEC_GITHUB_KEY_SECRET_ARN"
  [ -z "${TESTEXEC_ALLOWED_REPOS:-}" ] || overrides+=" AllowedRepos=$TESTEXEC_ALLOWED_REPOS"
  [ -z "${TESTEXEC_ALARM_TOPIC_ARN:-}" ] || overrides+=" AlarmTopicArn=$TESTEXEC_ALARM_TOPIC_ARN"

  # What is deployed now, kept to redeploy if the new version fails its checks.
  local previous="" status="" stack_json
  print_cmd aws cloudformation describe-stacks --stack-name "$stack" --region "$region" --output json
  if [ "$dry_run" = 1 ]; then
    status='<current status>'
  elif stack_json=$(aws cloudformation describe-stacks --stack-name "$stack" --region "$region" --output json 2>"$work/describe.err"); then
    status=$(jq -r '.Stacks[0].StackStatus' <<<"$stack_json")
  elif grep -q 'does not exist' "$work/describe.err"; then
    note "stack $stack does not exist yet: first deployment (nothing to roll back to)"
  else
    err "aws cloudformation describe-stacks failed: $(cat "$work/describe.err")"
    exit 1
  fi
  case "$status" in
    "") ;;
    REVIEW_IN_PROGRESS)
      # A first deploy whose change set never ran: nothing deployed yet.
      note "stack $stack was never deployed (REVIEW_IN_PROGRESS): nothing to roll back to" ;;
    *_IN_PROGRESS)
      err "stack $stack is $status: another deployment is running; wait for it" && exit 1 ;;
    ROLLBACK_COMPLETE | ROLLBACK_FAILED | DELETE_FAILED)
      err "stack $stack is $status (its creation failed) and cannot be updated"
      echo "  hint: sam delete --stack-name $stack --region $region, then deploy again" >&2
      exit 1 ;;
    UPDATE_ROLLBACK_FAILED)
      err "stack $stack is $status"
      echo "  hint: aws cloudformation continue-update-rollback --stack-name $stack --region $region" >&2
      exit 1 ;;
    *)
      previous="$work/previous-template.yaml"
      local tpl
      capture tpl '<previous template>' aws cloudformation get-template --stack-name "$stack" \
        --template-stage Original --region "$region" --output json
      if [ "$dry_run" = 0 ]; then
        # YAML templates come back as a string, JSON ones as an object.
        jq -r 'if (.TemplateBody | type) == "string" then .TemplateBody else (.TemplateBody | tojson) end' <<<"$tpl" >"$previous"
        jq -r '.Stacks[0].Parameters // [] | .[] | "\(.ParameterKey)=\(.ParameterValue)"' <<<"$stack_json" >"$work/previous-parameters"
      fi ;;
  esac

  # The rust-cargolambda build method was a SAM beta feature; the variable
  # opts in on versions that still ask (and keeps a CI build from prompting).
  run env SAM_CLI_BETA_RUST_CARGO_LAMBDA=1 sam build --template-file template.yaml --parameter-overrides "Architecture=$arch"

  # CloudFormation rolls a failed stack update back by itself (sam deploy
  # does not pass --disable-rollback); --no-fail-on-empty-changeset lets a
  # redeploy of the same commit still be verified.
  if ! run sam deploy --template-file .aws-sam/build/template.yaml --stack-name "$stack" --region "$region" \
    --resolve-s3 --s3-prefix "$stack" --resolve-image-repos \
    --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND \
    --no-confirm-changeset --no-fail-on-empty-changeset \
    --tags "testexec:env=$env_name" --parameter-overrides "$overrides"; then
    err "sam deploy failed; CloudFormation rolls a failed update of $stack back to the previous version by itself (a failed first creation leaves ROLLBACK_COMPLETE: sam delete it); see the stack's events"
    exit 1
  fi

  local runs_url=""
  capture runs_url '<RunsUrl output>' aws cloudformation describe-stacks --stack-name "$stack" --region "$region" \
    --query "Stacks[0].Outputs[?OutputKey=='RunsUrl'].OutputValue" --output text || true
  if [[ $runs_url != https://* && $dry_run = 0 ]]; then
    err "stack $stack has no RunsUrl output (got '$runs_url')"
    exit 1
  fi
  local base=${runs_url%/runs}
  load_aws_credentials
  if verify "$base"; then
    if [ "$dry_run" = 1 ]; then
      # Shown, not run: what a failed health check or smoke run leads to.
      echo "# if the health check or the smoke run fails (rollback to the version deployed before):" >&3
    else
      note "$stack ($env_name) deployed, healthy, smoke run passed"
      return 0
    fi
  fi

  # Health check or smoke run failed on a stack CloudFormation considers
  # healthy: redeploy the previous packaged template (its code and image are
  # still in the SAM artifact bucket and ECR) with the previous parameters.
  if [ -z "$previous" ]; then
    err "$stack failed its checks and has no previous version to roll back to (first deployment); left as is"
    exit 1
  fi
  note "rolling $stack back to the previous version"
  local params=() bucket
  if [ "$dry_run" = 1 ]; then
    params=('<previous Key=Value parameters>')
    bucket='<SAM artifact bucket>'
  else
    mapfile -t params <"$work/previous-parameters"
    # The SAM artifact bucket the previous code lives in also takes the
    # template (CloudFormation wants templates over 51,200 bytes from S3).
    bucket=$(grep -o 's3://[^/"]*' "$previous" | head -1 | cut -c6-) || true
  fi
  local rollback=(aws cloudformation deploy --stack-name "$stack" --region "$region" --template-file "$previous"
    --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND --no-fail-on-empty-changeset
    --tags "testexec:env=$env_name")
  [ -z "$bucket" ] || rollback+=(--s3-bucket "$bucket" --s3-prefix "$stack")
  [ "${#params[@]}" = 0 ] || rollback+=(--parameter-overrides "${params[@]}")
  if ! run "${rollback[@]}"; then
    err "rollback of $stack failed: see its events (aws cloudformation describe-stack-events --stack-name $stack)"
    exit 1
  fi
  if [ "$dry_run" = 1 ]; then
    health_check "$base"
    note "dry run complete: nothing was run"
    return 0
  elif health_check "$base"; then
    err "$stack failed its checks; rolled back to the previous version, which is healthy"
  else
    err "$stack failed its checks; rolled back to the previous version, which is not healthy either"
  fi
  exit 1
}

# ----------------------------------------------------------------- terraform
# The Terraform roots share one layout (terraform/<cloud>/example): a
# workspace per environment, the environment's settings in <env>.tfvars next
# to the root, and an output `runs_url` (the POST /runs URL). Terraform has no
# rollback: a failed check leaves the new version, redeploy the previous
# commit (docs/deploy.md, Rollback).
deploy_terraform() { # CLOUD ISSUE
  local cloud=$1 issue=$2 dir="terraform/$1/example"
  if [ ! -d "$dir" ]; then
    echo "deploy: $target: not yet available: see issue $issue ($dir does not exist yet)" >&2
    exit 2
  fi
  # -var-file is read relative to -chdir; an absolute TESTEXEC_TF_VAR_FILE
  # (a file kept outside the repository) is used as is.
  local varfile=${TESTEXEC_TF_VAR_FILE:-$env_name.tfvars} varpath
  case "$varfile" in /*) varpath=$varfile ;; *) varpath="$dir/$varfile" ;; esac
  [ "$cloud" = aws ] || auth=bearer
  need_tools terraform curl jq
  common_checks
  [ -f "$varpath" ] || missing "$varpath not found" "write this environment's settings there (the root's variables), or point TESTEXEC_TF_VAR_FILE at them"
  case "$cloud" in
    aws)
      need_tools aws cargo-lambda
      aws_checks ;;
    *)
      need_var TESTEXEC_API_TOKEN "the container host's write token (at least 16 characters), also set in the deployment's secret" '^.{16,}$' "at least 16 characters" ;;
  esac
  preflight_done
  [ "$cloud" != aws ] || aws_login

  if [ "$cloud" = aws ]; then
    local flag=--arm64
    [ "$arch" = arm64 ] || flag=--x86-64
    run cargo lambda build --release "$flag" --output-format zip --locked \
      -p testexec-trigger -p testexec-execute -p testexec-collect -p testexec-report
  fi
  run terraform -chdir="$dir" init -input=false
  run terraform -chdir="$dir" workspace select -or-create=true "$env_name"
  local apply=(terraform -chdir="$dir" apply -input=false -auto-approve -var-file="$varfile")
  # The zips just built are for $arch: the functions must be too (a -var
  # outranks the var file).
  [ "$cloud" != aws ] || apply+=(-var "architecture=$arch")
  if ! run "${apply[@]}"; then
    err "terraform apply failed in workspace $env_name: Terraform does not roll back; fix and re-run, or deploy the previous commit"
    exit 1
  fi
  local runs_url
  if ! capture runs_url '<runs_url output>' terraform -chdir="$dir" output -raw runs_url; then
    err "$dir has no output runs_url (the POST /runs URL): the Terraform roots must define it (docs/deploy.md)"
    exit 1
  fi
  [ "$cloud" != aws ] || load_aws_credentials
  if ! verify "${runs_url%/runs}"; then
    err "$target $env_name failed its checks; Terraform does not roll back: deploy the previous commit (docs/deploy.md, Rollback)"
    exit 1
  fi
  if [ "$dry_run" = 1 ]; then note "dry run complete: nothing was run"; return 0; fi
  note "$target ($env_name, workspace $env_name) deployed, healthy, smoke run passed"
}

# ----------------------------------------------------------------------- k8s
deploy_k8s() {
  local overlay="k8s/overlays/$env_name"
  if [ ! -d k8s ]; then
    echo "deploy: k8s: not yet available: see issue 14 (k8s/ does not exist yet)" >&2
    exit 2
  fi
  [ -d "$overlay" ] || missing "$overlay not found" "k8s/ needs a Kustomize overlay per environment"
  auth=bearer
  need_tools kubectl curl jq
  common_checks
  need_var TESTEXEC_URL "the intake's base URL (the Ingress host), e.g. https://testexec.example.com" '^https?://' "a URL"
  need_var TESTEXEC_API_TOKEN "the container host's write token (at least 16 characters), also in the cluster's Secret" '^.{16,}$' "at least 16 characters"
  preflight_done
  run kubectl apply -k "$overlay"
  run kubectl -n "testexec-$env_name" rollout status deployment/testexec --timeout=300s
  if ! verify "${TESTEXEC_URL%/}"; then
    run kubectl -n "testexec-$env_name" rollout undo deployment/testexec
    err "k8s $env_name failed its checks; the Deployment was rolled back (kubectl rollout undo)"
    exit 1
  fi
  if [ "$dry_run" = 1 ]; then
    echo "# if the health check or the smoke run fails:" >&3
    print_cmd kubectl -n "testexec-$env_name" rollout undo deployment/testexec
    note "dry run complete: nothing was run"
    return 0
  fi
  note "k8s ($env_name) deployed, healthy, smoke run passed"
}

[ "$dry_run" = 0 ] || note "dry run: $target, env $env_name (nothing is run)"
case "$target" in
  aws-sam) deploy_aws_sam ;;
  aws-terraform) deploy_terraform aws 13 ;;
  gcp) deploy_terraform gcp 11 ;;
  azure) deploy_terraform azure 12 ;;
  k8s) deploy_k8s ;;
esac
