#!/usr/bin/env bash
# Peak memory while syncing N records (default 200000): the simulated Nango runs in its own
# process (`nango-sync simulate`), DynamoDB is moto's, and the benchmark process runs the worker's
# sync loop and reports its peak RSS.
set -euo pipefail
N="${1:-200000}"
source "$(dirname "$0")/moto.sh"
cd "$ROOT"
SIM_PID=""
cleanup() { [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null; moto_stop; }
trap cleanup EXIT
moto_start
cargo build --quiet --bin nango-sync
PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
./target/debug/nango-sync simulate --listen "127.0.0.1:$PORT" --records "$N" --latency-ms 20 &
SIM_PID=$!
until (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do sleep 0.5; done
cargo bench --bench pipeline -- --rss "$N" --page 1000 --nango-url "http://127.0.0.1:$PORT"
