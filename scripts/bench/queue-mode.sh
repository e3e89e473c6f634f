#!/usr/bin/env bash
# Queue mode vs the static plan at 8 workers on a 96-file suite of sleeping
# tests, with (a) no timing history and (b) a history whose per-file times
# are then off by ±50 %: execution makespan and its ratio to the ideal.
# See scripts/bench/queue_mode.py. Needs python3.
#
# Usage: scripts/bench/queue-mode.sh [SEEDS [DRIVER ARGS...]]   (default 3;
#        e.g. `3 --only-b --modes queue-k1,queue,queue-k4`, see queue_mode.py)
#        TESTEXEC_BIN=target/release/testexec scripts/bench/queue-mode.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${TESTEXEC_BIN:-$root/target/debug/testexec}"
[ -x "$bin" ] || { echo "build first: cargo build -p testexec-cli (or set TESTEXEC_BIN)" >&2; exit 1; }
mkdir -p "$root/target/bench/queue-mode"
exec python3 "$root/scripts/bench/queue_mode.py" --bin "$bin" \
  --runner "$root/shared/tests/fixtures/fake-suite/runner.py" \
  --work "$root/target/bench/queue-mode" --seeds "${1:-3}" "${@:2}"
