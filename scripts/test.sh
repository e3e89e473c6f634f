#!/usr/bin/env bash
# The whole test suite: installs the test dependencies (Python venvs, the
# jinja2 sdist, chromium, playwright-core) and runs every test with nextest.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
eval "$(scripts/test-deps.sh)"
cargo nextest run --workspace --all-features --no-fail-fast "$@"
