#!/usr/bin/env bash
# The demo: the gateway in a self-contained lab of network namespaces (wired
# only to each other, documentation addresses), then everything removed.
# Installs what is missing and builds first. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
if ((EUID != 0)); then
  echo "demo: run as root (it creates network namespaces)" >&2
  exit 1
fi
bash scripts/setup.sh
npm run --silent build
exec node --import tsx scripts/demo.ts "$@"
