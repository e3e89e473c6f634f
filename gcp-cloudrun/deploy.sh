#!/usr/bin/env bash
# testexec on Google Cloud: Firestore, Cloud Storage, Pub/Sub, Cloud Run.
# See docs/deploy-gcp.md for what this builds and why.
#
#   gcp-cloudrun/deploy.sh            # create or update everything (idempotent)
#   gcp-cloudrun/deploy.sh --check    # offline: every gcloud command and flag
#                                     # used below exists in the installed gcloud
#   gcp-cloudrun/deploy.sh --print    # offline: print every gcloud command this
#                                     # would run (one per line, arguments
#                                     # tab-separated), run nothing; what
#                                     # scripts/check-gcp-drift.py compares with
#                                     # terraform/gcp
#
# Settings (environment):
#   PROJECT          project id (required)
#   REGION           Cloud Run / Firestore / bucket region (default us-central1)
#   IMAGE            the host image (Dockerfile, built with FEATURES=gcp)
#   WORKER_IMAGE     the worker image: the host plus your test toolchain
#                    (default: IMAGE)
#   BUCKET           report/log bucket (default PROJECT-testexec)
#   WORKERS          worker pool instances pulling shards (default 1; 0 when
#                    idle: the pool does not scale itself, see the docs)
#   API_TOKEN        bearer token for POST /runs (>= 16 chars; stored in
#                    Secret Manager, never echoed)
#   WEBHOOK_SECRET   the GitHub App's webhook secret (Secret Manager)
#   GITHUB_APP_ID    the GitHub App's id
#   GITHUB_APP_KEY_FILE  the App's private key (PEM file; Secret Manager)
#   SCHEDULE         cron for a nightly run of SCHEDULE_REPO (optional)
#   SCHEDULE_REPO    owner/name the schedule runs
set -euo pipefail

check=false print=false
case "${1:-}" in
  --check) check=true ;;
  --print) check=true print=true ;; # --check's path through the script
  "") ;;
  *) echo "usage: gcp-cloudrun/deploy.sh [--check|--print]" >&2; exit 64 ;;
esac

# `g "<command path>" ARGS...`: runs gcloud, or in --check mode verifies that
# the command exists and that its help names every --flag used, or in
# --print mode prints it.
checked=0
declare -A help_cache=()
g() {
  local path="$1"; shift
  if $print; then
    printf 'g\t%s' "$path"; printf '\t%s' "$@"; printf '\n'
    return
  fi
  if ! $check; then
    # shellcheck disable=SC2086
    gcloud $path "$@"
    return
  fi
  # Each command's help once: gcloud takes about a second to start, and
  # the script calls the same commands for every queue and account.
  local help
  if [ -z "${help_cache[$path]+set}" ]; then
    # shellcheck disable=SC2086
    if ! help_cache[$path]=$(gcloud $path --help 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' | col -b); then
      echo "deploy --check: no command \`gcloud $path\`" >&2; exit 1
    fi
  fi
  help="${help_cache[$path]}"
  local arg flag
  for arg in "$@"; do
    case "$arg" in
      --*)
        flag="${arg%%=*}"
        if ! grep -qE -- "(^|[^a-z-])(${flag}|--\[no-\]${flag#--no-}|--\[no-\]${flag#--})([^a-z-]|$)" <<<"$help"; then
          echo "deploy --check: \`gcloud $path\` has no flag $flag" >&2; exit 1
        fi
        checked=$((checked + 1));;
    esac
  done
}

# `ok CMD...`: a create that may already exist (idempotent re-runs).
ok() { if $check; then "$@"; else "$@" 2>/dev/null || true; fi; }

if ! $check; then
  for var in PROJECT API_TOKEN WEBHOOK_SECRET GITHUB_APP_ID GITHUB_APP_KEY_FILE; do
    [ -n "${!var:-}" ] || { echo "deploy: set $var (see docs/deploy-gcp.md)" >&2; exit 1; }
  done
  [ "${#API_TOKEN}" -ge 16 ] || { echo "deploy: API_TOKEN must be at least 16 characters" >&2; exit 1; }
fi
PROJECT="${PROJECT:-check-project}"
REGION="${REGION:-us-central1}"
IMAGE="${IMAGE:-$REGION-docker.pkg.dev/$PROJECT/testexec/testexec:latest}"
WORKER_IMAGE="${WORKER_IMAGE:-$IMAGE}"
BUCKET="${BUCKET:-$PROJECT-testexec}"
WORKERS="${WORKERS:-1}"
PREFIX=testexec
QUEUES="requests shards results reports"
project_number=0
if ! $check; then
  project_number=$(gcloud projects describe "$PROJECT" --format='value(projectNumber)')
