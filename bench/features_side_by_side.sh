#!/usr/bin/env bash
# The cost of the access log and tracing, measured side by side: gateways share core 0 at the
# same time — both off, both off again (the control), both on (the JSON access log to a file,
# tracing sampled at 1% to an OTLP sink) — each loaded by its own wrk on core 1. Whatever
# the machine does during a round (another tenant, a slower clock) falls on all three alike, so
# a round's ratios are not the difference of two runs taken at different moments.
#
#   bash bench/features_side_by_side.sh              # 10 rounds of 10 s (~2 minutes)
#   ROUNDS=20 DURATION=5 bash bench/features_side_by_side.sh
#   CONFIGS="control log trace" bash bench/features_side_by_side.sh   # each feature alone
#
# Per round and gateway: the CPU time it used (user + system, all threads, /proc/PID/stat)
# divided by the requests it served — the cost of a request, including the log writer's
# thread and the kernel's work for the file — and its throughput. Reported: each round's ratio
# to the off gateway, median and range. The control (off against off) shows the method's own
# error; the scheduler shares the core by thread, so throughput can favour the gateway with
# more threads, CPU time per request cannot.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-10}
CONNS=${CONNS:-32}
OUT=bench/out/features-side-by-side
mkdir -p "$OUT"
rm -f "$OUT"/*
. bench/common.sh
need_tools "nginx wrk" "nginx-light wrk"
build_release

BACKEND=127.0.0.1:19700
OTLP=127.0.0.1:19785
taskset -c 1 "$BIN" testkit echo --listen "$BACKEND" >"$OUT/echo.log" 2>&1 & PIDS+=($!)
cat >"$OUT/otlp-sink.conf" <<CONF
worker_processes 1;
pid $PWD/$OUT/otlp-sink.pid;
error_log $PWD/$OUT/otlp-sink-error.log warn;
events { worker_connections 256; }
http { access_log off; client_body_buffer_size 1m; server { listen $OTLP; location / { return 200 "{}"; } } }
CONF
taskset -c 1 nginx -c "$PWD/$OUT/otlp-sink.conf" -p "$PWD/$OUT"
trap 'cleanup; [ -f "$OUT/otlp-sink.pid" ] && kill "$(cat "$OUT/otlp-sink.pid")" 2>/dev/null || true' EXIT

declare -A PORT SERVER_PID
gateway() { # name port extra-yaml
  cat >"$OUT/$1.yaml" <<YAML
listeners: [{ name: public, address: "127.0.0.1:$2" }]
upstreams: [{ name: echo, endpoints: ["$BACKEND"] }]
routes: [{ name: echo, upstream: echo, timeout: 10s }]
limits: { max_connections: 30000, max_inflight: 30000 }
$3
YAML
  RUST_LOG=error taskset -c 0 "$BIN" gateway --config "$OUT/$1.yaml" >"$OUT/$1.log" 2>&1 & PIDS+=($!)
  SERVER_PID[$1]=$!
  PORT[$1]=$2
}
LOG="access_log: { path: $PWD/$OUT/rampart.access }"
TRACE="tracing: { otlp_endpoint: \"http://$OTLP/v1/traces\", sample: 0.01 }"
read -r -a NAMES <<<"off ${CONFIGS:-control on}"
port=19780
for name in "${NAMES[@]}"; do
  case $name in
    off | control) gateway "$name" $port "" ;;
    log) gateway log $port "$LOG" ;;
    trace) gateway trace $port "$TRACE" ;;
    on) gateway on $port "$LOG
$TRACE" ;;
    *) echo "unknown config: $name (off, control, log, trace, on)"; exit 1 ;;
  esac
  port=$((port + 1))
done
for name in "${NAMES[@]}"; do
  for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:${PORT[$name]}/fixed" && break; sleep 0.1; done
  curl -sf -o /dev/null "http://127.0.0.1:${PORT[$name]}/fixed" || { echo "not answering: $name"; exit 1; }
done
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

echo "== $ROUNDS rounds of ${DURATION}s: ${NAMES[*]} at once on core 0, a wrk -c$CONNS each on core 1"
for r in $(seq 1 "$ROUNDS"); do
  echo "   round $r/$ROUNDS"
  declare -A BEFORE=() LOAD=()
  for name in "${NAMES[@]}"; do BEFORE[$name]=$(ticks "${SERVER_PID[$name]}"); done
  for name in "${NAMES[@]}"; do
    taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:${PORT[$name]}/fixed" >"$OUT/$name-$r.txt" &
    LOAD[$name]=$!
  done
  for name in "${NAMES[@]}"; do wait "${LOAD[$name]}"; done
  for name in "${NAMES[@]}"; do
    echo $(( $(ticks "${SERVER_PID[$name]}") - BEFORE[$name] )) >"$OUT/$name-$r.ticks"
  done
done

python3 - "$OUT" "$ROUNDS" "$(getconf CLK_TCK)" "${NAMES[@]}" <<'PY' | tee "$OUT/summary.md"
import sys
sys.path.insert(0, "bench")
from wrk_parse import wrk
out, rounds, hz, names = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
LABELS = {"off": "access log and tracing off", "control": "off again (the control)",
          "log": "JSON access log only", "trace": "tracing at 1% only",
          "on": "JSON access log + tracing at 1%"}
def run(name, r):
    w = wrk(f"{out}/{name}-{r}.txt")
    ticks = int(open(f"{out}/{name}-{r}.ticks").read())
    return w[0], ticks * 1e6 / hz / w[4]  # req/s, CPU µs per request
def stats(values):
    v = sorted(values)
    return v[len(v) // 2], v[0], v[-1]
print("| gateway | CPU µs per request (median) | vs off, per round: median (range) | req/s (median) | vs off, per round: median (range) |")
print("|---|---:|---|---:|---|")
for name, label in ((n, LABELS[n]) for n in names):
    runs = [run(name, r) for r in range(1, rounds + 1)]
    base = [run("off", r) for r in range(1, rounds + 1)]
    cpu = stats(c for _, c in runs)
    cpu_ratio = stats(c / b[1] for (_, c), b in zip(runs, base))
    rps = stats(q for q, _ in runs)
    rps_ratio = stats(q / b[0] for (q, _), b in zip(runs, base))
    print(f"| {label} | {cpu[0]:.2f} | **{cpu_ratio[0]:.3f}** ({cpu_ratio[1]:.3f} – {cpu_ratio[2]:.3f}) "
          f"| {rps[0]:,.0f} | {rps_ratio[0]:.3f} ({rps_ratio[1]:.3f} – {rps_ratio[2]:.3f}) |")
PY
