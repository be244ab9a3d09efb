#!/usr/bin/env bash
# rampart with a control plane that survives losing a replica, on this machine:
# PostgreSQL (Debian's package, run as a plain process in a scratch folder, no system service),
# three `rampart control --replica` processes on it, a backend and two gateways that are agents
# of all three replicas. It prints which replica leads and how to kill it; watch another take
# over (`rampart fleet` shows the leader, the epoch and which replica each gateway talks through).
# Ctrl-C stops everything.
#
#   scripts/up-ha.sh            # builds target/release/rampart if it is missing
#   LEASE=5s scripts/up-ha.sh   # a shorter lease: a quicker takeover
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${RAMPART_BIN:-$root/target/release/rampart}
lease=${LEASE:-10s}
dir=$(mktemp -d /tmp/rampart-ha.XXXXXX)
chmod 755 "$dir"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped; logs were in $dir"
}
trap cleanup EXIT INT TERM

if [ ! -x "$bin" ]; then
  echo "building $bin…"
  cargo build --release -p rampart --manifest-path "$root/Cargo.toml"
fi
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$pgbin" ] || ! command -v setpriv >/dev/null; then
  echo "installing PostgreSQL from Debian's packages…"
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get install -y --no-install-recommends postgresql util-linux >/dev/null
  pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
# PostgreSQL refuses to run as root: run it as the postgres user then.
as_pg=(); [ "$(id -u)" = 0 ] && as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

pgport=$(free_port)
mkdir -m 700 "$dir/pg"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$dir/pg"
"${as_pg[@]}" "$pgbin/initdb" -D "$dir/pg" -A trust -U postgres -E UTF8 >/dev/null
"${as_pg[@]}" "$pgbin/postgres" -D "$dir/pg" -p "$pgport" -c listen_addresses=127.0.0.1 \
  -c unix_socket_directories= >"$dir/postgres.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "ready to accept connections" "$dir/postgres.log" && break; sleep 0.1; done
database="postgres://postgres@127.0.0.1:$pgport/postgres"
echo "PostgreSQL on 127.0.0.1:$pgport (data in $dir/pg)"

urls=()
declare -A replica_pid
for i in 0 1 2; do
  port=$(free_port)
  "$bin" control --listen "127.0.0.1:$port" --data "$dir/control" --database "$database" \
    --replica "r$i" --lease-ttl "$lease" --environments production >"$dir/r$i.log" 2>&1 &
  pids+=($!); replica_pid[r$i]=$!
  urls+=("http://127.0.0.1:$port")
  # The first writes the bootstrap tokens the others read.
  [ "$i" = 0 ] && for _ in $(seq 100); do [ -s "$dir/control/tokens.json" ] && break; sleep 0.1; done
done
control=$(IFS=,; echo "${urls[*]}")
token() { python3 -c "import json,sys; print(next(t['token'] for t in json.load(open(sys.argv[1])) if t['role']==sys.argv[2]))" "$dir/control/tokens.json" "$1"; }
export RAMPART_CONTROL=$control RAMPART_TOKEN=$(token operator)
agent=$(token agent)

# A backend the gateways route to, and two production gateways.
backend=$(free_port)
python3 -m http.server "$backend" --bind 127.0.0.1 --directory "$dir" >"$dir/backend.log" 2>&1 &
pids+=($!)
gateways=()
for g in 0 1; do
  port=$(free_port)
  "$bin" gateway --control "$control" --env production --instance "g$g" --token "$agent" \
    --state-dir "$dir/g$g" --listen "public=127.0.0.1:$port" --admin "127.0.0.1:$(free_port)" \
    >"$dir/g$g.log" 2>&1 &
  pids+=($!)
  gateways+=("http://127.0.0.1:$port/")
done

for _ in $(seq 100); do "$bin" fleet >/dev/null 2>&1 && break; sleep 0.2; done
cat >"$dir/config.yaml" <<EOF
listeners: [{ name: public, address: "127.0.0.1:8080" }]
upstreams: [{ name: files, endpoints: ["127.0.0.1:$backend"] }]
routes: [{ name: all, upstream: files }]
EOF
version=$("$bin" config push "$dir/config.yaml" -m "first config" --output json \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"]["id"])')
RAMPART_TOKEN=$(token approver) "$bin" deploy --env production --version "$version" \
  --break-glass "first production config" >/dev/null
sleep 2

leader=$("$bin" fleet | sed -n 's/^control plane: leader \([^ ]*\).*/\1/p')
cat <<EOF

rampart is up with three control-plane replicas:
  replicas   ${urls[*]}   (RAMPART_CONTROL is set to all three)
  gateways   ${gateways[*]}
  leader     $leader (pid ${replica_pid[$leader]:-?})
  tokens     $dir/control/tokens.json (RAMPART_TOKEN is the operator's)

Try, in another shell (export RAMPART_CONTROL=$control RAMPART_TOKEN=$RAMPART_TOKEN):
  rampart fleet                      # the leader, its epoch, and each gateway's replica
  kill -9 ${replica_pid[$leader]:-<leader pid>}                  # the leader dies; another takes over within $lease
  curl ${gateways[0]}              # the gateways serve throughout
Ctrl-C stops everything.
EOF
while true; do sleep 5; "$bin" fleet 2>/dev/null | head -1 || true; done