fi
pubsub_agent="serviceAccount:service-$project_number@gcp-sa-pubsub.iam.gserviceaccount.com"
sa() { echo "testexec-$1@$PROJECT.iam.gserviceaccount.com"; }
# The handlers' URL, known before the service exists: Cloud Run's
# deterministic https://SERVICE-PROJECT_NUMBER.REGION.run.app form. Pushes go
# to $handlers_url/queues/<queue>, with ID tokens for this audience.
handlers_url="https://testexec-handlers-$project_number.$REGION.run.app"
push_audience="$handlers_url/queues"
# The queues Pub/Sub pushes to the handlers (queue => POST /queues/<handler>);
# shards are pulled by the worker pool (a shard outlives any push deadline).
declare -A push_handler=([requests]=trigger [results]=collect [reports]=report)

g "services enable" run.googleapis.com pubsub.googleapis.com firestore.googleapis.com \
  storage.googleapis.com secretmanager.googleapis.com cloudscheduler.googleapis.com \
  iam.googleapis.com iamcredentials.googleapis.com --project="$PROJECT"

# One least-privilege account per role: intake (public front door), workers
# (the handlers service, the worker pool, the sweep job), push (the identity
# of the push subscriptions: may invoke the handlers service, nothing else)
# and scheduler (may start the sweep job, nothing else).
for role in intake workers push scheduler; do
  ok g "iam service-accounts create" "testexec-$role" --project="$PROJECT" \
    --description="testexec $role"
done

# Firestore (native mode); claims and test history expire through TTL
# policies on expires_at.
ok g "firestore databases create" --project="$PROJECT" --location="$REGION" \
  --type=firestore-native
for group in deliveries history; do
  g "firestore fields ttls update" expires_at --collection-group="${PREFIX}_$group" \
    --enable-ttl --project="$PROJECT" --async
done
for role in intake workers; do
  g "projects add-iam-policy-binding" "$PROJECT" --member="serviceAccount:$(sa "$role")" \
    --role=roles/datastore.user --condition=None
done

# Reports, logs, snapshots, timing history.
ok g "storage buckets create" "gs://$BUCKET" --project="$PROJECT" --location="$REGION" \
  --uniform-bucket-level-access --public-access-prevention
g "storage buckets add-iam-policy-binding" "gs://$BUCKET" \
  --member="serviceAccount:$(sa workers)" --role=roles/storage.objectAdmin
g "storage buckets add-iam-policy-binding" "gs://$BUCKET" \
  --member="serviceAccount:$(sa intake)" --role=roles/storage.objectViewer
# Report links are V4 URLs signed through IAM signBlob as the worker itself.
g "iam service-accounts add-iam-policy-binding" "$(sa workers)" --project="$PROJECT" \
  --member="serviceAccount:$(sa workers)" --role=roles/iam.serviceAccountTokenCreator
# Pub/Sub's agent mints the push subscriptions' OIDC tokens as the push
# account: projects created before 8 April 2021 need this grant; newer ones
# have it through the agent's own role, where it is harmless.
g "iam service-accounts add-iam-policy-binding" "$(sa push)" --project="$PROJECT" \
  --member="$pubsub_agent" --role=roles/iam.serviceAccountTokenCreator

# Per queue: topic and dead-letter topic with a subscription (forwarded
# messages are kept 7 days there). The queue subscriptions come after the
# handlers service they push to.
for q in $QUEUES; do
  ok g "pubsub topics create" "$PREFIX-$q" --project="$PROJECT"
  ok g "pubsub topics create" "$PREFIX-$q-dlq" --project="$PROJECT"
  ok g "pubsub subscriptions create" "$PREFIX-$q-dlq-sub" --project="$PROJECT" \
    --topic="$PREFIX-$q-dlq" --ack-deadline=60
  # Pub/Sub's own agent forwards dead letters: it must publish there.
  g "pubsub topics add-iam-policy-binding" "$PREFIX-$q-dlq" --project="$PROJECT" \
    --member="$pubsub_agent" --role=roles/pubsub.publisher
  g "pubsub topics add-iam-policy-binding" "$PREFIX-$q" --project="$PROJECT" \
    --member="serviceAccount:$(sa workers)" --role=roles/pubsub.publisher
  g "pubsub subscriptions add-iam-policy-binding" "$PREFIX-$q-dlq-sub" --project="$PROJECT" \
    --member="serviceAccount:$(sa workers)" --role=roles/pubsub.subscriber
