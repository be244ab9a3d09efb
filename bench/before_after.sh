#!/usr/bin/env bash
# Pass-through cost of a change: this checkout's rampart against another revision's, same
# backend, same load, same machine, one run.
#
#   bash bench/before_after.sh [REV]     # REV defaults to HEAD~1
#   DURATION=5 ROUNDS=3 bash bench/before_after.sh a73212a
#   SKIP_BUILD=1 bash bench/before_after.sh a73212a   # measure the binaries already built
#
# Core 0: the proxy under test (before or after, one at a time); core 1: the echo backend and
# wrk. Rounds alternate before/after; the median round of each is reported, with the ratio.
# Both run the same config (no optional feature switched on), so the new build runs with its
# defaults: whatever the change added to every request is in its figure.
set -euo pipefail
cd "$(dirname "$0")/.."
REV=${1:-HEAD~1}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-5}
CONNS=${CONNS:-64}
OUT=bench/out/before-after
mkdir -p "$OUT"
rm -f "$OUT"/*.txt
. bench/common.sh
need_tools wrk wrk

if [ -z "${SKIP_BUILD:-}" ]; then
  echo "== building $REV (release)"
  WT=$(mktemp -d)/before
  git worktree add -q --detach "$WT" "$REV"
  trap 'git worktree remove --force "$WT" 2>/dev/null || true' EXIT
  # A target directory of its own: workspace crates of both revisions share names and would
  # overwrite each other's build outputs.
  ROOT=$PWD
  (cd "$WT" && cargo build --release -q --target-dir "$ROOT/target/bench-before")
  cp target/bench-before/release/rampart "$OUT/rampart-before"
  git worktree remove --force "$WT"
  echo "== building this checkout (release)"
  cargo build --release -q
  cp target/release/rampart "$OUT/rampart-after"
  trap cleanup EXIT
fi

BACKEND=127.0.0.1:19000
PROXY=127.0.0.1:18080
taskset -c 1 "$OUT/rampart-after" testkit echo --listen "$BACKEND" --name bench >/dev/null 2>&1 &
PIDS+=($!)
gateway_yaml "$OUT/gateway.yaml" "$PROXY" "$BACKEND"

run() { # which round
  RUST_LOG=warn taskset -c 0 "$OUT/rampart-$1" gateway --config "$OUT/gateway.yaml" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 1 50); do curl -sf -o /dev/null "http://$PROXY/fixed" && break; sleep 0.1; done
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://$PROXY/fixed" >"$OUT/$1-$2.txt"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
for r in $(seq 1 "$ROUNDS"); do
  echo "   round $r/$ROUNDS"
  run before "$r"
  run after "$r"
done
python3 - "$OUT" "$ROUNDS" "$REV" <<'PY'
import statistics, sys
sys.path.insert(0, "bench")
from wrk_parse import wrk
out, rounds, rev = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = {}
for which in ("before", "after"):
    runs = sorted((wrk(f"{out}/{which}-{r}.txt")[:3] for r in range(1, rounds + 1)), key=lambda x: x[0])
    rows[which] = runs[len(runs) // 2]
    rows[which + "_all"] = [round(x[0]) for x in runs]
print(f"| build | req/s (median of {rounds}) | p50 ms | p99 ms | all rounds req/s |")
print("|---|---:|---:|---:|---|")
for which, label in (("before", f"before ({rev})"), ("after", "after (this checkout)")):
    rps, p50, p99 = rows[which]
    print(f"| {label} | {rps:,.0f} | {p50:.3f} | {p99:.3f} | {rows[which + '_all']} |")
b, a = rows["before"], rows["after"]
print(f"\nafter/before: throughput {a[0] / b[0]:.3f}, p99 {a[2] / b[2]:.3f}")
PY
