#!/usr/bin/env bash
# Paired runs of the worker bootstrap (scripts/bench-worker.py --only bootstrap, full shape unless
# told otherwise): BASE and NEW alternate, each run on a fresh moto, so both see the same machine.
# Usage: scripts/bench-worker-pair.sh BASE_BOOTSTRAP NEW_BOOTSTRAP RUNS [bench-worker.py options]
# Build each side with `cargo build --release --no-default-features --bin worker` (BASE in a git
# worktree at the older commit) and copy the binary out of target/. `nango-sync` (the simulated
# Nango) is built here from this checkout.
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 BASE_BOOTSTRAP NEW_BOOTSTRAP RUNS [options]" >&2; exit 2; }
base=$(realpath "$1"); new=$(realpath "$2"); runs=$3; shift 3
source "$(dirname "$0")/moto.sh"
trap moto_stop EXIT
cd "$ROOT"
cargo build --release --quiet --bin nango-sync
for i in $(seq 1 "$runs"); do
  for side in base new; do
    bin=$base; [ "$side" = new ] && bin=$new
    moto_start >/dev/null 2>&1
    printf '%-5s run %d: ' "$side" "$i"
    BENCH_WORKER_BIN=$bin python3 scripts/bench-worker.py --only bootstrap "$@" | grep "worker bootstrap"
    moto_stop
  done
done
