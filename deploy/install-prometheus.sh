#!/usr/bin/env bash
# Install Debian's `prometheus` package so that `prometheus` and `promtool` are on PATH, for the
# operations tests (promtool checks and unit tests, a real Prometheus scraping the services).
#
#   deploy/install-prometheus.sh        idempotent: does nothing when both are installed
#
# The package's own service is not wanted: the tests start their own Prometheus on a free port.
# Starting it is prevented during the install (policy-rc.d), and a packaged Prometheus that runs
# anyway (systemd, or an earlier install) is stopped and disabled, so nothing is left on :9090.
set -euo pipefail

say() { printf '[prometheus] %s\n' "$*"; }
die() { printf '[prometheus] error: %s\n' "$*" >&2; exit 1; }

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || die "run as root (or install sudo): apt-get is needed"
  SUDO="sudo"
fi

stop_system_prometheus() {
  # systemd machines: stop and disable the unit the package installed.
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
    if systemctl list-unit-files prometheus.service >/dev/null 2>&1; then
      $SUDO systemctl disable --now prometheus.service >/dev/null 2>&1 || true
    fi
  fi
  # sysvinit / containers: the package's init script keeps a pid file.
  if [[ -x /etc/init.d/prometheus ]]; then
    $SUDO /etc/init.d/prometheus stop >/dev/null 2>&1 || true
  fi
  if [[ -f /run/prometheus.pid ]]; then
    local pid
    pid=$(cat /run/prometheus.pid)
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null \
      && [[ "$(readlink -f "/proc/$pid/exe" 2>/dev/null)" == /usr/bin/prometheus ]]; then
      $SUDO kill "$pid" || true
    fi
  fi
}

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  say "installed: $(prometheus --version 2>&1 | head -n1)"
  stop_system_prometheus
  exit 0
fi

command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install Prometheus 2.x so that prometheus and promtool are on PATH"

# Refresh the package lists once, only when apt does not know the package yet.
policy=$(apt-cache policy prometheus 2>/dev/null || true)
if [[ ! "$policy" =~ Candidate:\ [0-9] ]]; then
  say "apt-get update (package lists do not list prometheus yet)"
  $SUDO apt-get update -qq
fi

# Keep the package from starting its service during the install (invoke-rc.d honours policy-rc.d).
POLICY=/usr/sbin/policy-rc.d
made_policy=0
if [[ ! -e "$POLICY" ]]; then
  printf '#!/bin/sh\n# temporary: deploy/install-prometheus.sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 0755 "$POLICY"
  made_policy=1
fi
cleanup() { if [[ $made_policy -eq 1 ]]; then $SUDO rm -f "$POLICY"; fi; }
trap cleanup EXIT

say "apt-get install prometheus"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 \
  || $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus

stop_system_prometheus
command -v promtool >/dev/null 2>&1 || die "promtool missing after the install"
say "installed: $(prometheus --version 2>&1 | head -n1)"
