#!/usr/bin/env bash
# How far below nginx the floor is: rampart, nginx and the least an HTTP/1.1 proxy on tokio can
# do (`crates/gateway/examples/h1_floor.rs`: parse the head, pass it on unchanged, pass the
# response back; the same system calls, none of a gateway's work), side by side in one run.
#
#   bash bench/floor.sh                    # 3 rounds of 10 s each, alternating
#   DURATION=5 ROUNDS=5 bash bench/floor.sh
#
# Core 0: the proxy under test (one at a time; each on one thread, nginx one worker). Core 1:
# the echo backend and wrk (-t1 -c64). Each round reports requests/s, p99 and the proxy's user
# and kernel CPU time per request (/proc/PID/stat around the run). Round 0 is wrk straight to
# the backend, both on core 1: the most the load side can ask of any proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
OUT=bench/out/floor
mkdir -p "$OUT"
rm -f "$OUT"/*.txt "$OUT"/*.cpu
. bench/common.sh
need_tools "nginx wrk" "nginx-light wrk"
build_release
cargo build --release -q -p rampart-gateway --example h1_floor
FLOOR_BIN=target/release/examples/h1_floor

BACKEND=127.0.0.1:19500
declare -A ADDR=([backend]=$BACKEND [floor]=127.0.0.1:19501 [rampart]=127.0.0.1:19502 [nginx]=127.0.0.1:19503)
declare -A PID
taskset -c 1 "$BIN" testkit echo --listen "$BACKEND" >"$OUT/backend.log" 2>&1 &
PID[backend]=$!
PIDS+=($!)
taskset -c 0 "$FLOOR_BIN" "${ADDR[floor]}" "$BACKEND" >"$OUT/floor.log" 2>&1 &
PID[floor]=$!
PIDS+=($!)
gateway_yaml "$OUT/rampart.yaml" "${ADDR[rampart]}" "$BACKEND"
RUST_LOG=warn taskset -c 0 "$BIN" gateway --config "$OUT/rampart.yaml" >"$OUT/rampart.log" 2>&1 &
PID[rampart]=$!
PIDS+=($!)
nginx_conf 1 "$BACKEND" "listen ${ADDR[nginx]};"
taskset -c 0 nginx -c "$PWD/$OUT/nginx.conf" -p "$PWD/$OUT" 2>>"$OUT/nginx-error.log"
sleep 1
PID[nginx]=$(pgrep -P "$(cat "$OUT/nginx.pid")" | head -1)
for name in floor rampart nginx; do
  for _ in $(seq 1 50); do curl -sf -o /dev/null "http://${ADDR[$name]}/fixed" && break; sleep 0.1; done
done

ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }
echo "| round | proxy | req/s | p99 ms | user µs/req | kernel µs/req |"
echo "|---:|---|---:|---:|---:|---:|"
for round in $(seq 0 "$ROUNDS"); do
  names="floor rampart nginx"
  [ "$round" = 0 ] && names=backend
  for name in $names; do
    before=$(ticks "${PID[$name]}")
    taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://${ADDR[$name]}/fixed" >"$OUT/$name-$round.txt"
    after=$(ticks "${PID[$name]}")
    python3 - "$OUT/$name-$round.txt" $before $after "$(getconf CLK_TCK)" "$round" "$name" <<'PY'
import sys
sys.path.insert(0, "bench")
from wrk_parse import wrk
path, u0, s0, u1, s1, hz, rnd, name = sys.argv[1:]
rps, _, p99, _, total = wrk(path)
per = lambda a, b: (int(b) - int(a)) / int(hz) * 1e6 / max(total, 1)
print(f"| {rnd} | {name} | {rps:,.0f} | {p99:.2f} | {per(u0, u1):.2f} | {per(s0, s1):.2f} |")
PY
  done
done
