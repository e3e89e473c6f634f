#!/usr/bin/env bash
# Checks the deploy tooling offline (.ci/run and the ci-cd workflow run it):
#   1. shellcheck (Debian's) on every scripts/**/*.sh and .ci/run;
#   2. every scripts/deploy.sh target in --dry-run, for both environments:
#      exit codes, the stack/workspace/namespace names in the printed
#      commands, masked secrets, refused bad settings, and that nothing ran;
#   3. aws-sam for real against a fake aws/sam/curl: the smoke run's polling,
#      and the rollback a failed smoke run triggers;
#   4. gcp-cloudrun/deploy.sh against terraform/gcp/module: the same Cloud Run
#      services, worker pool and jobs (args, env names), service accounts,
#      push/pull subscriptions and scheduler jobs (scripts/check-gcp-drift.py,
#      and its --self-test proving it catches planted drift).
#
# "Nothing ran" is checked, not assumed: the dry runs see stubs in place of
# aws, sam, terraform, kubectl, curl, docker, cargo, cargo-lambda and jq that
# record any call and fail; the check fails if one was called.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
log() { echo "validate-deploy: $*" >&2; }

# ------------------------------------------------------------------ shellcheck
# Debian's shellcheck, and jq (deploy.sh reads JSON with it in the fake-AWS
# runs below), installed like scripts/test-deps.sh installs chromium.
apt_missing=()
command -v shellcheck >/dev/null 2>&1 || apt_missing+=(shellcheck)
command -v jq >/dev/null 2>&1 || apt_missing+=(jq)
[ "${#apt_missing[@]}" -eq 0 ] || scripts/apt-install.sh "${apt_missing[@]}"
shopt -s globstar nullglob
scripts=(scripts/**/*.sh .ci/run)
echo "-- shellcheck ($(shellcheck --version | sed -n 's/^version: //p'), ${#scripts[@]} scripts)"
shellcheck "${scripts[@]}"
echo "shellcheck: 0 findings"

# ------------------------------------------------------------ deploy dry runs
echo "-- scripts/deploy.sh --dry-run"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
stubs="$tmp/stubs"
calls="$tmp/calls"
mkdir -p "$stubs"
: >"$calls"
for tool in aws sam terraform kubectl curl docker cargo cargo-lambda jq; do
  printf '#!/bin/sh\necho "%s $*" >>"%s"\nexit 99\n' "$tool" "$calls" >"$stubs/$tool"
  chmod +x "$stubs/$tool"
done
printf 'region = "eu-west-1"\n' >"$tmp/env.tfvars"

# Fake but well-formed settings; the token and keys must never be printed.
token=fake-api-token-0123456789abcdef
secret_key=fakeSecretKey/0123456789abcdefghijklmnopqrstuv
settings=(
  AWS_REGION=eu-west-1
  AWS_ACCESS_KEY_ID=AKIAFAKEFAKEFAKEFAKE
  "AWS_SECRET_ACCESS_KEY=$secret_key"
  AWS_SESSION_TOKEN=fake-session-token
  TESTEXEC_GITHUB_APP_ID=123456
  TESTEXEC_WEBHOOK_SECRET_ARN=arn:aws:secretsmanager:eu-west-1:111122223333:secret:testexec/webhook-secret-AbCdEf
  TESTEXEC_GITHUB_KEY_SECRET_ARN=arn:aws:secretsmanager:eu-west-1:111122223333:secret:testexec/github-app-key-GhIjKl
  TESTEXEC_SMOKE_REPO=acme/smoke
  "TESTEXEC_API_TOKEN=$token"
  TESTEXEC_URL=https://testexec.example.com
  "TESTEXEC_TF_VAR_FILE=$tmp/env.tfvars"
)

failures=0 cases=0
out="$tmp/out"
fail() { echo "FAIL: $*" >&2; sed 's/^/    | /' "$out" >&2; failures=$((failures + 1)); }

