#!/usr/bin/env bash
# Installs what the run store's tests need, when it is absent; a no-op when present.
set -euo pipefail
# The run store's tests start a throwaway PostgreSQL (tests/unit/history/conftest.py):
# Debian's postgresql package when its binaries are absent, without starting its own
# server (policy-rc.d answers 101 during the install).
if ! command -v pg_ctl >/dev/null && ! compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null; then
  echo "==> installing PostgreSQL (Debian's postgresql package) for the run store's tests"
  (
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
      printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
      $sudo chmod +x /usr/sbin/policy-rc.d
    fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      postgresql >/dev/null
  )
fi
