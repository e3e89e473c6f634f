#!/usr/bin/env bash
# The whole test suite: installs the test dependencies (Python venvs, the
# jinja2 sdist, chromium, playwright-core, moto, s3s-fs, cargo-lambda),
# starts the AWS emulators and runs every test with nextest.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
eval "$(scripts/test-deps.sh)"
eval "$(scripts/emulators.sh)"
trap 'kill $TESTEXEC_EMULATOR_PIDS 2>/dev/null || true' EXIT
cargo nextest run --workspace --all-features --no-fail-fast "$@"
