#!/usr/bin/env bash
# Instructions per proxied request (valgrind's callgrind; user space only, repeatable whatever
# the machine is doing) with the access log and tracing off, each alone, and both on.
#
#   bash bench/features_instructions.sh      # after bench/features.sh (or any release build)
#   CONFIGS="off log" bash bench/features_instructions.sh   # some of them (off first: the base)
#
# Each config runs under callgrind twice, serving N1 and N2 requests (h2load --h1, 8
# connections); the difference of the totals over N2 - N1 is the cost of one request.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=bench/out/features-instructions
mkdir -p "$OUT"
rm -f "$OUT"/*
N1=${N1:-2000}
N2=${N2:-12000}
. bench/common.sh
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
need_tools "nginx h2load" "nginx-light nghttp2-client"
[ -x target/release/rampart ] || build_release
BIN=target/release/rampart
BACKEND=127.0.0.1:19400
PROXY=127.0.0.1:19480
OTLP=127.0.0.1:19485
"$BIN" testkit echo --listen "$BACKEND" >/dev/null 2>&1 & PIDS+=($!)
otlp_sink "$OTLP"
config() { # name extra
  cat >"$OUT/$1.yaml" <<YAML
listeners: [{ name: public, address: "$PROXY" }]
upstreams: [{ name: echo, endpoints: ["$BACKEND"] }]
routes: [{ name: echo, upstream: echo, timeout: 10s }]
$2
YAML
}
config off ""
config log "access_log: { path: $PWD/$OUT/access.log }"
config trace "tracing: { otlp_endpoint: \"http://$OTLP/v1/traces\", sample: 0.01 }"
config on "access_log: { path: $PWD/$OUT/access.log }
tracing: { otlp_endpoint: \"http://$OTLP/v1/traces\", sample: 0.01 }"
total() { # config requests -> instructions
  local file="$OUT/callgrind-$1-$2.out"
  RUST_LOG=error valgrind --tool=callgrind --callgrind-out-file="$file" "$BIN" gateway --config "$OUT/$1.yaml" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 1 300); do curl -sf -o /dev/null "http://$PROXY/fixed" && break; sleep 0.2; done
  h2load --h1 -n "$2" -c 8 "http://$PROXY/fixed" >"$OUT/h2load-$1-$2.txt"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  awk '/^summary:|^totals:/ {print $2; exit}' "$file"
}
printf '| config | instructions per request | vs off |\n|---|---:|---:|\n'
base=0
for name in ${CONFIGS:-off log trace on}; do
  a=$(total "$name" "$N1"); b=$(total "$name" "$N2")
  per=$(( (b - a) / (N2 - N1) ))
  [ "$name" = off ] && base=$per
  printf '| %s | %s | %s |\n' "$name" "$per" "$(python3 -c "print(f'{$per / $base:.3f}')")"
done | tee "$OUT/summary.md"
