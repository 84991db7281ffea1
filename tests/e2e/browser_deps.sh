#!/usr/bin/env bash
# Debian's chromium for the dashboard's browser tests (tests/e2e/test_dashboard*.py), driven
# by the Playwright package with executable_path=/usr/bin/chromium: Playwright's own
# browser download is not used; and node, which runs the page's own JS unit tests
# (tests/unit/api/test_dashboard_js.py). Idempotent; needs root (CI runs as root).
set -euo pipefail
if [ -x /usr/bin/chromium ] && command -v node >/dev/null; then
  echo "==> chromium: $(/usr/bin/chromium --version 2>/dev/null || echo present); node $(node --version)"
  exit 0
fi
echo "==> installing Debian's chromium and node for the browser and page tests"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core nodejs >/dev/null
/usr/bin/chromium --version
node --version