# dry EXPECTED_EXIT [VAR=VALUE...] -- ARGS...: runs deploy.sh in a clean
# environment (the caller's AWS settings never reach it) with the stubs first
# on PATH; output (stdout and stderr) lands in $out.
dry() {
  local expected=$1 extra=()
  shift
  while [ "$1" != -- ]; do extra+=("$1"); shift; done
  shift
  cases=$((cases + 1))
  local code=0
  env -i PATH="$stubs:/usr/local/bin:/usr/bin:/bin" HOME="$tmp" "${settings[@]}" "${extra[@]}" \
    scripts/deploy.sh "$@" >"$out" 2>&1 || code=$?
  if [ "$code" != "$expected" ]; then
    fail "deploy.sh $* exited $code, expected $expected"
    return 1
  fi
}
has() { grep -qF -- "$1" "$out" || fail "${2:-output} lacks: $1"; }
lacks() { ! grep -qF -- "$1" "$out" || fail "${2:-output} contains: $1"; }
no_secrets() {
  lacks "$token" "printed commands (secret)"
  lacks "$secret_key" "printed commands (secret)"
  lacks fake-session-token "printed commands (secret)"
}

for env in staging production; do
  other=staging
  [ "$env" = production ] || other=production

  # aws-sam: the whole sequence, with this environment's stack everywhere.
  if dry 0 -- aws-sam --env "$env" --dry-run; then
    has "+ aws sts get-caller-identity --region eu-west-1"
    has "+ env SAM_CLI_BETA_RUST_CARGO_LAMBDA=1 sam build --template-file template.yaml --parameter-overrides Architecture=arm64"
    has "+ sam deploy --template-file .aws-sam/build/template.yaml --stack-name testexec-$env --region eu-west-1"
    has "--tags testexec:env=$env"
    has "GithubAppId=123456 WebhookSecretArn=arn:aws:secretsmanager:eu-west-1:111122223333:secret:testexec/webhook-secret-AbCdEf"
    has "+ curl -fsS --max-time 10 --retry 6 --retry-delay 5 --retry-all-errors '<RunsUrl output>/healthz'"
    has "-X POST"
    has "--aws-sigv4 aws:amz:eu-west-1:execute-api"
    has "'{\"repo\":\"acme/smoke\",\"ref\":\"main\"}'"
    has "'<RunsUrl output>/runs/<run id>'"
    has "+ aws cloudformation deploy --stack-name testexec-$env"
    lacks "testexec-$other"
    no_secrets
  fi
  # Stack prefix, architecture, smoke suite and allow-list reach the commands.
  if dry 0 TESTEXEC_STACK_PREFIX=acme-ci TESTEXEC_ARCH=x86_64 TESTEXEC_SMOKE_SUITE=unit \
    TESTEXEC_ALLOWED_REPOS=acme/api,acme/smoke -- aws-sam --env "$env" --dry-run; then
    has "--stack-name acme-ci-$env"
    has "Architecture=x86_64"
    has "AllowedRepos=acme/api,acme/smoke"
    has "\"suite\":\"unit\""
  fi

  # aws-terraform: the workspace is the environment; unavailable until
  # terraform/aws/example exists.
  if [ -d terraform/aws/example ]; then
    if dry 0 -- aws-terraform --env "$env" --dry-run; then
      has "+ cargo lambda build --release --arm64 --output-format zip --locked"
      has "+ terraform -chdir=terraform/aws/example workspace select -or-create=true $env"
      has "+ terraform -chdir=terraform/aws/example apply -input=false -auto-approve -var-file=$tmp/env.tfvars"
      has "--aws-sigv4 aws:amz:eu-west-1:execute-api"
      lacks "select -or-create=true $other"
      no_secrets
    fi
  elif dry 2 -- aws-terraform --env "$env" --dry-run; then
    has "not yet available: see issue 13"
  fi

  for pair in gcp:11 azure:12; do
    cloud=${pair%%:*} issue=${pair#*:}
    if [ -d "terraform/$cloud/example" ]; then
      if dry 0 -- "$cloud" --env "$env" --dry-run; then
        has "+ terraform -chdir=terraform/$cloud/example workspace select -or-create=true $env"
        has "Authorization: Bearer ***"
        no_secrets
      fi
    elif dry 2 -- "$cloud" --env "$env" --dry-run; then
      has "not yet available: see issue $issue"
    fi
  done

  if [ -d k8s ]; then
    if dry 0 -- k8s --env "$env" --dry-run; then
      has "+ kubectl apply -k k8s/overlays/$env"
      has "+ kubectl -n testexec-$env rollout status deployment/testexec"
      has "https://testexec.example.com/healthz"
      no_secrets
    fi
  elif dry 2 -- k8s --env "$env" --dry-run; then
    has "not yet available: see issue 14"
  fi
done

# Refusals: each names what is wrong.
if dry 3 TESTEXEC_GITHUB_APP_ID= -- aws-sam --dry-run; then
  has "TESTEXEC_GITHUB_APP_ID is not set"
  has "hint:"
fi
if dry 3 TESTEXEC_WEBHOOK_SECRET_ARN=testexec/webhook-secret -- aws-sam --dry-run; then
  has "TESTEXEC_WEBHOOK_SECRET_ARN is not a Secrets Manager ARN"
fi
if dry 3 AWS_REGION= -- aws-sam --dry-run; then
  has "AWS_REGION is not set"
fi
if dry 3 TESTEXEC_ALLOWED_REPOS=acme/api -- aws-sam --dry-run; then
  has "TESTEXEC_ALLOWED_REPOS does not include the smoke repository acme/smoke"
fi
if dry 3 TESTEXEC_SMOKE_REPO='not a repo' -- aws-sam --dry-run; then
  has "TESTEXEC_SMOKE_REPO is not owner/name"
fi
if dry 64 -- aws-sam --env qa --dry-run; then
  has "--env must be staging or production"
fi
if dry 64 -- lambda --dry-run; then
  has "unknown TARGET 'lambda'"
fi
dry 64 -- --dry-run || true

cases=$((cases + 1))
if [ -s "$calls" ]; then
  echo "FAIL: --dry-run ran commands:" >&2
  sed 's/^/    | /' "$calls" >&2
  failures=$((failures + 1))
fi

if [ "$failures" != 0 ]; then
  echo "deploy dry runs: $failures failure(s) in $cases cases" >&2
  exit 1
fi
echo "deploy dry runs: $cases cases passed, nothing executed"

# ------------------------------------------- aws-sam for real, against fakes
# The path a dry run only prints: a fake aws, sam and curl (below) stand for
# AWS and the deployed API. The smoke run answers 404 (not started), then
# running, then the scenario's final status; a failed check must redeploy
# the previous template with the previous parameters. curl must get the
# signing credentials on stdin, never in its arguments.
echo "-- scripts/deploy.sh aws-sam against a fake AWS (smoke run, rollback)"
fakes="$tmp/fakes"
mkdir -p "$fakes"
cat >"$fakes/aws" <<'FAKE'
#!/usr/bin/env bash
echo "aws $*" >>"$FAKE_LOG"
case "$*" in
  "sts get-caller-identity"*) echo "arn:aws:sts::111122223333:assumed-role/testexec-deploy/ci" ;;
  "cloudformation describe-stacks"*"--query"*) echo "https://abc123.execute-api.eu-west-1.amazonaws.com/runs" ;;
  "cloudformation describe-stacks"*)
    echo '{"Stacks":[{"StackStatus":"UPDATE_COMPLETE","Parameters":[{"ParameterKey":"Architecture","ParameterValue":"arm64"},{"ParameterKey":"NightlySchedule","ParameterValue":"cron(0 3 * * ? *)"}]}]}' ;;
  "cloudformation get-template"*)
    echo '{"TemplateBody":"Transform: AWS::Serverless-2016-10-31\nResources:\n  F:\n    Properties:\n      CodeUri: s3://sam-artifacts-x/testexec-staging/0123abcd\n"}' ;;
  "cloudformation deploy"*) ;;
  *) echo "fake aws: unexpected: $*" >&2; exit 1 ;;
