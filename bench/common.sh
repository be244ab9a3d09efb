# Shared by the benchmark scripts (sourced, not run): installing the load tools, the release
# build, stopping everything a script started, and the gateway config that proxies to the echo
# backend. Expects OUT to be set.

need() { command -v "$1" >/dev/null 2>&1; }

# need_tools "nginx wrk" "nginx-light wrk": installs the Debian packages unless every tool is there.
need_tools() {
  local tool
  for tool in $1; do
    if ! need "$tool"; then
      echo "== installing $2 (Debian packages)"
      apt-get update -qq && apt-get install -y -qq $2 >/dev/null
      return
    fi
  done
}

build_release() {
  [ "$(nproc)" -ge 2 ] || { echo "needs at least 2 cores"; exit 1; }
  echo "== building rampart (release)"
  cargo build --release -q
  BIN=target/release/rampart
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}

# Everything a script starts goes into PIDS (and nginx writes $OUT/nginx.pid); all of it is
# stopped when the script exits, however it exits.
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$OUT/nginx.pid" ] && kill "$(cat "$OUT/nginx.pid")" 2>/dev/null || true
}
trap cleanup EXIT

# gateway_yaml FILE LISTEN BACKEND: one listener proxying everything to the echo backend.
gateway_yaml() {
  cat >"$1" <<YAML
listeners: [{ name: public, address: "$2" }]
admin: { address: "127.0.0.1:19901" }
upstreams:
  - { name: echo, endpoints: ["$3"], balance: p2c }
routes:
  - { name: echo, upstream: echo, timeout: 10s }
limits: { max_connections: 30000, max_inflight: 30000 }
YAML
}
