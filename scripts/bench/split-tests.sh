#!/usr/bin/env bash
# Test-level splits on two real pytest suites whose largest file holds more
# than 1/8 of the time: jinja2 3.1.6 (tests/test_core_tags.py, test_filters.py,
# test_async.py) and more-itertools 10.5.0 (tests/test_more.py, ~3/4 of it).
#
# For each suite, at 8 shards run one at a time (`--jobs 1`, so each shard's
# wall is its own), `testexec run` with `split_by_test = false` and `= true`,
# after one run that records the timing history; plus plain pytest for the
# totals. Prints the longest shard's wall per mode (median of RUNS), the
# ratio, and checks that the totals equal plain pytest's.
#
# Creates what it needs under target/bench/split/ (a venv with pinned pytest,
# trio and markupsafe; both sdists unpacked). Needs python3 and PyPI access.
#
# Usage: scripts/bench/split-tests.sh [RUNS]   (default 3)
#        TESTEXEC_BIN=target/release/testexec scripts/bench/split-tests.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
runs="${1:-3}"
work="$root/target/bench/split"
bin="${TESTEXEC_BIN:-$root/target/debug/testexec}"
mkdir -p "$work"
log() { echo "split-tests: $*" >&2; }

[ -x "$bin" ] || { echo "build first: cargo build -p testexec-cli (or set TESTEXEC_BIN)" >&2; exit 1; }

if [ ! -f "$work/venv-ok" ]; then
  log "creating the bench venv"
  rm -rf "$work/venv"
  python3 -m venv "$work/venv"
  "$work/venv/bin/pip" install -q --disable-pip-version-check \
    'pytest==8.3.5' 'trio==0.30.0' 'markupsafe>=2.0' >&2
  touch "$work/venv-ok"
fi
fetch() { # name version
  if [ ! -f "$work/$1-ok" ]; then
    log "fetching the $1 $2 sdist"
    rm -rf "${work:?}/$1" && mkdir -p "$work/$1"
    "$work/venv/bin/pip" download -q --disable-pip-version-check --no-deps \
      --no-binary :all: "$1==$2" -d "$work/$1" >&2
    tar -xzf "$work/$1"/*.tar.gz -C "$work/$1"
    touch "$work/$1-ok"
  fi
}
fetch jinja2 3.1.6
fetch more-itertools 10.5.0
# jinja2's tests import the installed package; more-itertools' run from its tree.
"$work/venv/bin/pip" install -q --disable-pip-version-check --no-deps "$work/jinja2/jinja2-3.1.6" >&2

exec python3 "$root/scripts/bench/split_tests.py" --bin "$bin" --venv "$work/venv" \
  --work "$work" --runs "$runs" \
  --suite "jinja2=$work/jinja2/jinja2-3.1.6" \
  --suite "more-itertools=$work/more-itertools/more-itertools-10.5.0"
