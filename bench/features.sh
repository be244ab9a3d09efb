#!/usr/bin/env bash
# The cost of the access log and tracing: pass-through with both off, with both on (a JSON
# access log to a file, tracing sampled at 1% to an OTLP receiver), and nginx with its access
# log on, same backend, same load, same machine, one run.
#
#   bash bench/features.sh                       # ~5 minutes after the release build
#   DURATION=5 ROUNDS=1 bash bench/features.sh   # quick look
#
# Three measures: throughput (wrk), the proxy's CPU time per request (/proc), and, with perf
# installed, the share of the proxy's CPU samples spent in the access log's and tracing's code.
#
# Core 0: the proxy under test (one at a time; the others sit idle). Core 1: the echo backend,
# an OTLP sink (nginx answering 200) and wrk. Rounds alternate off, on, nginx; the median round is reported.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-5}
OUT=bench/out/features
mkdir -p "$OUT"
rm -f "$OUT"/*.txt "$OUT"/*.log "$OUT"/*.access "$OUT"/*.ticks "$OUT"/*.md "$OUT"/perf-*.data
. bench/common.sh
need_tools "nginx wrk" "nginx-light wrk"
build_release

BACKEND=127.0.0.1:19200
taskset -c 1 "$BIN" testkit echo --listen "$BACKEND" >"$OUT/echo.log" 2>&1 & PIDS+=($!)
# The OTLP sink on core 1.
OTLP=127.0.0.1:19285
otlp_sink "$OTLP" 1

declare -A SERVER_PID
gateway() { feature_gateway "$1" "$2" "$4" "$3"; } # name port admin extra-yaml
# CPU time (user + system, all threads, in clock ticks) a process has used so far: divided by
# the requests served, a cost that another process taking the core's time does not change.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
gateway off 19280 19290 ""
gateway on 19281 19291 "access_log: { path: $PWD/$OUT/rampart.access }
tracing: { otlp_endpoint: \"http://$OTLP/v1/traces\", sample: 0.01 }"
gateway log 19283 19293 "access_log: { path: $PWD/$OUT/rampart-log.access }"
gateway trace 19284 19294 "tracing: { otlp_endpoint: \"http://$OTLP/v1/traces\", sample: 0.01 }"

nginx_conf 1 "$BACKEND" "listen 127.0.0.1:19282;" "access_log $PWD/$OUT/nginx.access combined;" \
  'proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;'
taskset -c 0 nginx -c "$PWD/$OUT/nginx.conf" -p "$PWD/$OUT" 2>>"$OUT/nginx-error.log"
sleep 1
SERVER_PID[nginx]=$(pgrep -P "$(cat "$OUT/nginx.pid")" | head -1)
for port in 19280 19281 19282 19283 19284; do
  curl -sf -o /dev/null "http://127.0.0.1:$port/fixed" || { echo "not answering: $port"; exit 1; }
done

echo "== wrk -t1 -c64 -d${DURATION}s, $ROUNDS rounds: off, on (access log + tracing at 1%), log only, tracing only, nginx (access log)"
for r in $(seq 1 "$ROUNDS"); do
  echo "   round $r/$ROUNDS"
  # The order turns each round, so that no config always runs first or after the same one.
  runs=(off:19280 on:19281 log:19283 trace:19284 nginx:19282)
  shift_by=$(( (r - 1) % ${#runs[@]} ))
  for run in "${runs[@]:$shift_by}" "${runs[@]:0:$shift_by}"; do
    name=${run%%:*}
    before=$(ticks "${SERVER_PID[$name]}")
    taskset -c 1 wrk -t1 -c64 -d"${DURATION}s" --latency "http://127.0.0.1:${run#*:}/fixed" >"$OUT/$name-$r.txt"
    echo $(( $(ticks "${SERVER_PID[$name]}") - before )) >"$OUT/$name-$r.ticks"
  done
done
# A profile of both on and off under the same load: the share of the proxy's own CPU samples
# whose stacks pass through the access log's or tracing's code (bench/perf_share.py). Off
# checks that the patterns catch nothing else.
PROFILE=${PROFILE:-5}
if command -v perf >/dev/null; then
  echo "== perf record, ${PROFILE}s each: on, off"
  for run in on:19281 off:19280; do
    name=${run%%:*}
    taskset -c 1 wrk -t1 -c64 -d"$((PROFILE + 2))s" "http://127.0.0.1:${run#*:}/fixed" >/dev/null &
    load=$!
    sleep 1
    perf record -q -F 999 --call-graph dwarf,16384 -p "${SERVER_PID[$name]}" -o "$OUT/perf-$name.data" -- sleep "$PROFILE" >/dev/null 2>&1
    wait "$load"
    perf script -i "$OUT/perf-$name.data" 2>/dev/null | python3 bench/perf_share.py >"$OUT/profile-$name.md"
    rm -f "$OUT/perf-$name.data"
  done
else
  echo "perf not found (Debian: apt-get install linux-perf): no profile" | tee "$OUT/profile-on.md" >"$OUT/profile-off.md"
fi
curl -s http://127.0.0.1:19291/metrics | grep -E '^rampart_(access_log|trace_spans)' >"$OUT/metrics.txt" || true
python3 - "$OUT" "$ROUNDS" "$(getconf CLK_TCK)" <<'PY' | tee "$OUT/summary.md"
import os, sys
sys.path.insert(0, "bench")
from wrk_parse import wrk
out, rounds, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def cpu_us(name, r):
    # The proxy's CPU time (user + system) per request served in that run.
    return int(open(f"{out}/{name}-{r}.ticks").read()) * 1e6 / hz / wrk(f"{out}/{name}-{r}.txt")[4]
def median(name):
    runs = sorted((wrk(f"{out}/{name}-{r}.txt") for r in range(1, rounds + 1)), key=lambda x: x[0])
    return runs[len(runs) // 2], [r[0] for r in runs]
off, on, ngx = median("off"), median("on"), median("nginx")
log, trace = median("log"), median("trace")
print("| proxy | req/s | p50 ms | p99 ms | non-2xx | vs off | all rounds req/s |")
print("|---|---:|---:|---:|---:|---:|---|")
for label, (m, all_) in (("rampart, access log and tracing off", off), ("rampart, JSON access log only", log), ("rampart, tracing at 1% only", trace), ("rampart, JSON access log + tracing at 1%", on), ("nginx 1 worker, access log on (combined)", ngx)):
    print(f"| {label} | {m[0]:,.0f} | {m[1]:.3f} | {m[2]:.3f} | {m[3]} | {m[0] / off[0][0]:.3f} | {min(all_):,.0f} – {max(all_):,.0f} |")
print()
print(f"on/off: throughput **{on[0][0] / off[0][0]:.3f}**, p99 {on[0][2] / off[0][2]:.2f}; "
      f"on/nginx: throughput **{on[0][0] / ngx[0][0]:.3f}**, p99 {on[0][2] / ngx[0][2]:.2f}")
def paired(name):
    # Each round's ratio to that round's off run: drift of the machine between rounds cancels.
    ratios = sorted(wrk(f"{out}/{name}-{r}.txt")[0] / wrk(f"{out}/off-{r}.txt")[0] for r in range(1, rounds + 1))
    return ratios[len(ratios) // 2], ratios[0], ratios[-1]
print()
print("Per round, against that round's off run (median, range): " + "; ".join(
    f"{name} {m:.3f} ({lo:.3f} – {hi:.3f})" for name, (m, lo, hi) in ((n, paired(n)) for n in ("log", "trace", "on", "nginx"))))
print()
print("CPU time (user + system) per request, µs — the cost itself, which another process on the core does not change:")
print()
print("| proxy | median µs/request | vs off | per round vs off: median (range) |")
print("|---|---:|---:|---|")
def cpu(name):
    per = sorted(cpu_us(name, r) for r in range(1, rounds + 1))
    ratios = sorted(cpu_us(name, r) / cpu_us("off", r) for r in range(1, rounds + 1))
    return per[len(per) // 2], ratios
base = cpu("off")[0]
for name in ("off", "log", "trace", "on", "nginx"):
    m, ratios = cpu(name)
    print(f"| {name} | {m:.2f} | {m / base:.3f} | {ratios[len(ratios) // 2]:.3f} ({ratios[0]:.3f} – {ratios[-1]:.3f}) |")
print()
print("Profile, both on (`perf record --call-graph dwarf`, then `bench/perf_share.py`):")
print()
print(open(f"{out}/profile-on.md").read().strip())
print()
print("The same patterns over a profile with both off (what they catch that is not theirs):")
print()
print(open(f"{out}/profile-off.md").read().strip())
print()
print("```")
print(open(f"{out}/metrics.txt").read().strip())
print("```")
PY
