#!/usr/bin/env bash
# Installs Prometheus and promtool from Debian's `prometheus` package, needed by
# tests/monitoring (promtool check/test rules, and a real Prometheus server
# scraping a real `modelplane serve`). Idempotent: does nothing if both exist.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    echo "prometheus and promtool already installed: $(command -v prometheus)"
    exit 0
fi

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

# --no-install-recommends (in apt_install): the server and promtool are all the
# tests need; recommends would pull in node-exporter and friends.
apt_install prometheus

# The Debian package starts a system-wide Prometheus via systemd where systemd
# runs; the tests start their own on free loopback ports and do not need it.
command -v prometheus
command -v promtool
prometheus --version 2>&1 | head -n 1
