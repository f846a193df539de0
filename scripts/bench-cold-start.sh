#!/usr/bin/env bash
# Cold starts of the Lambda bootstraps (issue "A lean worker", goal 4): runs the runtime-loop
# test N times (default 20) against the release bootstraps, each run a fresh process started as
# Lambda starts a provided.al2023 bootstrap, and prints min / median / max of init (exec to the
# first poll of the Runtime API) and of exec to the first response.
# Usage: scripts/bench-cold-start.sh [RUNS]
set -euo pipefail
RUNS="${1:-20}"
source "$(dirname "$0")/moto.sh"
trap moto_stop EXIT
moto_start
cd "$ROOT"
cargo build --release --quiet --no-default-features --bin webhook --bin worker
cargo test --quiet --test it --no-run 2>/dev/null
OUT=$(mktemp)
for _ in $(seq 1 "$RUNS"); do
  NANGO_SYNC_BOOTSTRAP_DIR=target/release cargo test --quiet --test it runtime_loop -- --nocapture \
    --test-threads 1 2>/dev/null | grep "cold start" >>"$OUT"
done
python3 - "$OUT" <<'PY'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    m = re.search(r"cold start, (\w+) .*init ([\d.]+) ms, (\d+) ms", line)
    if m:
        runs.setdefault((m[1], "init"), []).append(float(m[2]))
        runs.setdefault((m[1], "exec -> first response"), []).append(float(m[3]))
print(f"{'bootstrap':<10} {'measure':<24} {'runs':>4} {'min':>7} {'median':>7} {'max':>7}  (ms)")
for (binary, what), xs in sorted(runs.items(), key=lambda kv: (kv[0][0] != "webhook", kv[0])):
    print(f"{binary:<10} {what:<24} {len(xs):>4} {min(xs):>7.1f} {statistics.median(xs):>7.1f} {max(xs):>7.1f}")
PY
rm -f "$OUT"
