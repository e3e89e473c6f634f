#!/usr/bin/env bash
# The main job: run the demo suite through the local pipeline.
# Exits 1 because the demo holds a deliberately failing test.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
venv="$root/target/demo-venv"
if [ ! -x "$venv/bin/pytest" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'pytest==8.3.5'
fi
cargo build --release -q -p testexec-cli
PATH="$venv/bin:$PATH" exec target/release/testexec run examples/demo "$@"
