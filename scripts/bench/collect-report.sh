#!/usr/bin/env bash
# collect + report at scale: 1,000 shards × 100 test cases through the real
# collect and report handlers over the local backends (release build).
# Prints the bench's timings and the peak RSS from /usr/bin/time -f %M, for
# ROUNDS rounds (default 2) for each collect concurrency in CONCURRENCIES
# (default "1 4": one collector at a time, then four in flight like four
# queue consumers), each round in a fresh temp dir. Removing the temp dir
# (cleanup_s) is reported but not part of any figure.
#
# With TESTEXEC_BACKEND=aws the same run goes over DynamoDB, S3 and SQS on
# moto (built with `--features aws`): each round starts its own moto
# (scripts/emulators.sh --moto-only), so moto's CPU and memory are that
# round's alone, and stops it afterwards. The bench then also prints the
# AWS calls of each phase by operation and moto's CPU per phase. Use one
# collect at a time there (CONCURRENCIES=1): moto 5.2.5's UpdateItem is not
# thread-safe (concurrent updates fail with "dictionary changed size during
# iteration" in its log), and the SDK's retry of a half-applied update then
# finds its shard already counted.
# Usage: [TESTEXEC_BACKEND=aws] scripts/bench/collect-report.sh [ROUNDS] [SHARDS] [CASES_PER_SHARD] [CONCURRENCIES]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
rounds="${1:-2}"
shards="${2:-1000}"
cases="${3:-100}"
concurrencies="${4:-1 4}"
backend="${TESTEXEC_BACKEND:-local}"
cd "$root"
features=()
[ "$backend" = aws ] && features=(--features aws)
# COLLECT_REPORT_BIN: a binary built earlier (the figures of one commit while
# the tree moves on); otherwise this tree's release build.
bin="${COLLECT_REPORT_BIN:-}"
if [ -z "$bin" ]; then
  cargo build -q --release -p testexec-bench "${features[@]}" --bin collect-report
  bin="${CARGO_TARGET_DIR:-target}/release/collect-report"
fi
moto_pid=""
stop_moto() {
  if [ -n "$moto_pid" ]; then
    kill "$moto_pid" 2>/dev/null || true
    # Not our child (emulators.sh started it): poll until it is gone, so
    # the next round's figures are not shared with it.
    for _ in $(seq 50); do kill -0 "$moto_pid" 2>/dev/null || break; sleep 0.2; done
    # A moto busy with a request has been seen to outlive TERM.
    kill -KILL "$moto_pid" 2>/dev/null || true
    moto_pid=""
  fi
}
trap stop_moto EXIT
for c in $concurrencies; do
for r in $(seq "$rounds"); do
  if [ "$backend" = aws ]; then
    eval "$(scripts/emulators.sh --moto-only)"
    moto_pid="$TESTEXEC_TEST_MOTO_PID"
  fi
  echo "== backend $backend concurrency $c round $r  date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  TESTEXEC_BACKEND="$backend" /usr/bin/time -f "peak_rss_kb=%M wall_s=%e" "$bin" "$shards" "$cases" "$c"
  echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
  stop_moto
done
done
