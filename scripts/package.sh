#!/usr/bin/env bash
# A release a user deploys without Rust: dist/nango-sync-<version>/ holds the functions' zips
# (the arm64 bootstraps as `sam build` made them), a template.yaml whose code locations are
# those zips, README, LICENSE, CHANGELOG and SHA256SUMS. Then `sam deploy --template-file
# dist/nango-sync-<version>/template.yaml --guided` needs no toolchain.
#
#   scripts/package.sh              sam build (cargo-lambda, zig), then package and check
#   scripts/package.sh --no-build   package what .aws-sam/build already holds (CI, after its sam build)
#
# Checks, each failing the script: every zip of a Rust function holds an arm64 `bootstrap`; the
# packaged template passes `sam validate --lint` with no cargo on PATH.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
source scripts/moto.sh
moto_install
if [ "${1:-}" != --no-build ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check cargo-lambda ziglang
  rustup target add aarch64-unknown-linux-gnu
  PATH="$ROOT/.venv/bin:$PATH" SAM_CLI_TELEMETRY=0 .venv/bin/sam build --template-file template.yaml
fi
.venv/bin/python scripts/package.py --build-dir .aws-sam/build --out dist
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
release="dist/nango-sync-$version"
for zip in "$release"/WebhookFunction.zip "$release"/WorkerFunction.zip "$release"/OutboxFunction.zip; do
  # ELF e_machine (bytes 18-19) 0xb7 is aarch64.
  machine="$(.venv/bin/python -c "import sys, zipfile; print(zipfile.ZipFile(sys.argv[1]).read('bootstrap')[18])" "$zip")"
  [ "$machine" = 183 ] || { echo "error: $zip does not hold an arm64 bootstrap" >&2; exit 1; }
  echo "   $zip: arm64 bootstrap"
done
# No Rust from here on: PATH without cargo, as a user who only deploys has it.
DEPLOY_PATH="$ROOT/.venv/bin:/usr/bin:/bin"
if env PATH="$DEPLOY_PATH" sh -c 'command -v cargo rustc' >/dev/null; then
  echo "error: cargo or rustc is on $DEPLOY_PATH: the check below would not show a deploy without Rust" >&2; exit 1
fi
env PATH="$DEPLOY_PATH" SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 \
  sam validate --lint --template-file "$release/template.yaml"
(cd "$release" && sha256sum --check --quiet SHA256SUMS)
echo "release: $release"
