# Sourced by scripts/test.sh and scripts/run-local.sh: installs moto's server into .venv when it is
# missing, starts it on a free loopback port, and exports MOTO_ENDPOINT plus the AWS variables that
# point the SDK at it. The caller's EXIT trap stops it (moto_stop).

MOTO_VERSION="5.2.5"
# SAM CLI brings samtranslator, which the deploy rehearsal (scripts/rehearse-deploy.py) uses to
# transform template.yaml as `sam deploy` would; .ci/run uses the same one for `sam build`.
SAM_CLI_VERSION="1.170.0"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

moto_install() {
  if [ -x "$VENV/bin/moto_server" ] && [ -x "$VENV/bin/sam" ] && "$VENV/bin/python" -c "
import sys, moto, importlib.metadata as m
sys.exit(moto.__version__ != '$MOTO_VERSION' or m.version('aws-sam-cli') != '$SAM_CLI_VERSION')" 2>/dev/null; then
    return 0
  fi
  echo "installing moto[server]==$MOTO_VERSION and aws-sam-cli==$SAM_CLI_VERSION into $VENV (a minute or two)" >&2
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || { echo "error: python3 -m venv failed (on Debian: apt-get install python3-venv)" >&2; return 1; }
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" "aws-sam-cli==$SAM_CLI_VERSION" \
    || { echo "error: could not install moto[server]==$MOTO_VERSION and aws-sam-cli==$SAM_CLI_VERSION from PyPI" >&2; return 1; }
}

moto_start() {
  moto_install || return 1
  local port
  port=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
  MOTO_LOG="${MOTO_LOG:-$ROOT/target/moto.log}"
  mkdir -p "$(dirname "$MOTO_LOG")"
  if [ "${MOTO_GC:-on}" = off ]; then
    # For benchmarks: Python's cyclic GC pauses moto for a second or more once it holds a few
    # hundred thousand items, which stalls writes as no DynamoDB does. Off, moto only grows.
    "$VENV/bin/python" -c "import gc, sys; gc.disable(); from moto.server import main; sys.argv = ['moto_server', '-H', '127.0.0.1', '-p', '$port']; main()" >"$MOTO_LOG" 2>&1 &
  else
    "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$MOTO_LOG" 2>&1 &
  fi
  MOTO_PID=$!
  export MOTO_ENDPOINT="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do
    if "$VENV/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('$MOTO_ENDPOINT/moto-api/data.json', timeout=1)" 2>/dev/null; then
      export AWS_ENDPOINT_URL="$MOTO_ENDPOINT" AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
        AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
      echo "moto server ready at $MOTO_ENDPOINT (pid $MOTO_PID, log $MOTO_LOG)" >&2
      return 0
    fi
    if ! kill -0 "$MOTO_PID" 2>/dev/null; then break; fi
    sleep 0.2
  done
  echo "error: moto server did not start; its log:" >&2
  cat "$MOTO_LOG" >&2
  return 1
}

moto_stop() {
  if [ -n "${MOTO_PID:-}" ]; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
  fi
}
