#!/usr/bin/env bash
# What a sweep of an unchanged stream (default 20,000 records) costs on moto's DynamoDB, started
# here, against the write units of its first sync. Arguments go to the benchmark: --records N.
set -euo pipefail
source "$(dirname "$0")/moto.sh"
trap moto_stop EXIT
moto_start
cd "$ROOT"
cargo bench --bench reread -- "$@"
