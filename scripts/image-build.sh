#!/usr/bin/env bash
# Builds the image with podman from the local base images of
# scripts/image-base.sh (made first when missing), for machines that reach no
# container registry. Layers are cached: a second build with the same lockfile
# and sources takes seconds. Build output goes to stderr, the image ID to stdout.
#
#   IMAGE=localhost/egress-gateway:dev bash scripts/image-build.sh
#
# Elsewhere, build it the usual way: `docker build -t NAME .` (node:20-bookworm
# and debian:bookworm-slim are the Dockerfile's defaults).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/egress-gateway:dev}
RUNTIME_BASE=${RUNTIME_BASE:-localhost/egress-gateway-base:bookworm}
BUILD_BASE=${BUILD_BASE:-localhost/egress-gateway-base:node-build}
export RUNTIME_BASE BUILD_BASE

bash scripts/image-base.sh >&2
previous=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)

# Host network for the build's RUN steps (apt-get and npm reach their
# registries the way this machine does); no bridge or NAT rule is created.
podman build --network host --layers \
  --build-arg BUILD_IMAGE="$BUILD_BASE" \
  --build-arg RUNTIME_IMAGE="$RUNTIME_BASE" \
  --build-arg VERSION="$(node -p 'require("./package.json").version')" \
  --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
  --build-arg CREATED="$(git log -1 --format=%cI 2>/dev/null || echo unknown)" \
  -t "$IMAGE" . >&2
current=$(podman image inspect --format '{{.Id}}' "$IMAGE")
# The image the tag left behind, unless a container still uses it.
if [[ -n $previous && $previous != "$current" ]]; then podman rmi "$previous" >/dev/null 2>&1 || true; fi
echo "$current"