done
# The intake only queues run requests.
g "pubsub topics add-iam-policy-binding" "$PREFIX-requests" --project="$PROJECT" \
  --member="serviceAccount:$(sa intake)" --role=roles/pubsub.publisher

# Secrets: values from the environment through stdin, never on a command line.
secret() { # name value
  [ -n "$2" ] || $check || return 0
  ok g "secrets create" "$1" --project="$PROJECT" --replication-policy=automatic
  $check || printf '%s' "$2" | gcloud secrets versions add "$1" --project="$PROJECT" --data-file=- >/dev/null
  for role in intake workers; do
    g "secrets add-iam-policy-binding" "$1" --project="$PROJECT" \
      --member="serviceAccount:$(sa "$role")" --role=roles/secretmanager.secretAccessor
  done
}
secret testexec-api-token "${API_TOKEN:-}"
secret testexec-webhook-secret "${WEBHOOK_SECRET:-}"
secret testexec-github-key "$(cat "${GITHUB_APP_KEY_FILE:-/dev/null}")"

env_vars="TESTEXEC_BACKEND=gcp,GOOGLE_CLOUD_PROJECT=$PROJECT,TESTEXEC_GCS_BUCKET=$BUCKET"
# JSON lines: Cloud Logging makes structured entries of them.
env_vars="$env_vars,TESTEXEC_LOG_FORMAT=json,RUST_LOG=info"
env_vars="$env_vars,TESTEXEC_PUBSUB_PREFIX=$PREFIX,TESTEXEC_FIRESTORE_PREFIX=${PREFIX}_"
env_vars="$env_vars,TESTEXEC_GITHUB_APP_ID=${GITHUB_APP_ID:-1}"
# Secrets are mounted as variables from Secret Manager, resolved by Cloud Run.
secrets="TESTEXEC_API_TOKEN=testexec-api-token:latest,TESTEXEC_WEBHOOK_SECRET=testexec-webhook-secret:latest"
secrets="$secrets,TESTEXEC_GITHUB_PRIVATE_KEY=testexec-github-key:latest"

# The handlers: trigger, collect and report, fed by Pub/Sub push
# (POST /queues/<queue>). Private: only the push account may invoke it
# (Cloud Run checks its ID token), and the app checks the token's audience
# and sender again (TESTEXEC_GCP_PUSH_*). Scales to zero; a request may take
# up to the push subscriptions' 600 s ack deadline. The custom audience lets
# Cloud Run accept the tokens' /queues audience whatever URL form it routes.
g "run deploy" testexec-handlers --project="$PROJECT" --region="$REGION" --image="$IMAGE" \
  --service-account="$(sa workers)" --no-allow-unauthenticated --ingress=all \
  --min-instances=0 --max-instances=10 --concurrency=10 --timeout=600 --cpu=1 --memory=1Gi \
  --set-custom-audiences="$push_audience" \
  --set-env-vars="$env_vars,TESTEXEC_GCP_PUSH_AUDIENCE=$push_audience,TESTEXEC_GCP_PUSH_SERVICE_ACCOUNT=$(sa push)" \
  --set-secrets="$secrets" --args=serve,--jobs,0,--queue-push
g "run services add-iam-policy-binding" testexec-handlers --project="$PROJECT" --region="$REGION" \
  --member="serviceAccount:$(sa push)" --role=roles/run.invoker

# Per queue: the subscription, dead letters after 5 deliveries. requests,
# results and reports are pushed to the handlers with an OIDC token of the
# push account (ack deadline 600 s, the most Pub/Sub allows: the handler's
# answer acks); shards are pulled by the worker pool, which renews its lease
# (a shard may run 30 min). Created, then updated, so a re-run converges.
for q in $QUEUES; do
  push=()
  if [ -n "${push_handler[$q]:-}" ]; then
    push=(--push-endpoint="$handlers_url/queues/${push_handler[$q]}"
      --push-auth-service-account="$(sa push)" --push-auth-token-audience="$push_audience")
  fi
  ok g "pubsub subscriptions create" "$PREFIX-$q-sub" --project="$PROJECT" \
    --topic="$PREFIX-$q" --ack-deadline=600 \
    --dead-letter-topic="$PREFIX-$q-dlq" --max-delivery-attempts=5 "${push[@]}"
  g "pubsub subscriptions update" "$PREFIX-$q-sub" --project="$PROJECT" --ack-deadline=600 \
    --dead-letter-topic="$PREFIX-$q-dlq" --max-delivery-attempts=5 "${push[@]}"
  # Pub/Sub's agent acknowledges forwarded dead letters on the source.
  g "pubsub subscriptions add-iam-policy-binding" "$PREFIX-$q-sub" --project="$PROJECT" \
    --member="$pubsub_agent" --role=roles/pubsub.subscriber
  # The workers pull the shards; nobody pulls a push subscription (a stack
  # deployed when every queue was pulled loses the grant here).
  if [ -z "${push_handler[$q]:-}" ]; then
    g "pubsub subscriptions add-iam-policy-binding" "$PREFIX-$q-sub" --project="$PROJECT" \
      --member="serviceAccount:$(sa workers)" --role=roles/pubsub.subscriber
  else
    ok g "pubsub subscriptions remove-iam-policy-binding" "$PREFIX-$q-sub" --project="$PROJECT" \
      --member="serviceAccount:$(sa workers)" --role=roles/pubsub.subscriber
  fi
