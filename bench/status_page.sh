#!/usr/bin/env bash
# Status page under an incident stampede: rampart's control plane serving its public page and
# Statuspage JSON, against nginx serving the very same bytes as static files (the ceiling),
# same load, same machine, one run. Also: how fast an incident update reaches the page while
# the stampede runs, and how the operator API answers meanwhile.
#
#   bash bench/status_page.sh                  # full run (about 3 minutes after the release build)
#   DURATION=5 ROUNDS=1 bash bench/status_page.sh   # quick look
#
# Core 0: the server under test (rampart control, or nginx with one worker; one at a time).
# Core 1: the load generator (wrk) and the probes.
# Results go to bench/out/status/ (raw outputs) and bench/out/status/summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
OUT=bench/out/status
rm -rf "$OUT"
mkdir -p "$OUT/www/api/v2"

. bench/common.sh
need_tools "nginx wrk" "nginx-light wrk"
build_release

CONTROL=127.0.0.1:17100
NGINX=127.0.0.1:17101

echo "== starting the control plane on core 0"
RUST_LOG=warn taskset -c 0 "$BIN" control --listen "$CONTROL" --data "$OUT/data" \
  --page-name "Example API status" >"$OUT/control.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do curl -sf -o /dev/null "http://$CONTROL/api/v2/status.json" && break; sleep 0.2; done
export RAMPART_CONTROL="http://$CONTROL"
RAMPART_TOKEN=$(python3 -c 'import json,sys;print([t["token"] for t in json.load(open(sys.argv[1])) if t["role"]=="operator"][0])' "$OUT/data/tokens.json")
export RAMPART_TOKEN

echo "== a page worth reading: 4 components, an incident with updates, a maintenance window"
for c in "Users API" "Public API" "Checkout API" "Search API"; do
  "$BIN" component set "$c" --environment production --slo 99.9 --description "The $c" >/dev/null
done
"$BIN" incident open "Elevated errors on logins" --component "Users API" --impact major \
  --message "We are investigating elevated error rates on logins." >/dev/null
"$BIN" incident update 1 --status identified --message "A bad auth-server address in a config change; rolling back." >/dev/null
FROM=$(date -u -d '+1 day' +%Y-%m-%dT%H:00:00Z)
UNTIL=$(date -u -d '+1 day 2 hours' +%Y-%m-%dT%H:00:00Z)
"$BIN" maintenance schedule "Database upgrade" --from "$FROM" --until "$UNTIL" \
  --component "Checkout API" --message "Checkout may be slow." >/dev/null
sleep 1.5 # the page reads its snapshot at most once a second

curl -sf "http://$CONTROL/" >"$OUT/www/index.html"
curl -sf "http://$CONTROL/api/v2/summary.json" >"$OUT/www/api/v2/summary.json"
echo "   page $(wc -c <"$OUT/www/index.html") bytes, summary.json $(wc -c <"$OUT/www/api/v2/summary.json") bytes"

cat >"$OUT/nginx.conf" <<CONF
worker_processes 1;
worker_rlimit_nofile 65536;
pid $PWD/$OUT/nginx.pid;
error_log $PWD/$OUT/nginx-error.log warn;
events { worker_connections 30000; }
http {
  include /etc/nginx/mime.types;
  access_log off;
  keepalive_requests 1000000;
  sendfile on;
  tcp_nopush on;
  open_file_cache max=64 inactive=60s;
  server {
    listen $NGINX;
    root $PWD/$OUT/www;
    location = / { try_files /index.html =404; }
  }
}
CONF
echo "== starting nginx (1 worker) on core 0, serving the same bytes"
taskset -c 0 nginx -c "$PWD/$OUT/nginx.conf" -p "$PWD/$OUT" 2>>"$OUT/nginx-error.log"
sleep 1
cmp -s <(curl -sf "http://$NGINX/") "$OUT/www/index.html" || { echo "nginx does not serve the page"; exit 1; }

wrk_run() { # target path name round
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://$1$2" >"$OUT/$3-$4.txt"
}

echo "== wrk -t1 -c$CONNS -d${DURATION}s, $ROUNDS rounds, alternating"
for r in $(seq 1 "$ROUNDS"); do
  printf '   round %s/%s: page (rampart' "$r" "$ROUNDS"; wrk_run "$CONTROL" / page-rampart "$r"
  printf ', nginx), summary.json (rampart'; wrk_run "$NGINX" / page-nginx "$r"
  printf ', nginx)\n'; wrk_run "$CONTROL" /api/v2/summary.json json-rampart "$r"
  wrk_run "$NGINX" /api/v2/summary.json json-nginx "$r"
done

echo "== during a stampede on the page: an incident update reaches the page, the operator API answers"
taskset -c 1 wrk -t1 -c"$CONNS" -d"$((DURATION + 5))s" "http://$CONTROL/" >"$OUT/stampede.txt" &
WRK=$!
sleep 2
taskset -c 1 python3 bench/status_probe.py "$CONTROL" "$RAMPART_TOKEN" "$BIN" >"$OUT/probe.txt"
wait $WRK

python3 bench/summarize_status.py "$OUT" "$ROUNDS" | tee "$OUT/summary.md"
