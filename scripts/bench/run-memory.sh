#!/usr/bin/env bash
# Peak RSS of `testexec run` on a generated suite (docs/benchmarks.md,
# "(i) memory of run, collect and report").
#   million: one shard whose runner writes 1,000,000 test cases (~55 MB of
#            JUnit: 1 % failing with a short message, the rest passing);
#   bigout:  one shard whose runner writes 10 cases, one of them with a
#            300 MB <system-out> (and a 1 MB failure message attribute).
# The "runner" is a small Python script that writes the JUnit file straight
# to {junit}; no test framework is involved, so what is measured is
# testexec's own cost (execute, collect, report, in one process).
# Usage: scripts/bench/run-memory.sh MODE [TESTEXEC_BINARY]
set -euo pipefail
mode="${1:?usage: run-memory.sh million|bigout [testexec binary]}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${2:-$root/target/release/testexec}"
repo="$(mktemp -d)"
trap 'rm -rf "$repo"' EXIT
cat > "$repo/gen.py" <<'PY'
import sys
out, mode = sys.argv[1], sys.argv[2]
with open(out, "w", buffering=1 << 20) as f:
    f.write('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites>\n<testsuite name="gen">\n')
    if mode == "million":
        ok = '<testcase classname="pkg.mod" name="t%07d" time="0.001"/>\n'
        bad = '<testcase classname="pkg.mod" name="t%07d" time="0.002"><failure message="boom"/></testcase>\n'
        for i in range(1_000_000):
            f.write((bad if i % 100 == 0 else ok) % i)
    else:
        for i in range(9):
            f.write('<testcase classname="pkg.mod" name="t%d" time="0.001"/>\n' % i)
        f.write('<testcase classname="pkg.mod" name="big" time="1.0"><failure message="%s">short</failure><system-out>' % ("m" * (1 << 20)))
        line = "log line with &amp; an entity and some text to fill the output\n" * 1000
        for _ in range(300 * (1 << 20) // len(line)):
            f.write(line)
        f.write("</system-out></testcase>\n")
    f.write("</testsuite>\n</testsuites>\n")
PY
cat > "$repo/testexec.toml" <<TOML
[suites.gen]
command = ["python3", "gen.py", "{junit}", "$mode", "{files}"]
files = ["gen.py"]
timeout_seconds = 600
TOML
echo "== $mode  binary: $bin  date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
set +e
/usr/bin/time -f "peak_rss_kb=%M wall_s=%e" "$bin" run "$repo" > "$repo/run.out" 2>&1
code=$?
set -e
tail -n 4 "$repo/run.out"
echo "exit=$code"
find "$repo/.testexec" \( -name report.json -o -name index.html -o -name 'cases*' \) -printf "%f %s bytes\n" 2>/dev/null || true
