#!/usr/bin/env bash
# `testexec serve` intake: POST /runs acknowledgements per second and latency
# percentiles on loopback, the durable SQLite write included.
#
# Three scenarios, each on a fresh state directory:
#   tiny:   the server's repo is a temp dir with a 1-file suite whose command
#           is `true` (writes no JUnit, so each shard ends errored): every
#           acknowledged run is snapshotted, planned, executed, collected
#           and reported in the background, competing for the 2 cores;
#   reject: the body names a suite the manifest does not have, so each
#           trigger fails fast and only records the run as errored;
#   alone:  `serve --jobs 0`: no pipeline at all, requests stay queued
#           (the intake in isolation).
#
# Two ways to load it:
#   default     wrk, closed loop (CONNECTIONS always busy): the most it
#               acknowledges per second, and the latency at saturation;
#   RATE=5000   oha, open loop at that many requests/s with latency
#               correction (no coordinated omission): the latency a client
#               sees at that rate, with oha's histogram.
# BIN=path measures another build (e.g. one copied from an older commit).
#
# Needs wrk (apt-get install -y wrk) or oha (cargo install oha), and a
# release build of the CLI.
# Usage: [RATE=N] [BIN=path] scripts/bench/serve-load.sh [DURATION_S] [CONNECTIONS] [PORT]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dur="${1:-15}"
conns="${2:-32}"
port="${3:-18431}"
rate="${RATE:-}"
bin="${BIN:-$root/target/release/testexec}"
[ -x "$bin" ] || { echo "build first: cargo build --release -p testexec-cli" >&2; exit 1; }
if [ -n "$rate" ]; then
  command -v oha >/dev/null || { echo "RATE needs oha (cargo install oha)" >&2; exit 1; }
else
  command -v wrk >/dev/null || { echo "needs wrk (apt-get install -y wrk)" >&2; exit 1; }
fi

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
  local name="$1" body="$2" jobs="$3"
  local state="$work/state-$name"
  local url="http://127.0.0.1:$port/runs"
  "$bin" serve "$work/repo" --port "$port" --state-dir "$state" ${jobs:+--jobs "$jobs"} \
    2>"$work/serve-$name.log" &
  server=$!
  for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  echo "== scenario $name: body $body${jobs:+, --jobs $jobs}, ${dur}s, $conns connections, ${rate:-closed loop (wrk)}${rate:+ requests/s (oha)}"
  echo "binary: $bin"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  if [ -n "$rate" ]; then
    # -w: requests in flight at the deadline are waited for, not counted as
    # errors.
    oha -z "${dur}s" -w -q "$rate" --latency-correction -c "$conns" --no-tui -m POST \
      -H "Content-Type: application/json" -d "$body" --output-format json "$url" \
      >"$work/load-$name.out"
  else
    cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
LUA
    wrk -t1 -c"$conns" -d"${dur}s" --latency -s "$work/post.lua" "$url" >"$work/load-$name.out"
  fi
  echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
  kill "$server"; wait "$server" 2>/dev/null || true; server=""
  # Acknowledged requests are durable: every one is either still queued for
  # the trigger or has a run record (started, finished or rejected).
  python3 - "$state" "$work/load-$name.out" <<'PY'
import json, re, sqlite3, sys
state, out = sys.argv[1], sys.argv[2]
queued = sqlite3.connect(f"{state}/queue.sqlite3").execute(
    "SELECT count(*) FROM messages WHERE queue = 'requests'").fetchone()[0]
runs = dict(sqlite3.connect(f"{state}/runs.sqlite3").execute(
    "SELECT status, count(*) FROM runs GROUP BY status").fetchall())
text = open(out).read()
if text.lstrip().startswith("{"):  # oha
    d = json.loads(text)
    ms = {k: v * 1e3 for k, v in d["latencyPercentiles"].items()}
    rps = d["summary"]["requestsPerSec"]
    refused = sum(n for code, n in d["statusCodeDistribution"].items() if code != "202")
    refused += sum(d["errorDistribution"].values())
    print(f"acks/s {rps:.0f}  p50 {ms['p50']:.2f}  p90 {ms['p90']:.2f}  p99 {ms['p99']:.2f}"
          f"  p99.9 {ms['p99.9']:.2f}  max {d['summary']['slowest'] * 1e3:.2f} ms  not 202: {refused}")
    print("histogram (ms: count):", ", ".join(
        f"{float(k) * 1e3:.1f}: {v}" for k, v in d["responseTimeHistogram"].items()))
else:  # wrk
    def dur_ms(s):
        v, u = re.match(r"([\d.]+)(us|ms|s)", s).groups()
        return float(v) * {"us": 1e-3, "ms": 1, "s": 1e3}[u]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    pct = {p: dur_ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", text, re.M)}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    refused = int(m.group(1)) if m else 0
    print(f"acks/s {rps:.0f}  p50 {pct['50']:.2f} ms  p90 {pct['90']:.2f} ms  p99 {pct['99']:.2f} ms"
          f"  non-2xx {refused}")
print(f"requests still queued {queued}; runs by status {runs} (acknowledged in all {queued + sum(runs.values())})")
if refused:
    sys.exit("refused requests: the figures above are not acknowledgements (see the server log)")
PY
}

# The repository is named after its directory (`repo`), as serve names PATH.
run_scenario tiny '{"repo": "repo", "shards": 1}' ""
run_scenario reject '{"repo": "repo", "suite": "no-such-suite"}' ""
run_scenario alone '{"repo": "repo", "shards": 1}' 0
