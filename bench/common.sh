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
  local nginx= f
  for f in nginx.pid otlp-sink.pid; do
    [ -f "$OUT/$f" ] && nginx="$nginx $(cat "$OUT/$f")"
  done
  for p in "${PIDS[@]:-}" $nginx; do kill "$p" 2>/dev/null || true; done
  # Wait (10 s at most) until they are gone: a gateway drains before it exits, and a run
  # started straight after would find its ports still taken.
  for _ in $(seq 1 100); do
    local left=0
    for p in "${PIDS[@]:-}" $nginx; do running "$p" && left=1; done
    [ "$left" = 0 ] && break
    sleep 0.1
  done
}
# Whether a process exists and has not exited (a zombie has).
running() { [ -n "$1" ] && [ -r "/proc/$1/stat" ] && ! awk '{exit $3 == "Z" ? 0 : 1}' "/proc/$1/stat" 2>/dev/null; }
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

# otlp_sink ADDRESS [CORE]: an OTLP/HTTP receiver that takes every export and answers 200 (an
# nginx; one that decoded every span, as the tests use, would take the load generator's core).
# Stopped by cleanup.
otlp_sink() {
  cat >"$OUT/otlp-sink.conf" <<CONF
worker_processes 1;
pid $PWD/$OUT/otlp-sink.pid;
error_log $PWD/$OUT/otlp-sink-error.log warn;
events { worker_connections 256; }
http { access_log off; client_body_buffer_size 1m; server { listen $1; location / { return 200 "{}"; } } }
CONF
  if [ -n "${2:-}" ]; then
    taskset -c "$2" nginx -c "$PWD/$OUT/otlp-sink.conf" -p "$PWD/$OUT"
  else
    nginx -c "$PWD/$OUT/otlp-sink.conf" -p "$PWD/$OUT"
  fi
}

# feature_gateway NAME PORT EXTRA-YAML [ADMIN-PORT]: a gateway on core 0 proxying everything to
# $BACKEND with the features EXTRA-YAML switches on (and its routes, if it names any); its pid
# in SERVER_PID[NAME] (an associative array the caller declares).
feature_gateway() {
  local admin= routes='routes: [{ name: echo, upstream: echo, timeout: 10s }]'
  [ -n "${4:-}" ] && admin="admin: { address: \"127.0.0.1:$4\" }"
  # EXTRA-YAML may bring its own routes.
  [[ "$3" == *"routes:"* ]] && routes=
  cat >"$OUT/$1.yaml" <<YAML
listeners: [{ name: public, address: "127.0.0.1:$2" }]
$admin
upstreams: [{ name: echo, endpoints: ["$BACKEND"] }]
$routes
limits: { max_connections: 30000, max_inflight: 30000 }
$3
YAML
  RUST_LOG=error taskset -c 0 "$BIN" gateway --config "$OUT/$1.yaml" >"$OUT/$1.log" 2>&1 &
  PIDS+=($!)
  SERVER_PID[$1]=$!
}

# nginx_conf WORKERS BACKEND SERVER [HTTP] [LOCATION]: writes $OUT/nginx.conf, nginx proxying
# everything to the echo backend at BACKEND over kept-alive upstream connections. SERVER: the
# server's listen lines and any server settings; HTTP: http-level settings (by default, no
# access log); LOCATION: more settings for the proxied location (headers to set).
nginx_conf() {
  cat >"$OUT/nginx.conf" <<CONF
worker_processes $1;
worker_rlimit_nofile 65536;
pid $PWD/$OUT/nginx.pid;
error_log $PWD/$OUT/nginx-error.log warn;
events { worker_connections 30000; }
http {
  ${4:-access_log off;}
  keepalive_requests 1000000;
  upstream echo { server $2; keepalive 256; }
  server {
    $3
    location / {
      proxy_pass http://echo;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      ${5:-}
      proxy_buffering off;
    }
  }
}
CONF
}
