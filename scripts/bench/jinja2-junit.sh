#!/usr/bin/env bash
# Produces a real pytest JUnit report (with per-test `file` attributes) from
# the Jinja2 3.1.6 sdist's own test suite, for the shard-planning benchmark.
#
# Output: target/bench/jinja2-junit.xml. Needs python3 (3.8+) and PyPI access.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$root/target/bench"
mkdir -p "$work"
cd "$work"
[ -d venv ] || python3 -m venv venv
./venv/bin/pip install -q --upgrade pip
[ -f jinja2-3.1.6.tar.gz ] || ./venv/bin/pip download -q --no-deps --no-binary :all: jinja2==3.1.6 -d .
./venv/bin/pip install -q ./jinja2-3.1.6.tar.gz pytest trio pytest-split
rm -rf jinja2-3.1.6 && tar xzf jinja2-3.1.6.tar.gz
cd jinja2-3.1.6
# xunit1 keeps the `file` attribute, so timings are keyed by test file.
# `|| true`: a failing test still yields a usable timing report.
../venv/bin/python -m pytest -q -p no:cacheprovider -o junit_family=xunit1 \
  --junitxml="$work/jinja2-junit.xml" tests || true
echo "wrote $work/jinja2-junit.xml"
