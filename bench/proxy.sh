#!/usr/bin/env bash
# Proxy benchmark: rampart against nginx, same backend, same load, same machine, one run.
#
#   bash bench/proxy.sh            # full run (about 4 minutes after the release build)
#   DURATION=5 ROUNDS=1 bash bench/proxy.sh   # quick look
#   PROXY_CORES=0,1 LOAD_CORES=0,1 NGINX_WORKERS=2 bash bench/proxy.sh   # two proxy cores
#
# Core 0 (PROXY_CORES): the proxy under test (rampart or nginx, one at a time); rampart runs a
# worker thread per core it may use, nginx NGINX_WORKERS worker processes.
# Core 1 (LOAD_CORES): the echo backend and the load generator (wrk for HTTP/1.1, h2load for
# h2c). With two cores, two proxy cores share them with the load.
# Each proxy is measured ROUNDS times, alternating, and the median round is reported.
# Results go to bench/out/ (raw outputs) and bench/out/summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
IDLE_CONNS=${IDLE_CONNS:-10000}
PROXY_CORES=${PROXY_CORES:-0}
LOAD_CORES=${LOAD_CORES:-1}
NGINX_WORKERS=${NGINX_WORKERS:-1}
OUT=bench/out
mkdir -p "$OUT"
rm -f "$OUT"/*.txt "$OUT"/*.cpu "$OUT"/*.log "$OUT"/*.tsv

. bench/common.sh
need_tools "nginx wrk h2load" "nginx-light wrk nghttp2-client"
build_release

BACKEND=127.0.0.1:19000
RAMPART=127.0.0.1:18080
NGINX=127.0.0.1:18081
NGINX_H2=127.0.0.1:18082

echo "== starting echo backend on cores $LOAD_CORES"
taskset -c "$LOAD_CORES" "$BIN" testkit echo --listen "$BACKEND" --name bench >"$OUT/backend.log" 2>&1 &
PIDS+=($!)

gateway_yaml "$OUT/rampart.yaml" "$RAMPART" "$BACKEND"
echo "== starting rampart on cores $PROXY_CORES"
RUST_LOG=warn taskset -c "$PROXY_CORES" "$BIN" gateway --config "$OUT/rampart.yaml" >"$OUT/rampart.log" 2>&1 &
RAMPART_PID=$!
PIDS+=($RAMPART_PID)

nginx_conf "$NGINX_WORKERS" "$BACKEND" "listen $NGINX;
    listen $NGINX_H2 http2;
    http2_max_requests 1000000;" "" 'proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;'
echo "== starting nginx ($NGINX_WORKERS worker(s)) on cores $PROXY_CORES"
taskset -c "$PROXY_CORES" nginx -c "$PWD/$OUT/nginx.conf" -p "$PWD/$OUT" 2>>"$OUT/nginx-error.log"
sleep 1
mapfile -t NGINX_WORKERS_PIDS < <(pgrep -P "$(cat "$OUT/nginx.pid")")

for url in "http://$BACKEND/fixed" "http://$RAMPART/fixed" "http://$NGINX/fixed"; do
  curl -sf -o /dev/null "$url" || { echo "not answering: $url"; exit 1; }
done

# Resident memory of processes, summed (KiB).
rss_kb() { for p in "$@"; do awk '/VmRSS/ {print $2}' "/proc/$p/status"; done | awk '{s += $1} END {print s}'; }
echo "== idle memory"
echo "rampart_idle_kb $(rss_kb $RAMPART_PID)" >"$OUT/memory.txt"
echo "nginx_idle_kb $(rss_kb "${NGINX_WORKERS_PIDS[@]}")" >>"$OUT/memory.txt"

# User and system CPU time (clock ticks) processes have used so far, summed.
cpu_ticks() { for p in "$@"; do awk '{print $14, $15}' "/proc/$p/stat"; done | awk '{u += $1; s += $2} END {print u, s}'; }
wrk_run() { # name url round
  local pids=()
  case $1 in rampart) pids=("$RAMPART_PID") ;; nginx) pids=("${NGINX_WORKERS_PIDS[@]}") ;; esac
  local before=
  [ ${#pids[@]} -eq 0 ] || before=$(cpu_ticks "${pids[@]}")
  taskset -c "$LOAD_CORES" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$2" >"$OUT/h1-$1-$3.txt"
  # The proxy's user and kernel time over the run: summarize.py divides them by its requests.
  [ ${#pids[@]} -eq 0 ] || echo "$before $(cpu_ticks "${pids[@]}") $(getconf CLK_TCK)" >"$OUT/h1-$1-$3.cpu"
}
h2_run() { # name url round
  taskset -c "$LOAD_CORES" h2load -c 16 -m 16 -D "$DURATION" --log-file="$OUT/h2-$1-$3.tsv" "$2" >"$OUT/h2-$1-$3.txt"
}

echo "== HTTP/1.1: wrk -t1 -c$CONNS -d${DURATION}s, $ROUNDS rounds"
wrk_run backend "http://$BACKEND/fixed" 0
for r in $(seq 1 "$ROUNDS"); do
  printf '   round %s/%s: rampart' "$r" "$ROUNDS"; wrk_run rampart "http://$RAMPART/fixed" "$r"
  printf ', nginx\n'; wrk_run nginx "http://$NGINX/fixed" "$r"
done
echo "== HTTP/2 (h2c): h2load -c16 -m16 -D$DURATION, $ROUNDS rounds"
h2_run backend "http://$BACKEND/fixed" 0
for r in $(seq 1 "$ROUNDS"); do
  printf '   round %s/%s: rampart' "$r" "$ROUNDS"; h2_run rampart "http://$RAMPART/fixed" "$r"
  printf ', nginx\n'; h2_run nginx "http://$NGINX_H2/fixed" "$r"
done

echo "== memory with $IDLE_CONNS idle keep-alive connections"
for target in rampart nginx; do
  if [ $target = rampart ]; then addr=$RAMPART; pids=("$RAMPART_PID"); else addr=$NGINX; pids=("${NGINX_WORKERS_PIDS[@]}"); fi
  python3 bench/idle_conns.py "$addr" "$IDLE_CONNS" "$OUT/idle-$target.ready" &
  holder=$!
  for _ in $(seq 1 120); do [ -f "$OUT/idle-$target.ready" ] && break; sleep 1; done
  sleep 1
  echo "${target}_10k_idle_kb $(rss_kb "${pids[@]}")" >>"$OUT/memory.txt"
  echo "${target}_10k_opened $(cat "$OUT/idle-$target.ready" 2>/dev/null || echo 0)" >>"$OUT/memory.txt"
  kill $holder 2>/dev/null || true; wait $holder 2>/dev/null || true
  rm -f "$OUT/idle-$target.ready"
  sleep 2
done

python3 bench/summarize.py "$OUT" "$ROUNDS" | tee "$OUT/summary.md"
