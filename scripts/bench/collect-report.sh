#!/usr/bin/env bash
# collect + report at scale: 1,000 shards × 100 test cases through the real
# collect and report handlers over the local backends (release build).
# Prints the bench's timings and the peak RSS from /usr/bin/time -f %M, for
# ROUNDS rounds (default 2) for each collect concurrency in CONCURRENCIES
# (default "1 4": one collector at a time, then four in flight like four
# queue consumers), each round in a fresh temp dir. Removing the temp dir
# (cleanup_s) is reported but not part of any figure.
# Usage: scripts/bench/collect-report.sh [ROUNDS] [SHARDS] [CASES_PER_SHARD] [CONCURRENCIES]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
rounds="${1:-2}"
shards="${2:-1000}"
cases="${3:-100}"
concurrencies="${4:-1 4}"
cd "$root"
cargo build -q --release -p testexec-bench --bin collect-report
for c in $concurrencies; do
for r in $(seq "$rounds"); do
  echo "== concurrency $c round $r  date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  /usr/bin/time -f "peak_rss_kb=%M wall_s=%e" target/release/collect-report "$shards" "$cases" "$c"
  echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
done
done
