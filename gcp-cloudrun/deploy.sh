#!/usr/bin/env bash
# testexec on Google Cloud: Firestore, Cloud Storage, Pub/Sub, Cloud Run.
# See docs/deploy-gcp.md for what this builds and why.
#
#   gcp-cloudrun/deploy.sh            # create or update everything (idempotent)
#   gcp-cloudrun/deploy.sh --check    # offline: every gcloud command and flag
#                                     # used below exists in the installed gcloud
#
# Settings (environment):
#   PROJECT          project id (required)
#   REGION           Cloud Run / Firestore / bucket region (default us-central1)
#   IMAGE            the host image (Dockerfile, built with FEATURES=gcp)
#   WORKER_IMAGE     the worker image: the host plus your test toolchain
#                    (default: IMAGE)
#   BUCKET           report/log bucket (default PROJECT-testexec)
#   WORKERS          worker pool instances (default 1; 0 stops all pulling)
#   API_TOKEN        bearer token for POST /runs (>= 16 chars; stored in
#                    Secret Manager, never echoed)
#   WEBHOOK_SECRET   the GitHub App's webhook secret (Secret Manager)
#   GITHUB_APP_ID    the GitHub App's id
#   GITHUB_APP_KEY_FILE  the App's private key (PEM file; Secret Manager)
#   SCHEDULE         cron for a nightly run of SCHEDULE_REPO (optional)
#   SCHEDULE_REPO    owner/name the schedule runs
set -euo pipefail

check=false
[ "${1:-}" = "--check" ] && check=true

# `g "<command path>" ARGS...`: runs gcloud, or in --check mode verifies that
# the command exists and that its help names every --flag used.
checked=0
g() {
  local path="$1"; shift
  if ! $check; then
    # shellcheck disable=SC2086
    gcloud $path "$@"
    return
  fi
  local help
  # shellcheck disable=SC2086
  if ! help=$(gcloud $path --help 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' | col -b); then
    echo "deploy --check: no command \`gcloud $path\`" >&2; exit 1
  fi
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

g "services enable" run.googleapis.com pubsub.googleapis.com firestore.googleapis.com \
  storage.googleapis.com secretmanager.googleapis.com cloudscheduler.googleapis.com \
  iam.googleapis.com iamcredentials.googleapis.com --project="$PROJECT"

# One least-privilege account per role: intake (public front door) and
# workers (the four handlers).
for role in intake workers; do
  ok g "iam service-accounts create" "testexec-$role" --project="$PROJECT" \
    --description="testexec $role"
done

# Firestore (native mode); claims expire through a TTL policy on expires_at.
ok g "firestore databases create" --project="$PROJECT" --location="$REGION" \
  --type=firestore-native
g "firestore fields ttls update" expires_at --collection-group="${PREFIX}_deliveries" \
  --enable-ttl --project="$PROJECT" --async
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

# Per queue: topic, pull subscription with a dead-letter policy, dead-letter
# topic with a subscription (forwarded messages are kept 7 days there).
for q in $QUEUES; do
  ok g "pubsub topics create" "$PREFIX-$q" --project="$PROJECT"
  ok g "pubsub topics create" "$PREFIX-$q-dlq" --project="$PROJECT"
  ok g "pubsub subscriptions create" "$PREFIX-$q-dlq-sub" --project="$PROJECT" \
    --topic="$PREFIX-$q-dlq" --ack-deadline=60
  ok g "pubsub subscriptions create" "$PREFIX-$q-sub" --project="$PROJECT" \
    --topic="$PREFIX-$q" --ack-deadline=600 \
    --dead-letter-topic="$PREFIX-$q-dlq" --max-delivery-attempts=5
  # Pub/Sub's own agent forwards dead letters: it must publish there and
  # acknowledge on the source subscription.
  g "pubsub topics add-iam-policy-binding" "$PREFIX-$q-dlq" --project="$PROJECT" \
    --member="$pubsub_agent" --role=roles/pubsub.publisher
  g "pubsub subscriptions add-iam-policy-binding" "$PREFIX-$q-sub" --project="$PROJECT" \
    --member="$pubsub_agent" --role=roles/pubsub.subscriber
  g "pubsub subscriptions add-iam-policy-binding" "$PREFIX-$q-sub" --project="$PROJECT" \
    --member="serviceAccount:$(sa workers)" --role=roles/pubsub.subscriber
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

# The intake: webhooks and POST /runs, answered at once (queued); no
# workers, so it scales to zero between requests.
g "run deploy" testexec-intake --project="$PROJECT" --region="$REGION" --image="$IMAGE" \
  --service-account="$(sa intake)" --allow-unauthenticated --ingress=all \
  --min-instances=0 --max-instances=10 --concurrency=40 --timeout=60 \
  --set-env-vars="$env_vars" --set-secrets="$secrets" --args=serve,--jobs,0

# The workers: a worker pool (no ingress) pulling the four queues, renewing
# each lease every 200 s, so a shard of any length runs once. Scale with
# WORKERS (manual instance count; 0 when idle costs nothing).
g "beta run worker-pools deploy" testexec-workers --project="$PROJECT" --region="$REGION" \
  --image="$WORKER_IMAGE" --service-account="$(sa workers)" --scaling="$WORKERS" \
  --set-env-vars="$env_vars,TESTEXEC_BIND=127.0.0.1,TESTEXEC_PUBSUB_VISIBILITY_SECS=600" \
  --set-secrets="$secrets" --args=serve,--jobs,2 --cpu=2 --memory=4Gi

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

if $check; then
  echo "deploy --check: $checked gcloud flags exist in $(gcloud version 2>/dev/null | head -n1)"
fi
