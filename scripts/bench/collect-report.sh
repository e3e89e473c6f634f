#!/usr/bin/env bash
# collect + report at scale: 1,000 shards × 100 test cases through the real
# collect and report handlers over the local backends (release build).
# Prints the bench's timings and the peak RSS from /usr/bin/time -f %M, for
# ROUNDS rounds (default 3), each in a fresh temp dir.
# Usage: scripts/bench/collect-report.sh [ROUNDS] [SHARDS] [CASES_PER_SHARD]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
rounds="${1:-3}"
shards="${2:-1000}"
cases="${3:-100}"
cd "$root"
cargo build -q --release -p testexec-bench --bin collect-report
for r in $(seq "$rounds"); do
  echo "== round $r  date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  /usr/bin/time -f "peak_rss_kb=%M wall_s=%e" target/release/collect-report "$shards" "$cases"
  echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
done
