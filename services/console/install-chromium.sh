#!/usr/bin/env bash
# Install Debian's `chromium` for the console's browser tests (driven by Playwright from PyPI through
# /usr/bin/chromium; browsers are never downloaded by Playwright itself).
#
#   services/console/install-chromium.sh     idempotent: does nothing when chromium is installed
set -euo pipefail

say() { printf '[chromium] %s\n' "$*"; }
die() { printf '[chromium] error: %s\n' "$*" >&2; exit 1; }

if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || die "run as root (or install sudo): apt-get is needed"
  SUDO="sudo"
fi
say "installing Debian's chromium (headless browser tests)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
command -v chromium >/dev/null 2>&1 || die "chromium is not on PATH after the install"
say "installed: $(chromium --version 2>/dev/null || echo chromium)"
