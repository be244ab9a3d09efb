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
#   CONFIGS="control jwt introspection" bash bench/features_side_by_side.sh   # cached auth
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
otlp_sink "$OTLP" 1

declare -A PORT SERVER_PID HEADER
gateway() { # name port extra-yaml
  feature_gateway "$@"
  PORT[$1]=$2
}
# Authenticated configs: the testkit's auth server (introspection and JWKS) on core 1; every
# request carries a valid token, whose decision or verification the gateway caches.
if [[ " ${CONFIGS:-} " == *" jwt "* || " ${CONFIGS:-} " == *" introspection "* ]]; then
  taskset -c 1 "$BIN" testkit auth --listen 127.0.0.1:19701 >"$OUT/auth.out" 2>"$OUT/auth.log" & PIDS+=($!)
  for _ in $(seq 1 50); do grep -q '^jwt=' "$OUT/auth.out" 2>/dev/null && break; sleep 0.1; done
  HEADER[jwt]="authorization: Bearer $(sed -n 's/^jwt=//p' "$OUT/auth.out")"
  HEADER[introspection]="authorization: Bearer $(sed -n 's/^opaque=//p' "$OUT/auth.out")"
fi
# One route, authenticated by PROVIDER (a replacement of the default route).
auth_route() {
  echo "auth_providers:
  - { name: main, type: introspection, endpoint: \"http://127.0.0.1:19701/introspect\", timeout: 250ms, cache_ttl: 5m }
  - { name: partners, type: jwt, jwks_url: \"http://127.0.0.1:19701/.well-known/jwks.json\", issuer: \"https://auth.example.com\", audience: api }
routes: [{ name: echo, upstream: echo, timeout: 10s, auth: $1 }]"
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
    jwt) gateway jwt $port "$(auth_route partners)" ;;
    introspection) gateway introspection $port "$(auth_route main)" ;;
    *) echo "unknown config: $name (off, control, log, trace, on, jwt, introspection)"; exit 1 ;;
  esac
  port=$((port + 1))
done
for name in "${NAMES[@]}"; do
  for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:${PORT[$name]}/fixed" && break; sleep 0.1; done
  curl -sf -o /dev/null -H "${HEADER[$name]:-x-none: 1}" "http://127.0.0.1:${PORT[$name]}/fixed" || { echo "not answering: $name"; exit 1; }
done
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

echo "== $ROUNDS rounds of ${DURATION}s: ${NAMES[*]} at once on core 0, a wrk -c$CONNS each on core 1"
for r in $(seq 1 "$ROUNDS"); do
  echo "   round $r/$ROUNDS"
  declare -A BEFORE=() LOAD=()
  for name in "${NAMES[@]}"; do BEFORE[$name]=$(ticks "${SERVER_PID[$name]}"); done
  for name in "${NAMES[@]}"; do
    taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H "${HEADER[$name]:-x-none: 1}" \
      "http://127.0.0.1:${PORT[$name]}/fixed" >"$OUT/$name-$r.txt" &
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
LABELS = {"off": "pass-through (no feature on)", "control": "off again (the control)",
          "log": "JSON access log only", "trace": "tracing at 1% only",
          "on": "JSON access log + tracing at 1%", "jwt": "JWT (ES256), cached verification",
          "introspection": "introspection, cached decision"}
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