esac
FAKE
cat >"$fakes/sam" <<'FAKE'
#!/usr/bin/env bash
echo "sam $*" >>"$FAKE_LOG"
FAKE
cat >"$fakes/curl" <<'FAKE'
#!/usr/bin/env bash
# Answers like the deployed API. Records each call; checks the credentials.
echo "curl $*" >>"$FAKE_LOG"
out="" method=GET url="" stdin=0
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out=$2; shift ;;
    -X) method=$2; shift ;;
    --config) [ "$2" = - ] && stdin=1; shift ;;
    -w | -H | --data-binary | --max-time | --retry | --retry-delay | --aws-sigv4) shift ;;
    -*) ;;
    *) url=$1 ;;
  esac
  shift
done
if [ "$stdin" = 1 ]; then
  config=$(cat)
  grep -qF 'user = "AKIAFAKEFAKEFAKEFAKE:'"$FAKE_SECRET"'"' <<<"$config" || { echo "no credentials on stdin" >&2; exit 2; }
  grep -qF 'header = "x-amz-security-token: fake-session-token"' <<<"$config" || { echo "no session token on stdin" >&2; exit 2; }
fi
case "$method $url" in
  "GET https://abc123.execute-api.eu-west-1.amazonaws.com/healthz") printf ok ;;
  "POST https://abc123.execute-api.eu-west-1.amazonaws.com/runs")
    echo '{"run_id":"01FAKE","status":"queued","url":"/runs/01FAKE"}' >"$out"; printf 202 ;;
  "GET https://abc123.execute-api.eu-west-1.amazonaws.com/runs/01FAKE")
    n=$(($(cat "$FAKE_POLLS" 2>/dev/null || echo 0) + 1)); echo "$n" >"$FAKE_POLLS"
    case "$n" in
      1) echo '{"error":"not found"}' >"$out"; printf 404 ;;
      2) echo '{"run":{"status":"running"}}' >"$out"; printf 200 ;;
      *) echo "{\"run\":{\"status\":\"$FAKE_FINAL\"}}" >"$out"; printf 200 ;;
    esac ;;
  *) echo "fake curl: unexpected $method $url" >&2; exit 7 ;;
