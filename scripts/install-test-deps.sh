#!/usr/bin/env bash
# System packages the test suite needs beyond the Python virtualenv: headless Chromium renders
# the leadership report. Installs only what is missing; a no-op on a prepared machine.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium (headless report rendering)..."
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "warning: chromium is not installed and cannot be installed here; report rendering tests will fail" >&2
  fi
fi
