#!/usr/bin/env bash
# `testexec serve` intake: POST /runs acknowledgements per second and latency
# percentiles under wrk on loopback, the durable SQLite write included.
#
# Every accepted POST also queues a real trigger (snapshot + plan + shard
# jobs), which runs in the same process while the load is on. Two scenarios:
#   tiny:   the server's repo is a temp dir with a 1-file suite whose command
#           is `true` (writes no JUnit, so each shard ends errored): every
#           acknowledged run is snapshotted, planned, executed, collected
#           and reported in the background, competing for the 2 cores;
#   reject: the body names a suite the manifest does not have, so each
#           trigger fails fast and only records `rejected` (intake cost in
#           isolation, still one extra SQLite write per request).
#
# Needs wrk (apt-get install -y wrk) and a release build of the CLI.
# Usage: scripts/bench/serve-load.sh [DURATION_S] [CONNECTIONS] [PORT]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dur="${1:-15}"
conns="${2:-32}"
port="${3:-18431}"
bin="$root/target/release/testexec"
[ -x "$bin" ] || { echo "build first: cargo build --release -p testexec-cli" >&2; exit 1; }
command -v wrk >/dev/null || { echo "needs wrk (apt-get install -y wrk)" >&2; exit 1; }

work="$(mktemp -d)"
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/repo/tests"
echo 'def test_ok(): pass' > "$work/repo/tests/test_one.py"
cat > "$work/repo/testexec.toml" <<'TOML'
[suites.tiny]
command = ["true", "{junit}", "{files}"]
files = ["tests/test_*.py"]
shards = 1
TOML

run_scenario() {
  local name="$1" body="$2"
  local state="$work/state-$name"
  cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
LUA
  "$bin" serve "$work/repo" --port "$port" --state-dir "$state" 2>"$work/serve-$name.log" &
  server=$!
  for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  echo "== scenario $name: body $body, ${dur}s, $conns connections, 1 wrk thread"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  wrk -t1 -c"$conns" -d"${dur}s" --latency -s "$work/post.lua" "http://127.0.0.1:$port/runs" \
    | tee "$work/wrk-$name.txt"
  echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
  kill "$server"; wait "$server" 2>/dev/null || true; server=""
  # Acknowledged requests are durable: every one is either still queued for
  # the trigger or has a run record (started, finished or rejected).
  python3 - "$state" "$work/wrk-$name.txt" <<'PY'
import re, sqlite3, sys
state, wrk_out = sys.argv[1], sys.argv[2]
queued = sqlite3.connect(f"{state}/queue.sqlite3").execute(
    "SELECT count(*) FROM messages WHERE queue = 'requests'").fetchone()[0]
runs = dict(sqlite3.connect(f"{state}/runs.sqlite3").execute(
    "SELECT status, count(*) FROM runs GROUP BY status").fetchall())
text = open(wrk_out).read()
def dur_ms(s):
    v, u = re.match(r"([\d.]+)(us|ms|s)", s).groups()
    return float(v) * {"us": 1e-3, "ms": 1, "s": 1e3}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
pct = {p: dur_ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", text, re.M)}
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(f"acks/s {rps:.0f}  p50 {pct['50']:.2f} ms  p90 {pct['90']:.2f} ms  p99 {pct['99']:.2f} ms"
      f"  non-2xx {non2xx.group(1) if non2xx else 0}")
print(f"requests still queued {queued}; runs by status {runs} (acknowledged in all {queued + sum(runs.values())})")
if non2xx:
    sys.exit("refused requests: the figures above are not acknowledgements (see the server log)")
PY
}

# The repository is named after its directory (`repo`), as serve names PATH.
run_scenario tiny '{"repo": "repo", "shards": 1}'
run_scenario reject '{"repo": "repo", "suite": "no-such-suite"}'
