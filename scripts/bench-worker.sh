#!/usr/bin/env bash
# The worker benchmark (issue "A lean worker"): CPU (user + sys) and peak RSS of the worker's
# Lambda bootstrap, of `nango-sync work`, of `nango-sync serve` (on SQLite), and of fetch-only
# and write-only, on one shape, each a process of its own. Starts moto and builds the release
# binaries (the bootstrap as it ships, without the local feature). Arguments go to
# scripts/bench-worker.py (e.g. --records 2000 for a quick run, --only bootstrap).
set -euo pipefail
source "$(dirname "$0")/moto.sh"
trap moto_stop EXIT
moto_start
cd "$ROOT"
cargo build --release --quiet --no-default-features --bin worker
cargo build --release --quiet --bin nango-sync
PARTS=$(cargo bench --bench worker_parts --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json, sys; print([m["executable"] for m in map(json.loads, sys.stdin) if m.get("executable") and m["target"]["name"] == "worker_parts"][-1])')
BENCH_WORKER_PARTS="$PARTS" python3 scripts/bench-worker.py "$@"
