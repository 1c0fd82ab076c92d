#!/usr/bin/env bash
# The demo: the gateway in self-contained labs of network namespaces (wired
# only to each other, documentation addresses), then everything removed.
# Part 1 puts the pods on one node's bridge; part 2 joins two nodes with VXLAN
# and lets a fake node agent's routes program the return path.
#   bash scripts/demo.sh              both parts
#   bash scripts/demo.sh --two-node   part 2 alone
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
