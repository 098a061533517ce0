#!/usr/bin/env bash
# Installs Prometheus and promtool from Debian's `prometheus` package, needed by
# tests/monitoring (promtool check/test rules, and a real Prometheus server
# scraping a real `modelplane serve`). Idempotent: does nothing if both exist.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    echo "prometheus and promtool already installed: $(command -v prometheus)"
    exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    SUDO=(sudo)
fi

# Other setup scripts may run apt concurrently: wait for the dpkg lock instead
# of failing on it.
APT_OPTS=(-o DPkg::Lock::Timeout=600)
export DEBIAN_FRONTEND=noninteractive

# --no-install-recommends: the server and promtool are all the tests need;
# recommends would pull in node-exporter and friends.
if ! "${SUDO[@]}" apt-get install -y --no-install-recommends "${APT_OPTS[@]}" prometheus; then
    # A fresh machine has an empty or stale package list.
    "${SUDO[@]}" apt-get update "${APT_OPTS[@]}"
    "${SUDO[@]}" apt-get install -y --no-install-recommends "${APT_OPTS[@]}" prometheus
fi

# The Debian package starts a system-wide Prometheus via systemd where systemd
# runs; the tests start their own on free loopback ports and do not need it.
command -v prometheus
command -v promtool
prometheus --version 2>&1 | head -n 1
