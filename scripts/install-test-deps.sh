#!/usr/bin/env bash
# Installs the peers the tests run against, from Debian's packages: headless Chromium (renders
# the status page and takes a screenshot), feedparser (reads the Atom and RSS feeds as feed
# readers do), nginx (a backend rampart did not write, for health checks) and Python's h2 (an
# HTTP/2 client on another stack, for the hostile-client tests), Prometheus (a real server the
# rollout's Prometheus gates query, scraping the gateways) and PostgreSQL (tests start clusters of
# their own with initdb; no system service), Redis (the shared counters of global rate limits;
# tests start their own redis-server), Python's websockets (a WebSocket client and server on
# another stack) and grpcio (gRPC client and server on gRPC's C core). Idempotent; does nothing when
# all are present. The tests run Debian's /usr/bin/python3.
set -euo pipefail
have_chromium() { command -v chromium-headless-shell >/dev/null || command -v chromium >/dev/null; }
have_python() { /usr/bin/python3 -c 'import feedparser, h2, websockets, grpc' 2>/dev/null; }
have_nginx() { [ -x /usr/sbin/nginx ]; }
have_prometheus() { [ -x /usr/bin/prometheus ]; }
have_redis() { [ -x /usr/bin/redis-server ]; }
have_postgres() { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v setpriv >/dev/null; }
if have_chromium && have_python && have_nginx && have_prometheus && have_postgres && have_redis; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# policy-rc.d keeps the package from starting a system nginx: tests start their own.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends chromium-headless-shell python3-feedparser \
  python3-h2 nginx-light fonts-dejavu-core prometheus postgresql util-linux \
  redis-server python3-websockets python3-grpcio >/dev/null
have_chromium && have_python && have_nginx && have_prometheus && have_postgres && have_redis
