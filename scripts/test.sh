#!/usr/bin/env bash
# The test suite.
#   scripts/test.sh          all of it: starts moto's server (installing it into .venv when
#                            missing), runs every test against it, stops it.
#   scripts/test.sh fast     what needs no moto (the core, the memory and SQLite adapters, the
#                            handlers, the contract suite on SQLite and the embedded queue), with
#                            no server started.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh fast signature`). Benches are not
# built here (`cargo bench` builds them).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
# The local server's flood test holds 10,000 sockets: the soft limit on open files goes up to
# the hard one (it is often 1,024 on a fresh machine).
ulimit -n "$(ulimit -Hn)"
if [ "${1:-}" = fast ]; then
  shift
  # Tests over the wire have one of these in their path (tests/it/main.rs says so). Without
  # MOTO_ENDPOINT, one that is misnamed fails loudly rather than passing for a fast test.
  skips=()
  for wire in moto on_dynamodb on_sqs chaos runtime_loop worker_handler; do
    skips+=(--skip "$wire")
  done
  unset MOTO_ENDPOINT
  exec cargo test --tests "$@" -- "${skips[@]}"
fi
source "$ROOT/scripts/moto.sh"
trap moto_stop EXIT
moto_start
cargo test --tests "$@"
