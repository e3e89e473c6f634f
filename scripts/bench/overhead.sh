#!/usr/bin/env bash
# Orchestration overhead: `testexec run --shards 2` on the jinja2 3.1.6 test
# suite against plain `pytest` (serial) and `pytest -n 2` (pytest-xdist) on
# the same tree, with hyperfine. Prints hyperfine's table, the medians and
# the ratios testexec/serial and testexec/xdist.
#
# Creates what it needs under target/bench/overhead/ (venv with pinned pytest,
# trio, markupsafe, pytest-xdist; the jinja2 sdist unpacked). Needs python3,
# PyPI access, hyperfine (apt-get install -y hyperfine) and a release build
# of the CLI (cargo build --release -p testexec-cli).
#
# Usage: scripts/bench/overhead.sh [RUNS] (default 10 timed runs per command).
# Every testexec round gets a fresh --state-dir (no timing history, no
# previous runs): hyperfine's --prepare removes it before each run.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
runs="${1:-10}"
work="$root/target/bench/overhead"
bin="$root/target/release/testexec"
mkdir -p "$work"
log() { echo "overhead: $*" >&2; }

[ -x "$bin" ] || { echo "build first: cargo build --release -p testexec-cli" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install -y hyperfine)" >&2; exit 1; }

if [ ! -f "$work/venv-ok" ]; then
  log "creating the bench venv"
  rm -rf "$work/venv"
  python3 -m venv "$work/venv"
  "$work/venv/bin/pip" install -q --disable-pip-version-check \
    'pytest==8.3.5' 'trio==0.30.0' 'pytest-xdist==3.6.1' 'markupsafe>=2.0' >&2
  touch "$work/venv-ok"
fi
if [ ! -f "$work/jinja2-ok" ]; then
  log "fetching the jinja2 3.1.6 sdist"
  rm -rf "$work/jinja2" && mkdir -p "$work/jinja2"
  "$work/venv/bin/pip" download -q --disable-pip-version-check --no-deps \
    --no-binary :all: jinja2==3.1.6 -d "$work/jinja2" >&2
  tar -xzf "$work/jinja2/jinja2-3.1.6.tar.gz" -C "$work/jinja2"
  # Installed into the venv (testexec passes PATH, not PYTHONPATH, to shards).
  "$work/venv/bin/pip" install -q --disable-pip-version-check --no-deps \
    "$work/jinja2/jinja2-3.1.6.tar.gz" >&2
  touch "$work/jinja2-ok"
fi
tree="$work/jinja2/jinja2-3.1.6"
cat > "$tree/testexec.toml" <<'TOML'
[suites.jinja2]
command = ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml={junit}", "{files}"]
files = ["tests/test_*.py"]
TOML

export PATH="$work/venv/bin:$PATH"
state="$work/state"
cd "$tree"

# One untimed check that every variant works on this tree.
python -m pytest -q -p no:cacheprovider tests >/dev/null 2>&1 || log "note: serial pytest exits non-zero"
rm -rf "$state"; "$bin" run . --shards 2 --state-dir "$state" >/dev/null 2>&1 \
  || log "note: testexec run exits non-zero"

echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  load before: $(cut -d' ' -f1-3 /proc/loadavg)"
hyperfine --warmup 1 --runs "$runs" -i --export-json "$work/hyperfine.json" \
  -n serial "python -m pytest -q -p no:cacheprovider tests" \
  -n xdist2 "python -m pytest -q -p no:cacheprovider -n 2 tests" \
  -n testexec2 --prepare "rm -rf $state" "$bin run . --shards 2 --state-dir $state"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$work/hyperfine.json" <<'PY'
import json, statistics, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
med = {k: statistics.median(v["times"]) for k, v in res.items()}
for k, v in med.items():
    print(f"median {k}: {v:.3f} s  (min {min(res[k]['times']):.3f}, max {max(res[k]['times']):.3f}, n={len(res[k]['times'])})")
print(f"ratio testexec2/serial: {med['testexec2'] / med['serial']:.2f}")
print(f"ratio testexec2/xdist2: {med['testexec2'] / med['xdist2']:.2f}")
PY
