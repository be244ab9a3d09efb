#!/usr/bin/env bash
# What parking costs a client that pauses between requests: C connections each send a request
# every GAP ms (150) to a gateway that parks a connection idle for 100 ms (`limits.park_after`,
# the default: every request finds its connection parked) and to one that parks after 10 s
# (never, here). Both gateways run on core 0; the echo backend and the client on core 1.
# Rounds alternate the two; each reports the gateway's CPU time per request (user and system,
# all its threads, /proc/PID/stat) and how many requests found their connection parked.
#
#   bash bench/park_churn.sh                 # C=500, GAP=150, 3 rounds of 10 s
#   C=1000 GAP=300 ROUNDS=2 bash bench/park_churn.sh
set -euo pipefail
cd "$(dirname "$0")/.."
C=${C:-500}
GAP=${GAP:-150}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-10}
OUT=bench/out/park_churn
mkdir -p "$OUT"
. bench/common.sh
if [ -z "${BIN:-}" ]; then build_release; fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
BACKEND=127.0.0.1:19610
taskset -c 1 "$BIN" testkit echo --listen "$BACKEND" >"$OUT/backend.log" 2>&1 &
PIDS+=($!)

declare -A GW_PID GW_PORT GW_ADMIN
port=19611
for park in 100ms 10s; do
  cat >"$OUT/park-$park.yaml" <<YAML
listeners: [{ name: public, address: "127.0.0.1:$port" }]
admin: { address: "127.0.0.1:$((port + 1))" }
upstreams: [{ name: echo, endpoints: ["$BACKEND"] }]
routes: [{ name: echo, upstream: echo, timeout: 10s }]
limits: { max_connections: 30000, max_inflight: 30000, park_after: $park }
YAML
  RUST_LOG=warn taskset -c 0 "$BIN" gateway --config "$OUT/park-$park.yaml" >"$OUT/park-$park.log" 2>&1 &
  GW_PID[$park]=$!
  PIDS+=($!)
  GW_PORT[$park]=$port
  GW_ADMIN[$park]=$((port + 1))
  for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/fixed" && break; sleep 0.1; done
  port=$((port + 2))
done

# utime + stime of the whole process, threads that have ended included, in µs.
cpu_us() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.0f", ($14 + $15) * 1e6 / hz}' "/proc/$1/stat"; }
parked() { curl -s "http://127.0.0.1:$1/metrics" | awk '/^rampart_connections_parked_total / {print $2}'; }

echo "| round | park_after | requests | parked per request | gateway CPU µs per request |"
echo "|---:|---|---:|---:|---:|"
for round in $(seq 1 "$ROUNDS"); do
  for park in 100ms 10s; do
    pid=${GW_PID[$park]}
    c0=$(cpu_us "$pid"); p0=$(parked "${GW_ADMIN[$park]}")
    n=$(taskset -c 1 /usr/bin/python3 bench/park_churn.py "127.0.0.1:${GW_PORT[$park]}" "$C" "$GAP" "$SECS")
    c1=$(cpu_us "$pid"); p1=$(parked "${GW_ADMIN[$park]}")
    python3 -c "print(f'| $round | $park | $n | {($p1 - $p0) / max($n, 1):.2f} | {($c1 - $c0) / max($n, 1):.2f} |')"
    sleep 1
  done
done
