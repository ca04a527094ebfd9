#!/usr/bin/env bash
# Install the Debian test peers the integration tests start as plain processes:
#   orthanc  - a real PACS (DICOM C-STORE in, REST API out) for tests/integration/pacs and ecg watch
#   dcmtk    - dcmdump/storescu, handy to inspect what the hub sent
#   prometheus - Prometheus and promtool for tests/ops (dashboards and alert rules against a real server)
# Idempotent and quiet: does nothing when every peer is already installed. A lock file keeps
# parallel runs (make test, pytest -n, a second shell) from running apt at the same time.
set -euo pipefail

PACKAGES=(orthanc dcmtk poppler-utils prometheus)
LOCK=${DEVSYNC_APT_LOCK:-/tmp/devsync-apt.lock}

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-test-peers: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo -n"
fi

exec 9>"$LOCK"
flock 9
# Another run may have installed them while we waited for the lock.
still=()
for pkg in "${missing[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || still+=("$pkg")
done
[ ${#still[@]} -eq 0 ] && exit 0

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${still[@]}"; } >"$log" 2>&1; then
  echo "install-test-peers: installing ${still[*]} failed:" >&2
  tail -20 "$log" >&2
  rm -f "$log"
  exit 1
fi
rm -f "$log"
# The Debian package starts an Orthanc service on 4242/8042 where an init system runs; the tests
# start their own on free ports, so a packaged one is neither needed nor touched.
