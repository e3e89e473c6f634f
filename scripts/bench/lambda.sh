#!/usr/bin/env bash
# Cold start and size of the Lambda functions (issue 4, part 5) against a
# hello-world lambda_runtime peer (bench/hello-lambda).
#
# 1. Builds each bootstrap.zip the way SAM's rust-cargolambda build does
#    (`cargo lambda build --release --output-format zip`), x86_64 (this
#    machine has no aarch64 standard library), one package at a time: release
#    builds of the AWS SDK are slow on 2 cores and would only fight each other.
# 2. Lists the zip sizes.
# 3. Unpacks each zip's bootstrap (what Lambda runs) next to it and measures
#    init (spawn -> first GET /runtime/invocation/next) and peak RSS with
#    bench/src/bin/lambda_init.rs, round-robin, RUNS runs each.
#
# Usage: scripts/bench/lambda.sh [RUNS] [BINS]
#   RUNS  default 30
#   BINS  default "hello-lambda trigger execute collect report"; the first is
#         the peer that ratios are quoted against.
# Environment:
#   LAMBDA_DIR  where the zips go (default $CARGO_TARGET_DIR/lambda, i.e.
#               cargo lambda's own default)
#   SKIP_BUILD=1  measure the zips already in LAMBDA_DIR
# cargo-lambda and zig must be on PATH (pip install cargo-lambda ziglang).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
runs="${1:-30}"
bins="${2:-hello-lambda trigger execute collect report}"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
lambda_dir="${LAMBDA_DIR:-$target_dir/lambda}"

package_of() {
  case "$1" in
    hello-lambda) echo testexec-bench-hello ;;
    trigger | execute | collect | report) echo "testexec-$1" ;;
    *) echo "unknown function binary '$1' (expected hello-lambda, trigger, execute, collect or report)" >&2; return 1 ;;
  esac
}

if [ -z "${SKIP_BUILD:-}" ]; then
  command -v cargo-lambda >/dev/null || {
    echo "cargo-lambda not on PATH: pip install cargo-lambda ziglang (scripts/emulators.sh installs both)" >&2
    exit 1
  }
  for bin in $bins; do
    pkg="$(package_of "$bin")"
    echo "== build $bin ($pkg)  $(date -u +%FT%TZ)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
    start=$(date +%s)
    cargo lambda build --release --output-format zip --x86-64 -p "$pkg" --lambda-dir "$lambda_dir"
    echo "built $bin in $(( $(date +%s) - start )) s"
  done
fi

echo "== bootstrap.zip sizes (bytes; target <= 8 MB = 8000000)"
targets=()
for bin in $bins; do
  package_of "$bin" >/dev/null
  zip="$lambda_dir/$bin/bootstrap.zip"
  [ -f "$zip" ] || { echo "missing $zip: run without SKIP_BUILD" >&2; exit 1; }
  printf '%-14s %10d  %s\n' "$bin" "$(stat -c %s "$zip")" "$zip"
  unzip -o -q "$zip" bootstrap -d "$lambda_dir/$bin"
  targets+=("$bin=$lambda_dir/$bin/bootstrap")
done

# The harness only waits on sockets and timestamps them: a dev build is as
# precise as a release one and reuses what the workspace tests compiled.
cargo build -q --workspace --all-features --bin lambda-init
echo "== init  $(date -u +%FT%TZ)  $(uname -m), $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$target_dir/debug/lambda-init" --runs "$runs" "${targets[@]}"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
