#!/usr/bin/env bash
# Checks k8s/ offline (.ci/run runs it):
#   1. `kubectl kustomize` renders the base and each overlay;
#   2. every rendered manifest against the Kubernetes API schemas
#      (PyPI kubernetes-validate, schemas bundled, --strict: unknown fields
#      fail), for the oldest and newest Kubernetes versions we support;
#   3. KEDA's ScaledJob and TriggerAuthentication against KEDA's CRD
#      schemas (npm @kubernetes-models/keda);
#   4. checkov's Kubernetes checks on each rendering;
#   5. each check is shown to fail on a planted mistake, so a green run
#      means the checks looked.
# Tools: scripts/test-deps.sh (kubernetes-validate, the KEDA models),
# scripts/validate-template.sh (checkov) and the machine image (kubectl,
# whose built-in kustomize renders the overlays).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
log() { echo "validate-k8s: $*" >&2; }
eval "$(scripts/test-deps.sh)"
command -v kubectl >/dev/null 2>&1 || { log "kubectl not found (it ships kustomize)"; exit 1; }
py="$TESTEXEC_TEST_OPS_VENV/bin/python"
validate="$TESTEXEC_TEST_OPS_VENV/bin/kubernetes-validate"
# checkov's venv comes from scripts/validate-template.sh, which .ci/run runs first.
checkov="$root/target/test-deps/venv-checkov/bin/checkov"
[ -x "$checkov" ] || { log "no checkov: run scripts/validate-template.sh first (it installs it)"; exit 1; }
export BC_SKIP_MAPPING=TRUE # checkov: no download of the Bridgecrew mapping

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# keda_docs RENDERED OUT.json: the KEDA documents of a rendering, as JSON.
keda_docs() {
  "$py" - "$1" "$2" <<'PY'
import json, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
keda = [d for d in docs if d.get("apiVersion", "").startswith("keda.sh/")]
json.dump(keda, open(sys.argv[2], "w"))
PY
}

# api_schemas FILE: the Kubernetes API schemas, oldest and newest version
# we support. The KEDA kinds have none here (keda_schemas checks them):
# their "no schema" warnings are expected; any other output fails.
api_schemas() {
  for version in 1.29.0 1.32.0; do
    "$validate" --strict --quiet -k "$version" "$1" 2>&1 \
      | grep -v "Couldn't find schema for kind \(ScaledJob\|TriggerAuthentication\) with api version keda.sh/v1alpha1" \
      >"$tmp/validate.out" || true
    if [ -s "$tmp/validate.out" ]; then
      cat "$tmp/validate.out" >&2
      return 1
    fi
  done
}

# keda_schemas FILE: the KEDA documents against KEDA's CRD schemas.
keda_schemas() {
  keda_docs "$1" "$tmp/keda.json"
  node scripts/k8s-keda-validate.mjs "$TESTEXEC_TEST_KEDA_MODELS" "$tmp/keda.json" >&2
}

# checkov_k8s FILE...: checkov's Kubernetes checks, one run for all files.
checkov_k8s() {
  local args=()
  for f in "$@"; do args+=(-f "$f"); done
  "$checkov" "${args[@]}" --framework kubernetes --quiet --compact --skip-download >&2
}

failures=0
rendered=()
for target in base overlays/staging overlays/production; do
  out="$tmp/$(echo "$target" | tr / -).yaml"
  kubectl kustomize "k8s/$target" >"$out"
  rendered+=("$out")
  if api_schemas "$out" && keda_schemas "$out" >/dev/null 2>&1; then
    echo "-- k8s/$target: $(grep -c '^kind:' "$out") resources, schemas ok (Kubernetes 1.29, 1.32; KEDA)"
  else
    keda_schemas "$out" || true
    echo "FAIL: k8s/$target" >&2
    failures=$((failures + 1))
  fi
done
echo "-- checkov (kubernetes) on the three renderings"
checkov_k8s "${rendered[@]}" || failures=$((failures + 1))

# Planted mistakes: each must be caught by its check.
echo "-- planted mistakes are caught"
base="$tmp/base.yaml"
sed 's/^  replicas: 2$/  replicas: "two"/' "$base" >"$tmp/bad-type.yaml"
sed "s/readinessProbe:/readinesProbe:/" "$base" >"$tmp/bad-field.yaml"
sed 's/^  pollingInterval: 10$/  pollingInterval: often/' "$base" >"$tmp/bad-keda.yaml"
sed 's/readOnlyRootFilesystem: true/readOnlyRootFilesystem: false/' "$base" >"$tmp/bad-security.yaml"
for planted in bad-type:api_schemas bad-field:api_schemas bad-keda:keda_schemas bad-security:checkov_k8s; do
  name=${planted%%:*} check=${planted#*:}
  if cmp -s "$base" "$tmp/$name.yaml"; then
    echo "FAIL: planting $name changed nothing" >&2
    failures=$((failures + 1))
  elif "$check" "$tmp/$name.yaml" >/dev/null 2>&1; then
    echo "FAIL: $name was not caught by $check" >&2
    failures=$((failures + 1))
  else
    echo "   $name: caught by $check"
  fi
done

[ "$failures" -eq 0 ] || { log "$failures failure(s)"; exit 1; }
echo "validate-k8s: ok"
