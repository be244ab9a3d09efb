#!/usr/bin/env bash
# The HTTP contract, checked from outside: Schemathesis (every check) against a live control
# plane on loopback, every operation of its /openapi.json, a bounded number of examples each.
# Installs Schemathesis from PyPI into target/contract-venv on first use.
#
#   bash scripts/contract.sh            # 30 examples per operation
#   EXAMPLES=100 bash scripts/contract.sh
set -euo pipefail
cd "$(dirname "$0")/.."

EXAMPLES="${EXAMPLES:-30}"
VENV=target/contract-venv
if [ ! -x "$VENV/bin/schemathesis" ]; then
  echo "installing Schemathesis into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==4.32.*"
fi

cargo build --quiet --bin rampart
DATA="$(mktemp -d)"
# A free loopback port below the ephemeral range (as the tests pick theirs).
PORT="$(python3 - <<'PY'
import random, socket
for _ in range(200):
    port = random.randrange(20000, 32000)
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    print(port)
    break
else:
    raise SystemExit("no free loopback port in 20000-32000")
PY
)"
./target/debug/rampart control --listen "127.0.0.1:$PORT" --data "$DATA" >"$DATA/control.log" 2>&1 &
CONTROL=$!
cleanup() {
  kill "$CONTROL" 2>/dev/null || true
  wait "$CONTROL" 2>/dev/null || true
  rm -rf "$DATA"
}
trap cleanup EXIT

python3 - "http://127.0.0.1:$PORT/healthz" <<'PY'
import sys, time, urllib.request
for _ in range(100):
    try:
        urllib.request.urlopen(sys.argv[1], timeout=1)
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("the control plane did not come up")
PY
TOKEN="$(python3 -c 'import json,sys; print(next(t["token"] for t in json.load(open(sys.argv[1])) if t["role"] == "operator"))' "$DATA/tokens.json")"

"$VENV/bin/schemathesis" --config-file tests/contract/schemathesis.toml run \
  "http://127.0.0.1:$PORT/openapi.json" \
  --checks all \
  --max-examples "$EXAMPLES" \
  --seed "${SEED:-1}" \
  --no-color \
  -H "Authorization: Bearer $TOKEN"
