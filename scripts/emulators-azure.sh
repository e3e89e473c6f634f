#!/usr/bin/env bash
# Installs (idempotently, into target/test-deps/) and starts azurite, the
# Azure Storage emulator (blobs, queues, tables), on free loopback ports.
# Prints `export` lines (eval them). TESTEXEC_EMULATOR_PIDS, when set by
# scripts/emulators.sh before this runs, is extended with azurite's pid so
# scripts/test.sh stops it with the rest.
#
# In memory (--inMemoryPersistence): nothing is left on disk between runs
# (it cannot be combined with --location). --skipApiVersionCheck: the SDKs
# may speak a newer x-ms-version than this azurite release knows.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
deps="$root/target/test-deps"
mkdir -p "$deps"
log() { echo "emulators-azure: $*" >&2; }

AZURITE_VERSION=3.37.0

prefix="$deps/azurite-$AZURITE_VERSION"
azurite="$prefix/node_modules/.bin/azurite"
if [ ! -x "$azurite" ]; then
  log "installing azurite $AZURITE_VERSION (npm)"
  rm -rf "$prefix" && mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-audit --no-fund --silent "azurite@$AZURITE_VERSION" >&2
fi
[ "${1:-}" != --install-only ] || exit 0

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

blob_port=$(free_port)
queue_port=$(free_port)
table_port=$(free_port)
"$azurite" --silent --skipApiVersionCheck --disableTelemetry --inMemoryPersistence \
  --blobHost 127.0.0.1 --blobPort "$blob_port" \
  --queueHost 127.0.0.1 --queuePort "$queue_port" \
  --tableHost 127.0.0.1 --tablePort "$table_port" \
  >"$deps/azurite.log" 2>&1 &
pid=$!

up() { python3 -c "import socket; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null; }
for _ in $(seq 1 150); do
  if up "$blob_port" && up "$queue_port" && up "$table_port"; then
    break
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    log "azurite exited; its log:"; cat "$deps/azurite.log" >&2; exit 1
  fi
  sleep 0.2
done
if ! (up "$blob_port" && up "$queue_port" && up "$table_port"); then
  log "azurite did not open its ports in 30 s"; cat "$deps/azurite.log" >&2; exit 1
fi

# azurite's well-known development account (public, documented by
# Microsoft; it only ever works against the emulator).
account=devstoreaccount1
key='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
log "azurite on blob $blob_port, queue $queue_port, table $table_port"
echo "export TESTEXEC_TEST_AZURITE_ACCOUNT=$account"
echo "export TESTEXEC_TEST_AZURITE_KEY=$key"
echo "export TESTEXEC_TEST_AZURITE_BLOB=http://127.0.0.1:$blob_port/$account"
echo "export TESTEXEC_TEST_AZURITE_QUEUE=http://127.0.0.1:$queue_port/$account"
echo "export TESTEXEC_TEST_AZURITE_TABLE=http://127.0.0.1:$table_port/$account"
echo "export TESTEXEC_EMULATOR_PIDS=\"${TESTEXEC_EMULATOR_PIDS:-} $pid\""
