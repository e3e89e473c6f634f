#!/usr/bin/env bash
# Cold start and size of the Lambda functions (issue 4, part 5) against a
# hello-world lambda_runtime peer (bench/hello-lambda).
#
# 1. Builds the bootstrap.zips with `cargo lambda build --release
#    --output-format zip`, x86_64 (this machine has no aarch64 standard
#    library): the peer on its own, the functions in one command with one -p
#    each, as CI and scripts/deploy.sh build the zips they ship (so the
#    library is built once, with the union of the four functions' features;
#    each binary still links only its own function: docs/lambda.md).
#    BUILD_EACH=1 builds every package in a command of its own instead, as
#    SAM's rust-cargolambda build does (one CodeUri at a time).
# 2. Lists the zip sizes.
# 3. Unpacks each zip's bootstrap (what Lambda runs) next to it and measures
#    init (spawn -> first GET /runtime/invocation/next) and peak RSS with
#    bench/src/bin/lambda_init.rs, round-robin, RUNS runs each, twice:
#    a. with this machine's trust store as it is. rustls-native-certs (the
#       SDK's HTTPS client loads the platform roots when it is built, i.e. at
#       init) reads the CA bundle *and* every file of /etc/ssl/certs; on
#       Debian/Ubuntu that is ~150 per-certificate files;
#    b. with the trust store laid out as on provided.al2023 (Fedora family):
#       one CA bundle file and no per-certificate files (SSL_CERT_FILE = the
#       bundle, SSL_CERT_DIR = an empty directory).
#    Both passes give the functions dummy GitHub App settings (a throwaway
#    RSA key generated here), as a deployment with the GitHub App has them.
#
# Usage: scripts/bench/lambda.sh [RUNS] [BINS]
#   RUNS  default 30
#   BINS  default "hello-lambda trigger execute collect report"; the first is
#         the peer that ratios are quoted against.
# Environment:
#   LAMBDA_DIR  where the zips go (default $CARGO_TARGET_DIR/lambda, i.e.
#               cargo lambda's own default)
#   SKIP_BUILD=1  measure the zips already in LAMBDA_DIR
#   LAMBDA_INIT  the lambda-init binary to use (default: cargo builds it)
#   BEFORE_LAMBDA_DIR  zips of another build (e.g. the base commit's, built
#               there with this script and LAMBDA_DIR): each function's
#               bootstrap there (those that exist) is measured in the
#               same rounds as `<bin>-before`, for before/after tables
#               from one run
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
  build() { # label, packages...
    local label="$1"
    shift
    echo "== build $label ($*)  $(date -u +%FT%TZ)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
    local start pkg packages=()
    for pkg in "$@"; do packages+=(-p "$pkg"); done
    start=$(date +%s)
    cargo lambda build --release --output-format zip --x86-64 "${packages[@]}" --lambda-dir "$lambda_dir"
    echo "built $label in $(( $(date +%s) - start )) s"
  }
  functions=()
  for bin in $bins; do
    pkg="$(package_of "$bin")"
    if [ "$bin" = hello-lambda ] || [ -n "${BUILD_EACH:-}" ]; then
      build "$bin" "$pkg"
    else
      functions+=("$pkg")
    fi
  done
  [ ${#functions[@]} -eq 0 ] || build functions "${functions[@]}"
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
if [ -n "${BEFORE_LAMBDA_DIR:-}" ]; then
  # Absolute: lambda-init starts each binary in a directory of its own.
  BEFORE_LAMBDA_DIR="$(cd "$BEFORE_LAMBDA_DIR" && pwd)"
  for bin in $bins; do
    [ "$bin" != hello-lambda ] || continue
    zip="$BEFORE_LAMBDA_DIR/$bin/bootstrap.zip"
    [ -f "$zip" ] || { echo "$bin-before: no $zip, not measured" >&2; continue; }
    printf '%-14s %10d  %s\n' "$bin-before" "$(stat -c %s "$zip")" "$zip"
    unzip -o -q "$zip" bootstrap -d "$BEFORE_LAMBDA_DIR/$bin"
    targets+=("$bin-before=$BEFORE_LAMBDA_DIR/$bin/bootstrap")
  done
fi

mkdir -p "$target_dir/bench"
key="$target_dir/bench/lambda-init-github-app.pem"
[ -f "$key" ] || openssl genrsa -traditional -out "$key" 2048 2>/dev/null
envs=(
  --env TESTEXEC_WEBHOOK_SECRET=benchmark-only-webhook-secret
  --env TESTEXEC_GITHUB_APP_ID=123456
  --env "TESTEXEC_GITHUB_PRIVATE_KEY=$(cat "$key")"
  --env TESTEXEC_PUBLIC_URL=https://testexec.example.com
)
bundle=""
for f in /etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/certs/ca-certificates.crt; do
  [ -f "$f" ] && { bundle="$f"; break; }
done
empty_dir="$target_dir/bench/empty-cert-dir"
mkdir -p "$empty_dir"

# The harness only waits on sockets and timestamps them: a dev build is as
# precise as a release one and reuses what the workspace tests compiled.
# It is std only, so where nothing is compiled yet, LAMBDA_INIT can name one
# built with `rustc --edition 2024 -O bench/src/bin/lambda_init.rs`.
lambda_init="${LAMBDA_INIT:-$target_dir/debug/lambda-init}"
[ -n "${LAMBDA_INIT:-}" ] || cargo build -q --workspace --all-features --bin lambda-init
# shellcheck disable=SC2012 # a count of entries: their names do not matter
echo "== init, this machine's trust store ($(ls /etc/ssl/certs 2>/dev/null | wc -l) entries in /etc/ssl/certs)  $(date -u +%FT%TZ)  $(uname -m), $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$lambda_init" --runs "$runs" "${envs[@]}" "${targets[@]}"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "$bundle" ]; then
  echo "== init, trust store as on provided.al2023 (SSL_CERT_FILE=$bundle, SSL_CERT_DIR empty)  $(date -u +%FT%TZ)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
  "$lambda_init" --runs "$runs" "${envs[@]}" \
    --env "SSL_CERT_FILE=$bundle" --env "SSL_CERT_DIR=$empty_dir" "${targets[@]}"
  echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
fi
