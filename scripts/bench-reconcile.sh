#!/usr/bin/env bash
# Read capacity of a reconcile of an unchanged stream (default 20,000 records) on moto's DynamoDB,
# started here. Arguments go to the benchmark: --records N.
set -euo pipefail
source "$(dirname "$0")/moto.sh"
trap moto_stop EXIT
moto_start
cd "$ROOT"
cargo bench --bench reconcile -- "$@"
