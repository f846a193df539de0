#!/usr/bin/env bash
# A reconcile heals a dropped webhook without counting: 6 streams (default 20,000 records each)
# on moto's DynamoDB, started here. Arguments go to the benchmark: --records N, --latency-ms N.
set -euo pipefail
source "$(dirname "$0")/moto.sh"
trap moto_stop EXIT
moto_start
cd "$ROOT"
cargo bench --bench heal -- "$@"
