#!/usr/bin/env bash
# Installs (idempotently, into target/test-deps/) and starts the AWS
# emulators the tests run against, each on a free loopback port:
#   - moto server: DynamoDB, SQS and S3 (does not check request signatures);
#   - s3s-fs: an S3 server that does check SigV4, for the S3 backend's tests
#     and its presigned URLs.
# Also installs cargo-lambda (+ zig) for the Lambda end-to-end.
# Prints `export` lines (eval them); TESTEXEC_EMULATOR_PIDS lists what to
# kill afterwards (scripts/test.sh does). `--install-only` installs every
# emulator (AWS, Azure, GCP) and starts none: CI does that while it builds.
# `--moto-only` installs and starts moto alone (the AWS benchmarks need
# nothing else, and the other emulators would take memory and CPU from the
# measured run on a shared machine).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
deps="$root/target/test-deps"
mkdir -p "$deps"
log() { echo "emulators: $*" >&2; }

MOTO_VERSION=5.2.5
CARGO_LAMBDA_VERSION=1.9.2
ZIG_VERSION=0.15.1
S3S_FS_VERSION=0.14.1

venv="$deps/venv-aws"
if [ ! -f "$venv/ok-$MOTO_VERSION-$CARGO_LAMBDA_VERSION" ]; then
  log "installing moto $MOTO_VERSION, cargo-lambda $CARGO_LAMBDA_VERSION (pip)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check \
    "moto[server]==$MOTO_VERSION" "cargo-lambda==$CARGO_LAMBDA_VERSION" "ziglang==$ZIG_VERSION" >&2
  touch "$venv/ok-$MOTO_VERSION-$CARGO_LAMBDA_VERSION"
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # name port pid
  for _ in $(seq 1 150); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$2),0.2)" 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$3" 2>/dev/null; then
      log "$1 exited; its log:"; cat "$deps/$1.log" >&2; exit 1
    fi
    sleep 0.2
  done
  log "$1 did not open port $2 in 30 s"; cat "$deps/$1.log" >&2; exit 1
}

start_moto() {
  moto_port=$(free_port)
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$deps/moto.log" 2>&1 &
  moto_pid=$!
  wait_port moto "$moto_port" "$moto_pid"
}

if [ "${1:-}" = --moto-only ]; then
  start_moto
  log "moto on $moto_port"
  echo "export TESTEXEC_TEST_MOTO_ENDPOINT=http://127.0.0.1:$moto_port"
  echo "export TESTEXEC_TEST_MOTO_PID=$moto_pid"
  echo "export TESTEXEC_EMULATOR_PIDS=\"$moto_pid\""
  exit 0
fi

s3s="$deps/cargo/bin/s3s-fs"
if [ ! -x "$s3s" ]; then
  log "building s3s-fs $S3S_FS_VERSION (cargo install)"
  cargo install -q "s3s-fs@$S3S_FS_VERSION" --locked --features binary --root "$deps/cargo" >&2
fi
if [ "${1:-}" = --install-only ]; then
  "$root/scripts/emulators-azure.sh" --install-only
  "$root/scripts/emulators-gcp.sh" --install-only
  exit 0
fi

start_moto

s3s_port=$(free_port)
s3s_root="$deps/s3s-root"
rm -rf "$s3s_root" && mkdir -p "$s3s_root"
s3s_key=testexec-access-key
s3s_secret=testexec-secret-key-for-sigv4
"$s3s" --host 127.0.0.1 --port "$s3s_port" --access-key "$s3s_key" --secret-key "$s3s_secret" "$s3s_root" >"$deps/s3s.log" 2>&1 &
s3s_pid=$!
wait_port s3s "$s3s_port" "$s3s_pid"

log "moto on $moto_port, s3s-fs on $s3s_port"
echo "export TESTEXEC_TEST_MOTO_ENDPOINT=http://127.0.0.1:$moto_port"
echo "export TESTEXEC_TEST_S3S_ENDPOINT=http://127.0.0.1:$s3s_port"
echo "export TESTEXEC_TEST_S3S_ROOT=$s3s_root"
echo "export TESTEXEC_TEST_S3S_ACCESS_KEY=$s3s_key"
echo "export TESTEXEC_TEST_S3S_SECRET_KEY=$s3s_secret"
echo "export TESTEXEC_TEST_CARGO_LAMBDA=$venv/bin/cargo-lambda"
echo "export PATH=$venv/bin:\$PATH"
echo "export TESTEXEC_EMULATOR_PIDS=\"$moto_pid $s3s_pid\""
TESTEXEC_EMULATOR_PIDS="$moto_pid $s3s_pid" "$root/scripts/emulators-azure.sh"
"$root/scripts/emulators-gcp.sh" # Pub/Sub, Firestore, fake-gcs-server: appends its exports and pids
