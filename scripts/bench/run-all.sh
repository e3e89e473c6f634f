#!/usr/bin/env bash
# One run of every shard-planning benchmark; figures in docs/benchmarks.md
# come from this script's output (target/bench/results.txt).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
out=target/bench/results.txt
scripts/bench/jinja2-junit.sh
cargo build -q --release -p testexec-cli
{
  echo "# $(date -u +%FT%TZ) $(uname -m), $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "## plan quality"
  target/bench/venv/bin/python scripts/bench/plan_quality.py target/release/testexec \
    jest=fixtures/junit/dorny-jest-test-results.xml \
    eclipse=fixtures/junit/jenkins-eclipse-plugin-test-report.xml \
    jinja2=target/bench/jinja2-junit.xml
  echo "## planning speed and the improvement pass"
  cargo bench -q -p testexec-shared --bench plan -- \
    "$root"/target/bench/durations-jest.json "$root"/target/bench/durations-eclipse.json "$root"/target/bench/durations-jinja2.json
} 2>&1 | tee "$out"
