#!/usr/bin/env bash
# Memory per idle keep-alive connection: rampart against nginx, HTTP/1.1, HTTP/1.1 over TLS
# (TLS 1.3, a throwaway self-signed P-256 certificate) and h2c.
#
#   bash bench/idle_memory.sh              # N=5000 connections per measure
#   N=2000 BIN=path/to/rampart bash bench/idle_memory.sh   # another build, fewer connections
#
# For each proxy and protocol: the proxy's RSS before, then N connections opened one after
# another, each served one request (so one upstream connection serves them all), then held
# idle; the RSS growth divided by N is what one idle client connection costs. Then N more,
# held beside the first: their growth is the cost of one more idle connection once the
# process holds the memory that serving them needed on the way (an allocator keeps what was
# freed; rampart frees an idle HTTP/1.1 connection's buffers `limits.park_after` (100 ms) after its last request).
# Each measure starts a fresh proxy. nginx: one worker, its worker's RSS. Results in
# bench/out/idle/.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-5000}
OUT=bench/out/idle
mkdir -p "$OUT"
rm -f "$OUT"/*
. bench/common.sh
need_tools "nginx" "nginx-light"
/usr/bin/python3 -c "import h2" 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3-h2 >/dev/null; }
if [ -z "${BIN:-}" ]; then build_release; fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
BACKEND=127.0.0.1:19600
PROXY=127.0.0.1:19680
NGINX_H1=127.0.0.1:19681
NGINX_H2=127.0.0.1:19682
PROXY_TLS=127.0.0.1:19683
NGINX_TLS=127.0.0.1:19684
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -keyout "$OUT/key.pem" -out "$OUT/cert.pem" 2>/dev/null

taskset -c 1 "$BIN" testkit echo --listen "$BACKEND" >"$OUT/backend.log" 2>&1 &
PIDS+=($!)
cat >"$OUT/rampart.yaml" <<YAML
listeners:
  - { name: public, address: "$PROXY" }
  - { name: tls, address: "$PROXY_TLS", tls: { cert_file: "$PWD/$OUT/cert.pem", key_file: "$PWD/$OUT/key.pem" } }
upstreams: [{ name: echo, endpoints: ["$BACKEND"] }]
routes: [{ name: echo, upstream: echo, timeout: 10s }]
limits: { max_connections: 30000, max_inflight: 30000, idle_timeout: 300s }
YAML
nginx_conf 1 "$BACKEND" "listen $NGINX_H1;
    listen $NGINX_H2 http2;
    listen $NGINX_TLS ssl;
    ssl_certificate $PWD/$OUT/cert.pem;
    ssl_certificate_key $PWD/$OUT/key.pem;" "access_log off;
  keepalive_timeout 300s;"

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# hold ADDR N READY MODE: opens N idle connections (the holder stays running); waits for them.
hold() {
  /usr/bin/python3 bench/idle_holder.py "$1" "$2" "$3" "$4" & HOLDERS+=($!); PIDS+=($!)
  for _ in $(seq 1 600); do [ -s "$3" ] && break; sleep 0.2; done
  sleep 2
}

# measure NAME PID ADDR MODE: prints "| NAME | before | after N | per connection | after 2N |
# per connection of the second N | served |"
measure() {
  local name=$1 pid=$2 addr=$3 mode=$4 before first second served holder
  local ready=$OUT/$(echo "$name" | tr -c 'a-z0-9\n' '-').ready
  # One request first, so that what every proxy sets up on its first request is in "before".
  /usr/bin/python3 bench/idle_holder.py "$addr" 1 "$OUT/warm.ready" "$mode" & holder=$!
  for _ in $(seq 1 100); do [ -s "$OUT/warm.ready" ] && break; sleep 0.1; done
  kill "$holder"; wait "$holder" 2>/dev/null || true
  sleep 1
  before=$(rss_kb "$pid")
  HOLDERS=()
  hold "$addr" "$N" "$ready.1" "$mode"
  first=$(rss_kb "$pid")
  hold "$addr" "$N" "$ready.2" "$mode"
  second=$(rss_kb "$pid")
  served=$(( $(cat "$ready.1" 2>/dev/null || echo 0) + $(cat "$ready.2" 2>/dev/null || echo 0) ))
  kill "${HOLDERS[@]}"; wait "${HOLDERS[@]}" 2>/dev/null || true
  python3 -c "print(f'| $name | $before | $first | {($first - $before) / $N:.2f} | $second | {($second - $first) / $N:.2f} | $served |')"
}

start_rampart() {
  RUST_LOG=warn taskset -c 0 "$BIN" gateway --config "$OUT/rampart.yaml" >>"$OUT/rampart.log" 2>&1 &
  RAMPART_PID=$!
  PIDS+=($RAMPART_PID)
  for _ in $(seq 1 100); do curl -sf -o /dev/null "http://$PROXY/fixed" && return; sleep 0.1; done
  echo "rampart not answering"; exit 1
}
stop_rampart() { kill "$RAMPART_PID"; wait "$RAMPART_PID" 2>/dev/null || true; }
start_nginx() {
  taskset -c 0 nginx -c "$PWD/$OUT/nginx.conf" -p "$PWD/$OUT" 2>>"$OUT/nginx-error.log"
  sleep 0.5
  NGINX_WORKER=$(pgrep -P "$(cat "$OUT/nginx.pid")" | head -1)
}
stop_nginx() { kill "$(cat "$OUT/nginx.pid")"; sleep 1; }

summary=$OUT/summary.md
{
  echo "| proxy, protocol | RSS before (KiB) | with $N idle (KiB) | KiB per idle connection | with $((2 * N)) idle (KiB) | KiB per idle connection, second $N | served |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
} >"$summary"
# Not in a pipeline: the processes started here must stay this shell's, for cleanup.
start_rampart; measure "rampart, HTTP/1.1" "$RAMPART_PID" "$PROXY" h1 >>"$summary"; stop_rampart
start_rampart; measure "rampart, HTTP/1.1 over TLS" "$RAMPART_PID" "$PROXY_TLS" h1-tls >>"$summary"; stop_rampart
start_rampart; measure "rampart, h2c" "$RAMPART_PID" "$PROXY" h2c >>"$summary"; stop_rampart
start_nginx; measure "nginx, HTTP/1.1" "$NGINX_WORKER" "$NGINX_H1" h1 >>"$summary"; stop_nginx
start_nginx; measure "nginx, HTTP/1.1 over TLS" "$NGINX_WORKER" "$NGINX_TLS" h1-tls >>"$summary"; stop_nginx
start_nginx; measure "nginx, h2c" "$NGINX_WORKER" "$NGINX_H2" h2c >>"$summary"; stop_nginx
cat "$summary"
