#!/usr/bin/env bash
# The test suite.
#   scripts/test.sh          all of it: starts moto's server (installing it into .venv when
#                            missing), runs every test against it, stops it.
#   scripts/test.sh fast     what needs no moto: the unit tests, and the integration suite but
#                            for tests/it/aws/ (the core, the memory and SQLite adapters, the
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
# libtest runs each test on a thread of 2 MiB; the deployed worker runs on the main thread (8 MiB
# under Lambda). A debug build's futures for the deepest job (a reconcile's sync and drift check
# on DynamoDB) came near 2 MiB and overflowed once: the tests get the main thread's stack.
export RUST_MIN_STACK="${RUST_MIN_STACK:-8388608}"
if [ "${1:-}" = fast ]; then
  shift
  # Everything over the wire is in tests/it/aws/ (tests/it/main.rs says so): the library's unit
  # tests, then the integration suite but for that folder. Without MOTO_ENDPOINT, a test outside
  # the folder that reaches for moto fails loudly rather than leaving the fast tier.
  unset MOTO_ENDPOINT
  cargo test --lib "$@"
  exec cargo test --test it "$@" -- --skip aws::
fi
source "$ROOT/scripts/moto.sh"
trap moto_stop EXIT
moto_start
cargo test --tests "$@"
