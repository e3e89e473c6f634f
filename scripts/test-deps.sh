#!/usr/bin/env bash
# Installs what the test suite needs beyond Rust, idempotently, into
# target/test-deps/ (reused by later runs on the same machine):
#   - a Python venv with pytest (+ trio) for the demo and the jinja2 end-to-end;
#   - the jinja2 3.1.6 sdist, unpacked (a real third-party suite);
#   - Debian chromium and npm playwright-core for the browser checks.
# Prints the environment variables the tests read.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
deps="$root/target/test-deps"
mkdir -p "$deps"

log() { echo "test-deps: $*" >&2; }

# Python venv with pinned test tools.
if [ ! -x "$deps/venv/bin/pytest" ] || [ ! -x "$deps/venv-notrio/bin/pytest" ]; then
  log "creating Python venvs"
  python3 -m venv "$deps/venv"
  "$deps/venv/bin/pip" install -q --disable-pip-version-check 'pytest==8.3.5' 'trio==0.30.0' >&2
  # A second venv without trio: jinja2's async tests then fail to collect,
  # which is the realistic errored-shard case.
  python3 -m venv "$deps/venv-notrio"
  "$deps/venv-notrio/bin/pip" install -q --disable-pip-version-check 'pytest==8.3.5' >&2
fi

# jinja2 sdist (the tests ship in the sdist, not the wheel).
if [ ! -f "$deps/jinja2/Jinja2-ok" ]; then
  log "fetching the jinja2 3.1.6 sdist"
  rm -rf "$deps/jinja2" && mkdir -p "$deps/jinja2"
  "$deps/venv/bin/pip" download -q --disable-pip-version-check --no-deps --no-binary :all: jinja2==3.1.6 -d "$deps/jinja2" >&2
  tar -xzf "$deps"/jinja2/jinja2-3.1.6.tar.gz -C "$deps/jinja2"
  # The suite imports the installed package (src/ layout): install the
  # sdist itself, with its dependency markupsafe, into both venvs.
  "$deps/venv/bin/pip" install -q --disable-pip-version-check "$deps/jinja2/jinja2-3.1.6.tar.gz" >&2
  "$deps/venv-notrio/bin/pip" install -q --disable-pip-version-check "$deps/jinja2/jinja2-3.1.6.tar.gz" >&2
  touch "$deps/jinja2/Jinja2-ok"
fi

# Browser: Debian chromium + playwright-core (no browser download).
if ! command -v chromium >/dev/null 2>&1; then
  log "installing chromium (apt)"
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) >&2
  else
    log "not root: install chromium yourself (apt-get install chromium)"
  fi
fi
if [ ! -d "$deps/node/node_modules/playwright-core" ]; then
  log "installing playwright-core (npm)"
  mkdir -p "$deps/node"
  (cd "$deps/node" && npm init -y >/dev/null 2>&1 && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --silent --no-audit --no-fund playwright-core@1 >&2)
fi

echo "export TESTEXEC_TEST_PYTHON_BIN=$deps/venv/bin"
echo "export TESTEXEC_TEST_PYTHON_NOTRIO_BIN=$deps/venv-notrio/bin"
echo "export TESTEXEC_TEST_JINJA2_DIR=$deps/jinja2/jinja2-3.1.6"
echo "export TESTEXEC_TEST_NODE_MODULES=$deps/node/node_modules"
echo "export TESTEXEC_TEST_CHROMIUM=$(command -v chromium || echo /usr/bin/chromium)"
echo "export TESTEXEC_REQUIRE_E2E=1"