done

# The intake: webhooks and POST /runs, answered at once (queued); no
# workers, so it scales to zero between requests.
g "run deploy" testexec-intake --project="$PROJECT" --region="$REGION" --image="$IMAGE" \
  --service-account="$(sa intake)" --allow-unauthenticated --ingress=all \
  --min-instances=0 --max-instances=10 --concurrency=40 --timeout=60 \
  --set-env-vars="$env_vars" --set-secrets="$secrets" --args=serve,--jobs,0

# The workers: a worker pool (no ingress) running `testexec worker --queue
# execute`: pulls shards only, renewing each lease every 200 s, so a shard
# of any length runs once. It does not scale itself from the queue's depth
# (no Pub/Sub autoscaler for worker pools here): set WORKERS, the manual
# instance count; 0 when idle costs nothing.
g "beta run worker-pools deploy" testexec-workers --project="$PROJECT" --region="$REGION" \
  --image="$WORKER_IMAGE" --service-account="$(sa workers)" --scaling="$WORKERS" \
  --set-env-vars="$env_vars,TESTEXEC_PUBSUB_VISIBILITY_SECS=600" \
  --set-secrets="$secrets" --args=worker,--queue,execute --cpu=2 --memory=4Gi

# The sweep: one pass (`testexec sweep`: runs past their deadline are
# finalised), every 5 minutes, as a Cloud Run job started by Cloud Scheduler
# through the Cloud Run Admin API. The scheduler account holds
# roles/run.invoker on this job only: run.jobs.run without overrides (it
# cannot change the job's args or env, as roles/run.developer could, nor
# deploy anything). 8,640 runs of a few seconds a month: within the free tier.
g "run jobs deploy" testexec-sweep --project="$PROJECT" --region="$REGION" --image="$IMAGE" \
  --service-account="$(sa workers)" --max-retries=0 --task-timeout=300 --tasks=1 \
  --set-env-vars="$env_vars" --set-secrets="$secrets" --args=sweep
g "run jobs add-iam-policy-binding" testexec-sweep --project="$PROJECT" --region="$REGION" \
  --member="serviceAccount:$(sa scheduler)" --role=roles/run.invoker
sweep_run="https://run.googleapis.com/v2/projects/$PROJECT/locations/$REGION/jobs/testexec-sweep:run"
sweep=(--project="$PROJECT" --location="$REGION" --schedule="*/5 * * * *" --time-zone=Etc/UTC
  --uri="$sweep_run" --http-method=POST --oauth-service-account-email="$(sa scheduler)"
  --oauth-token-scope=https://www.googleapis.com/auth/cloud-platform)
ok g "scheduler jobs create http" testexec-sweep "${sweep[@]}"
g "scheduler jobs update http" testexec-sweep "${sweep[@]}"

# A nightly run, if asked for: POST /runs with the API token.
if [ -n "${SCHEDULE:-}" ] || $check; then
  url=https://intake.example
  if ! $check; then
    url=$(gcloud run services describe testexec-intake --project="$PROJECT" --region="$REGION" \
      --format='value(status.url)')
  fi
  ok g "scheduler jobs create http" testexec-nightly --project="$PROJECT" --location="$REGION" \
    --schedule="${SCHEDULE:-0 3 * * *}" --uri="$url/runs" --http-method=POST \
    --headers="Content-Type=application/json,Authorization=Bearer ${API_TOKEN:-token}" \
    --message-body="{\"repo\":\"${SCHEDULE_REPO:-owner/name}\",\"ref\":\"main\"}"
fi

if $check && ! $print; then
  echo "deploy --check: $checked gcloud flags exist in $(gcloud version 2>/dev/null | head -n1)"
fi