esac
FAKE
for tool in cargo-lambda docker; do printf '#!/bin/sh\nexit 0\n' >"$fakes/$tool"; done
chmod +x "$fakes"/*

# fake_run FINAL_STATUS EXPECTED_EXIT: one deploy against the fakes.
fake_run() {
  local final=$1 expected=$2 code=0
  cases=$((cases + 1))
  : >"$tmp/fake.log"
  rm -f "$tmp/polls"
  env -i PATH="$fakes:/usr/local/bin:/usr/bin:/bin" HOME="$tmp" "${settings[@]}" \
    TESTEXEC_SMOKE_POLL_SECONDS=0 FAKE_LOG="$tmp/fake.log" FAKE_POLLS="$tmp/polls" \
    FAKE_FINAL="$final" FAKE_SECRET="$secret_key" \
    scripts/deploy.sh aws-sam --env staging >"$out" 2>&1 || code=$?
  cat "$tmp/fake.log" >>"$out"
  if [ "$code" != "$expected" ]; then
    fail "aws-sam against fakes, smoke run $final: exit $code, expected $expected"
    return 1
  fi
}
if fake_run passed 0; then
  has "smoke run 01FAKE passed"
  has "sam deploy --template-file .aws-sam/build/template.yaml --stack-name testexec-staging"
  lacks "aws cloudformation deploy" "a passing deploy's calls (no rollback)"
  no_secrets
fi
if fake_run failed 1; then
  has "smoke run 01FAKE failed"
  has "aws cloudformation deploy --stack-name testexec-staging --region eu-west-1 --template-file"
  has "--s3-bucket sam-artifacts-x"
  has "--parameter-overrides Architecture=arm64 NightlySchedule=cron(0 3 * * ? *)"
  has "rolled back to the previous version, which is healthy"
  no_secrets
fi

if [ "$failures" != 0 ]; then
  echo "deploy against fakes: $failures failure(s)" >&2
  exit 1
fi
echo "deploy against fakes: smoke run passed and failed (rolled back) as expected; $cases cases in all"

# ------------------------------------------ GCP: deploy.sh against Terraform
# python-hcl2 reads the module: the venv scripts/validate-template.sh
# installs (it runs first in CI), else one of our own, pinned the same.
echo "-- gcp-cloudrun/deploy.sh vs terraform/gcp (scripts/check-gcp-drift.py)"
HCL2_VERSION=8.1.4
deps="$root/target/test-deps"
tfpy="$deps/venv-terraform/bin/python"
if ! "$tfpy" -c 'import hcl2' 2>/dev/null; then
  venv="$deps/venv-gcp-drift"
  tfpy="$venv/bin/python"
  if [ "$(cat "$venv/.installed" 2>/dev/null)" != "python-hcl2==$HCL2_VERSION" ]; then
    log "installing python-hcl2==$HCL2_VERSION into target/test-deps/venv-gcp-drift"
    rm -rf "$venv"
    mkdir -p "$deps"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "python-hcl2==$HCL2_VERSION" >&2
    echo "python-hcl2==$HCL2_VERSION" >"$venv/.installed"
  fi
fi
"$tfpy" scripts/check-gcp-drift.py
"$tfpy" scripts/check-gcp-drift.py --self-test
