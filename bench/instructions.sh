#!/usr/bin/env bash
# Instructions per proxied request, counted by valgrind (callgrind), for this checkout's
# rampart and another revision's: a figure that does not depend on the machine's noise.
#
#   bash bench/instructions.sh [REV]     # REV defaults to HEAD~1; run bench/before_after.sh
#                                        # first, or set BEFORE=path/to/rampart
#
# Each gateway runs under callgrind twice, serving N1 and N2 requests (h2load --h1, 8
# connections, keep-alive) from the echo backend; the difference of the two totals divided by
# N2 - N1 is the cost of one request, start-up and shutdown cancelled out.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=bench/out/before-after
BEFORE=${BEFORE:-$OUT/rampart-before}
AFTER=${AFTER:-$OUT/rampart-after}
N1=${N1:-2000}
N2=${N2:-12000}
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
command -v h2load >/dev/null || { apt-get update -qq && apt-get install -y -qq nghttp2-client >/dev/null; }
[ -x "$BEFORE" ] && [ -x "$AFTER" ] || { echo "run bench/before_after.sh first (needs $BEFORE and $AFTER)"; exit 1; }
BACKEND=127.0.0.1:19000
PROXY=127.0.0.1:18080
"$AFTER" testkit echo --listen "$BACKEND" --name bench >/dev/null 2>&1 &
ECHO=$!
trap 'kill $ECHO 2>/dev/null || true' EXIT
cat >"$OUT/gateway.yaml" <<YAML
listeners: [{ name: public, address: "$PROXY" }]
upstreams:
  - { name: echo, endpoints: ["$BACKEND"], balance: p2c }
routes:
  - { name: echo, upstream: echo, timeout: 10s }
YAML
total() { # binary requests -> instructions
  local file="$OUT/callgrind-$(basename "$1")-$2.out"
  RUST_LOG=error valgrind --tool=callgrind --callgrind-out-file="$file" "$1" gateway --config "$OUT/gateway.yaml" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 1 300); do curl -sf -o /dev/null "http://$PROXY/fixed" && break; sleep 0.2; done
  h2load --h1 -n "$2" -c 8 "http://$PROXY/fixed" >"$OUT/h2load-$(basename "$1")-$2.txt"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  awk '/^summary:|^totals:/ {print $2; exit}' "$file"
}
printf '| build | Ir at %s requests | Ir at %s requests | instructions per request |\n|---|---:|---:|---:|\n' "$N1" "$N2"
for which in before after; do
  bin=$BEFORE; [ $which = after ] && bin=$AFTER
  a=$(total "$bin" "$N1"); b=$(total "$bin" "$N2")
  per=$(( (b - a) / (N2 - N1) ))
  echo "$which $per" >>"$OUT/instructions.txt"
  printf '| %s | %s | %s | %s |\n' "$which" "$a" "$b" "$per"
done
