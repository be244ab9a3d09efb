#!/usr/bin/env bash
# Auth benchmark: the cost of authentication, and the seed failure's blast radius.
#
#   bash bench/auth.sh                       # ~4 minutes after the release build
#   DURATION=5 ROUNDS=1 bash bench/auth.sh   # quick look
#
# Core 0: rampart. Core 1: echo backend, auth server, black-hole DNS and wrk.
# 1. Throughput of a public route, a route with a cached introspection decision, and a JWT route.
# 2. Containment: a public route's throughput and p99 while a fixed-rate load hits a route whose auth
#    provider's host resolves only through a DNS server that never answers, against the same two
#    loads when that route's auth provider works.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
OUT=bench/out/auth
mkdir -p "$OUT"
rm -f "$OUT"/*.txt "$OUT"/*.log
. bench/common.sh
need_tools wrk wrk
build_release

taskset -c 1 "$BIN" testkit echo --listen 127.0.0.1:19100 >"$OUT/echo.log" 2>&1 & PIDS+=($!)
taskset -c 1 "$BIN" testkit auth --listen 127.0.0.1:19101 >"$OUT/auth.out" 2>"$OUT/auth.log" & PIDS+=($!)
taskset -c 1 "$BIN" testkit blackhole-dns --listen 127.0.0.1:19153 >"$OUT/dns.log" 2>&1 & PIDS+=($!)
for _ in $(seq 1 50); do grep -q '^jwt=' "$OUT/auth.out" 2>/dev/null && break; sleep 0.1; done
OPAQUE=$(sed -n 's/^opaque=//p' "$OUT/auth.out")
JWT=$(sed -n 's/^jwt=//p' "$OUT/auth.out")

cat >"$OUT/rampart.yaml" <<YAML
listeners: [{ name: public, address: "127.0.0.1:19180" }]
admin: { address: "127.0.0.1:19190" }
resolver: { nameservers: ["127.0.0.1:19153"], timeout: 100ms, attempts: 1, negative_ttl: 5s }
auth_providers:
  - { name: main, type: introspection, endpoint: "http://127.0.0.1:19101/introspect", timeout: 250ms, cache_ttl: 5m }
  - { name: partners, type: jwt, jwks_url: "http://127.0.0.1:19101/.well-known/jwks.json", issuer: "https://auth.example.com", audience: api }
  - { name: dead, type: introspection, endpoint: "http://auth.blackhole.test:9000/introspect", timeout: 250ms }
upstreams: [{ name: echo, endpoints: ["127.0.0.1:19100"] }]
routes:
  - { name: public, match: { path_prefix: /public }, upstream: echo }
  - { name: introspected, match: { path_prefix: /introspected }, upstream: echo, auth: main }
  - { name: jwt, match: { path_prefix: /jwt }, upstream: echo, auth: partners }
  - { name: blackholed, match: { path_prefix: /blackholed }, upstream: echo, auth: dead }
limits: { max_inflight: 30000, max_connections: 30000 }
YAML
RUST_LOG=error taskset -c 0 "$BIN" gateway --config "$OUT/rampart.yaml" >"$OUT/rampart.log" 2>&1 & PIDS+=($!)
sleep 1
G=http://127.0.0.1:19180
curl -sf -o /dev/null "$G/public/fixed"
curl -sf -o /dev/null -H "authorization: Bearer $OPAQUE" "$G/introspected/fixed" || { echo "introspected route refused the token"; exit 1; }
curl -sf -o /dev/null -H "authorization: Bearer $JWT" "$G/jwt/fixed" || { echo "jwt route refused the token"; exit 1; }

one() { # name url [header]
  local name=$1 url=$2; shift 2
  taskset -c 1 wrk -t1 -c64 -d"${DURATION}s" --latency "$@" "$url" >"$OUT/$name.txt"
}
echo "== authentication cost: wrk -t1 -c64 -d${DURATION}s, $ROUNDS rounds"
for r in $(seq 1 "$ROUNDS"); do
  echo "   round $r/$ROUNDS"
  one "public-$r" "$G/public/fixed"
  one "introspected-$r" "$G/introspected/fixed" -H "authorization: Bearer $OPAQUE"
  one "jwt-$r" "$G/jwt/fixed" -H "authorization: Bearer $JWT"
done

command -v h2load >/dev/null || { apt-get update -qq && apt-get install -y -qq nghttp2-client >/dev/null; }
SECOND_RPS=${SECOND_RPS:-1000}
echo "== containment: public route (wrk c=48) beside a fixed-rate load (h2load, 4 × $SECOND_RPS req/s) on an auth route, $ROUNDS rounds"
# The second load is open-loop at a fixed rate, so a route that fails fast does not get more
# requests through than one that works: both scenarios offer the proxy the same work.
beside() { # name second-url
  taskset -c 1 h2load -c4 -m10 --rps "$SECOND_RPS" -D "$DURATION" -H "authorization: Bearer $OPAQUE" "$2" >"$OUT/$1-second.txt" &
  local second=$!
  taskset -c 1 wrk -t1 -c48 -d"${DURATION}s" --latency "$G/public/fixed" >"$OUT/$1.txt"
  wait $second
}
for r in $(seq 1 "$ROUNDS"); do
  echo "   round $r/$ROUNDS"
  beside "healthy-$r" "$G/introspected/fixed"
  beside "blackholed-$r" "$G/blackholed/fixed"
done
python3 bench/summarize_auth.py "$OUT" "$ROUNDS" | tee "$OUT/summary.md"
