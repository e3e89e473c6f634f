#!/usr/bin/env bash
# Line coverage of the library's core (domain, app, local adapters) by its
# unit tests, with cargo-tarpaulin's ptrace engine (this toolchain has no
# LLVM tools for source-based coverage). Fails when coverage drops below the
# floor in .ci/coverage-floor; raise the floor as tests grow.
#
# The cloud adapters and hosts are proven by the integration suites against
# emulators (scripts/test.sh), which are not run under ptrace here: that
# would rebuild and re-run the whole suite instrumented, twice CI's time.
# Prints the figure; writes target/coverage/tarpaulin-report.json.
#
#   scripts/coverage.sh [--build-only]
#
# --build-only installs tarpaulin and builds the instrumented tests without
# running them (CI does that early, in the background, at low priority).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
deps="$root/target/test-deps"
TARPAULIN_VERSION=0.37.5
# Its own install root: `cargo install` locks the root's metadata for the
# whole install, and s3s-fs (scripts/emulators.sh) may be installing at once.
tarpaulin="$deps/tarpaulin/bin/cargo-tarpaulin"
# One already on PATH at this version will do (CI's install action).
if command -v cargo-tarpaulin >/dev/null 2>&1 \
  && cargo-tarpaulin tarpaulin --version 2>/dev/null | grep -q "$TARPAULIN_VERSION"; then
  tarpaulin="$(command -v cargo-tarpaulin)"
elif [ ! -x "$tarpaulin" ] || ! "$tarpaulin" tarpaulin --version 2>/dev/null | grep -q "$TARPAULIN_VERSION"; then
  echo "coverage: installing cargo-tarpaulin $TARPAULIN_VERSION (cargo install)" >&2
  cargo install -q "cargo-tarpaulin@$TARPAULIN_VERSION" --locked --root "$deps/tarpaulin" >&2
fi
build_only=()
case "${1:-}" in
  --build-only) build_only=(--no-run) ;;
  '') ;;
  *) echo "coverage.sh: unknown option $1 (--build-only)" >&2; exit 2 ;;
esac
floor="$(tr -d '[:space:]' < .ci/coverage-floor)"
log="target/coverage/tarpaulin.log"
mkdir -p target/coverage
status=0
"$tarpaulin" tarpaulin --engine ptrace --skip-clean \
  -p testexec-shared --lib --no-default-features --features local \
  --target-dir target/coverage --out Json --out Xml --output-dir target/coverage \
  --fail-under "$floor" "${build_only[@]}" >"$log" 2>&1 || status=$?
if [ ${#build_only[@]} -gt 0 ]; then
  [ "$status" -eq 0 ] || tail -30 "$log" >&2
  exit "$status"
fi
grep -E '^[0-9.]+% coverage' "$log" || true
if [ "$status" -ne 0 ]; then
  echo "coverage: below the floor of $floor% (.ci/coverage-floor) or tarpaulin failed; the end of its log:" >&2
  tail -30 "$log" >&2
fi
exit "$status"
