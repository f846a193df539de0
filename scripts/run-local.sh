#!/usr/bin/env bash
# Runs the webhook function locally, no AWS account needed: moto's SQS stands in for AWS (installed
# into .venv when missing), `nango-sync serve` runs the Lambda's handler on localhost, signed sample
# webhooks are posted to it (plus a forged one), and the jobs that reached the FIFO queue are printed.
# With --serve it keeps serving afterwards until Ctrl-C, for your own curl or Nango tunnel.
set -euo pipefail
source "$(dirname "$0")/moto.sh"
cd "$ROOT"

KEEP_SERVING=false
[ "${1:-}" = "--serve" ] && KEEP_SERVING=true
export NANGO_WEBHOOK_SIGNING_KEY="nango-sync-test-signing-key"   # the key events/ are signed with
PORT="${PORT:-8787}"

cargo build --quiet --bin nango-sync
BIN="$ROOT/target/debug/nango-sync"

SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  moto_stop
}
trap cleanup EXIT
moto_start

QUEUE_URL="$MOTO_ENDPOINT/123456789012/nango-sync-ingest.fifo"
"$BIN" serve --listen "127.0.0.1:$PORT" --create-queue nango-sync-ingest.fifo &
SERVER_PID=$!
for _ in $(seq 1 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done
URL="http://127.0.0.1:$PORT/"

body_of() { python3 -c 'import json,sys; sys.stdout.write(json.load(open(sys.argv[1]))["body"])' "$1"; }

echo
echo "== posting signed sample webhooks to $URL"
for sample in sync-success sync-failure auth-creation forward async-action; do
  printf '%-16s ' "$sample"
  body_of "events/webhook-$sample.json" | "$BIN" sign --post "$URL"
done
printf '%-16s ' "forged"
body_of events/webhook-sync-success.json | "$BIN" sign --key "not-the-key" --post "$URL" || true

echo
echo "== jobs on the FIFO queue ($QUEUE_URL)"
"$BIN" drain --queue-url "$QUEUE_URL"

if $KEEP_SERVING; then
  echo
  echo "serving on $URL until Ctrl-C; sign with: $BIN sign --post $URL < body.json"
  wait "$SERVER_PID"
fi
