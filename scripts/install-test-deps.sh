#!/usr/bin/env bash
# Installs what the page tests need from Debian's packages: headless Chromium (renders the status
# page and takes a screenshot) and feedparser (reads the Atom and RSS feeds as feed readers do).
# Idempotent; does nothing when both are present. The tests run Debian's /usr/bin/python3.
set -euo pipefail
have_chromium() { command -v chromium-headless-shell >/dev/null || command -v chromium >/dev/null; }
have_feedparser() { /usr/bin/python3 -c 'import feedparser' 2>/dev/null; }
if have_chromium && have_feedparser; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium-headless-shell python3-feedparser fonts-dejavu-core >/dev/null
have_chromium && have_feedparser
