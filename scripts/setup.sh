#!/usr/bin/env bash
# Install what the service needs: system libraries (apt-get), a virtual environment in .venv/,
# and the Python requirements. `scripts/setup.sh dev` adds the test needs (Chromium, poppler, and
# pg_dump/pg_restore from postgresql-client for the backup tests on PostgreSQL);
# `scripts/setup.sh bench` also wrk, for the load benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libzbar0 fonts-dejavu-core python3-venv)
mode="${1:-}"
if [ "$mode" = "dev" ] || [ "$mode" = "bench" ]; then
  packages+=(chromium poppler-utils postgresql-client)
fi
if [ "$mode" = "bench" ]; then
  packages+=(wrk)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
if [ "$mode" = "dev" ] || [ "$mode" = "bench" ]; then
  .venv/bin/python -m pip install -q -r requirements-dev.txt
else
  .venv/bin/python -m pip install -q -r requirements.txt
fi
