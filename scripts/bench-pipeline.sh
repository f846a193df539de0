#!/usr/bin/env bash
# The end-to-end sync benchmark against moto's DynamoDB (started here) and the simulated Nango.
# Arguments go to the benchmark: --records N --page N --latency-ms N --rounds N, or --rss N.
# MOTO_GC=off starts moto with Python's GC off (scripts/moto.sh says why).
set -euo pipefail
source "$(dirname "$0")/moto.sh"
trap moto_stop EXIT
moto_start
cd "$ROOT"
cargo bench --bench pipeline -- "$@"
