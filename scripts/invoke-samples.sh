#!/usr/bin/env bash
# Every sample event in events/ through cargo-lambda's own Lambda emulator (`cargo lambda watch`
# and `cargo lambda invoke --data-file`), as the README tells users to try them, against moto:
# each webhook event gets the status events/expected.json gives it, and the SQS batch gets its
# batchItemFailures (and its sync job's 40 records land in the table).
#
#   scripts/invoke-samples.sh
#
# Nango is `nango-sync simulate` serving the samples' stream (hubspot|user-42|Contact|base); the
# queue and tables are the stack's twin on moto (`--local-aws samples`). The functions are built
# by `cargo lambda watch` on the first invoke, with the test build's features, so after
# `cargo test` little is left to compile.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
source scripts/moto.sh
PY="$VENV/bin/python"
port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
pids=()
cleanup() {
  # Each background job leads its own process group (setsid): the functions cargo lambda
  # watch started go with it.
  for pid in ${pids[@]+"${pids[@]}"}; do kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; done
  moto_stop
}
trap cleanup EXIT
moto_start
"$VENV/bin/pip" install --quiet --disable-pip-version-check cargo-lambda
export PATH="$VENV/bin:$PATH"
LOGS="$ROOT/target/invoke-samples"
mkdir -p "$LOGS"

cargo build --quiet --features test-util --bin nango-sync
NANGO_PORT="$(port)"
setsid target/debug/nango-sync simulate --listen "127.0.0.1:$NANGO_PORT" --integration hubspot \
  --connection-id user-42 --models Contact --records 40 >"$LOGS/simulate.log" 2>&1 &
pids+=($!)
target/debug/nango-sync status --local-aws samples --json >/dev/null
QUEUE_URL="$("$PY" -c "import boto3; print(boto3.client('sqs', endpoint_url='$MOTO_ENDPOINT').get_queue_url(QueueName='samples-ingest.fifo')['QueueUrl'])")"

INVOKE_PORT="$(port)"
setsid cargo lambda watch -A 127.0.0.1 -P "$INVOKE_PORT" --timeout 300 --features test-util --env-vars \
  "QUEUE_URL=$QUEUE_URL,NANGO_WEBHOOK_SIGNING_KEY=nango-sync-test-signing-key,RECORDS_TABLE=samples-records,STATE_TABLE=samples-state,NANGO_API_KEY=00000000-0000-4000-8000-000000000000,NANGO_BASE_URL=http://127.0.0.1:$NANGO_PORT" \
  >"$LOGS/watch.log" 2>&1 &
WATCH=$!
pids+=("$WATCH")
for _ in $(seq 1 300); do
  "$PY" -c "import socket; socket.create_connection(('127.0.0.1', $INVOKE_PORT), 1)" 2>/dev/null && break
  kill -0 "$WATCH" 2>/dev/null || { cat "$LOGS/watch.log" >&2; echo "error: cargo lambda watch stopped" >&2; exit 1; }
  sleep 1
done

invoke() { # function, event file -> the function's answer (JSON; {} when the invoke failed)
  cargo lambda invoke "$1" --data-file "events/$2" -A 127.0.0.1 -P "$INVOKE_PORT" --output-format json \
    2>>"$LOGS/invoke.log" || echo '{}'
}
failures=0
for file in $("$PY" -c "import json; print(' '.join(f for f in json.load(open('events/expected.json')) if f.startswith('webhook-')))"); do
  answer="$(invoke webhook "$file")"
  verdict="$("$PY" -c "
import json, sys
expected = json.load(open('events/expected.json'))['$file']['status']
got = json.loads(sys.argv[1]).get('statusCode')
print(('ok  ' if got == expected else 'FAIL') + f' webhook {\"$file\":<36} {got} (expected {expected})')" "$answer")"
  echo "$verdict"
  [[ "$verdict" == ok* ]] || failures=$((failures + 1))
done
answer="$(invoke worker sqs-batch.json)"
verdict="$("$PY" -c "
import json, sys
expected = json.load(open('events/expected.json'))['sqs-batch.json']['batchItemFailures']
got = [f['itemIdentifier'] for f in json.loads(sys.argv[1]).get('batchItemFailures', [{'itemIdentifier': 'no answer'}])]
print(('ok  ' if got == expected else 'FAIL') + f' worker  sqs-batch.json                       batchItemFailures {got} (expected {expected})')" "$answer")"
echo "$verdict"
[[ "$verdict" == ok* ]] || failures=$((failures + 1))
queued() { "$PY" -c "import boto3; print(boto3.client('sqs', endpoint_url='$MOTO_ENDPOINT').get_queue_attributes(QueueUrl='$QUEUE_URL', AttributeNames=['ApproximateNumberOfMessages'])['Attributes']['ApproximateNumberOfMessages'])"; }
before="$(queued)"
answer="$(invoke outbox dynamodb-outbox.json)"
verdict="$("$PY" -c "
import json, sys
expected = json.load(open('events/expected.json'))['dynamodb-outbox.json']
got = [f['itemIdentifier'] for f in json.loads(sys.argv[1]).get('batchItemFailures', [{'itemIdentifier': 'no answer'}])]
queued = int(sys.argv[3]) - int(sys.argv[2])
ok = got == expected['batchItemFailures'] and queued == expected['queued']
print(('ok  ' if ok else 'FAIL') + f' outbox  dynamodb-outbox.json                 batchItemFailures {got}, {queued} queued (expected {expected[\"batchItemFailures\"]}, {expected[\"queued\"]})')" "$answer" "$before" "$(queued)")"
echo "$verdict"
[[ "$verdict" == ok* ]] || failures=$((failures + 1))
records="$("$PY" -c "import boto3; print(boto3.client('dynamodb', endpoint_url='$MOTO_ENDPOINT').scan(TableName='samples-records', Select='COUNT')['Count'])")"
if [ "$records" = 40 ]; then
  echo "ok   the batch's sync job wrote the stream's 40 records"
else
  echo "FAIL the batch's sync job wrote $records records (expected 40)"; failures=$((failures + 1))
fi
write="$("$PY" -c "import boto3; item = boto3.client('dynamodb', endpoint_url='$MOTO_ENDPOINT').get_item(TableName='samples-state', Key={'pk': {'S': 'write#sample-write-1'}, 'sk': {'S': 'state'}}).get('Item'); print(item['state']['S'] if item else 'missing')")"
if [ "$write" = succeeded ]; then
  echo "ok   the batch's write request went through the simulated Nango's tool"
else
  echo "FAIL the batch's write request is $write (expected succeeded)"; failures=$((failures + 1))
fi
if [ "$failures" -gt 0 ]; then
  echo "error: $failures sample event(s) did not get their answer (logs in $LOGS)" >&2
  exit 1
fi
