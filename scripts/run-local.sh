#!/usr/bin/env bash
# The pipeline as deployed, on this machine (`nango-sync demo` is the same on the embedded backend):
#   a simulated Nango (nango-sync simulate: 2 connections x 2 models x 2,500 records)
#   -> signed sync webhooks -> the webhook handler on localhost (nango-sync serve --webhook-only)
#   -> the SQS FIFO queue -> the worker (nango-sync work, the Lambda's handler)
#   -> DynamoDB, with moto's server standing in for SQS and DynamoDB (installed into .venv).
# It ends with each stream's state. With --serve it keeps the endpoint up afterwards.
set -euo pipefail
source "$(dirname "$0")/moto.sh"
cd "$ROOT"

KEEP_SERVING=false
[ "${1:-}" = "--serve" ] && KEEP_SERVING=true
RECORDS="${RECORDS:-2500}"
export NANGO_WEBHOOK_SIGNING_KEY="nango-sync-test-signing-key"   # the key events/ are signed with
export NANGO_API_KEY="00000000-0000-4000-8000-000000000000"      # what the simulator accepts
export RUST_LOG="${RUST_LOG:-warn}"
free_port() { "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() { for _ in $(seq 1 600); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "error: nothing listens on $1" >&2; return 1; }

cargo build --quiet --bin nango-sync
BIN="$ROOT/target/debug/nango-sync"

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; done
  moto_stop
}
trap cleanup EXIT
moto_start

SIM_PORT=$(free_port)
"$BIN" simulate --listen "127.0.0.1:$SIM_PORT" --integration demo --connections 2 --models Contact,Deal --records "$RECORDS" &
PIDS+=($!)
export NANGO_BASE_URL="http://127.0.0.1:$SIM_PORT"

PORT=$(free_port)
"$BIN" serve --listen "127.0.0.1:$PORT" --local-aws nango-sync --webhook-only &
PIDS+=($!)
wait_port "$SIM_PORT"
wait_port "$PORT"
URL="http://127.0.0.1:$PORT/"

echo
echo "== Nango says: a sync run changed these streams (signed webhooks to $URL)"
NOW=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
for conn in conn-0 conn-1; do
  for model in Contact Deal; do
    sync="$(echo "$model" | tr '[:upper:]' '[:lower:]')s"
    body="{\"connectionId\":\"$conn\",\"from\":\"nango\",\"model\":\"$model\",\"modifiedAfter\":\"$NOW\",\"providerConfigKey\":\"demo\",\"queryTimeStamp\":\"$NOW\",\"responseResults\":{\"added\":$RECORDS,\"deleted\":0,\"updated\":0},\"success\":true,\"syncName\":\"$sync\",\"syncType\":\"INITIAL\",\"syncVariant\":\"base\",\"type\":\"sync\"}"
    printf '%-22s ' "demo|$conn|$model"
    printf '%s' "$body" | "$BIN" sign --post "$URL"
  done
done
printf '%-22s ' "forged signature"
printf '%s' "$body" | "$BIN" sign --key "not-the-key" --post "$URL" 2>/dev/null || true

echo
echo "== the worker takes the jobs off the queue and syncs each stream by cursor"
"$BIN" work --local-aws nango-sync --until-empty

echo
echo "== streams in DynamoDB"
"$BIN" status --local-aws nango-sync

if $KEEP_SERVING; then
  echo
  echo "serving on $URL until Ctrl-C; sign with: $BIN sign --post $URL < body.json"
  wait "${PIDS[1]}"
fi
