#!/usr/bin/env bash
# Cold start of the container host (the Cloud Run / Container Apps image's
# process): spawn -> first answered GET /healthz, and its peak RSS then,
# with scripts/bench/container_start.py. Beside the Lambda functions' init
# (scripts/bench/lambda.sh) in docs/benchmarks.md.
#
#   scripts/bench/container-start.sh [RUNS]     # default 30
#
# Builds the image's binary as the Dockerfile does (release profile,
# FEATURES=gcp) unless SKIP_BUILD=1, then measures
#   a. `serve --backend local --jobs 0` (embedded stores: the floor);
#   b. `serve --backend gcp --jobs 0 --queue-push` against the Pub/Sub and
#      Firestore emulators and fake-gcs-server (the Cloud Run handlers
#      service's process; clients built, no request made yet).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
runs="${1:-30}"
target="${CARGO_TARGET_DIR:-$root/target}"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release --locked -p testexec-cli --features gcp --bin testexec >&2
fi
bin="$target/release/testexec"
scratch="$(mktemp -d)"
trap 'kill ${TESTEXEC_EMULATOR_PIDS:-} 2>/dev/null || true; rm -rf "$scratch"' EXIT

echo "local:"
python3 scripts/bench/container_start.py "$bin" "$runs" -- \
  --backend local --jobs 0 --state-dir "$scratch/local"

eval "$(scripts/emulators.sh)"
echo "gcp (emulators):"
GOOGLE_CLOUD_PROJECT=testexec-bench TESTEXEC_GCS_BUCKET=testexec-bench \
  TESTEXEC_PUBSUB_PREFIX=bench \
  python3 scripts/bench/container_start.py "$bin" "$runs" -- \
  --backend gcp --jobs 0 --queue-push --state-dir "$scratch/gcp"
