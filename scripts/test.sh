#!/usr/bin/env bash
# The whole test suite: starts moto's server (installing it into .venv when missing), runs every
# test against it, stops it. Extra arguments go to `cargo test` (e.g. scripts/test.sh signature).
set -euo pipefail
source "$(dirname "$0")/moto.sh"
trap moto_stop EXIT
moto_start
cd "$ROOT"
cargo test --all-targets "$@"
