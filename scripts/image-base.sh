#!/usr/bin/env bash
# Makes the two local base images the Dockerfile is built from on a machine
# that reaches no container registry, each only when it is missing (they are a
# cache: nothing removes them; `podman rmi` them to start over):
#
#   localhost/egress-gateway-base:bookworm     Debian 12 minbase, trimmed like
#       debian:bookworm-slim; stands in for it as RUNTIME_IMAGE.
#   localhost/egress-gateway-base:node-build   the above plus python3, make, g++
#       and this machine's Node.js, npm and Node headers under /usr/local, the
#       layout of node:20-bookworm; stands in for it as BUILD_IMAGE.
#
# Debian packages come from DEBIAN_MIRROR (default deb.debian.org), npm's global
# configuration (and the CA file it names, if any) from this machine, so that
# npm inside the build reaches the registry the way npm here does.
set -euo pipefail

RUNTIME_BASE=${RUNTIME_BASE:-localhost/egress-gateway-base:bookworm}
BUILD_BASE=${BUILD_BASE:-localhost/egress-gateway-base:node-build}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

work=$(mktemp -d /tmp/egt-image-base.XXXXXX)
trap 'rm -rf "$work"' EXIT

if ! podman image exists "$RUNTIME_BASE"; then
  echo "image-base: debootstrap bookworm minbase for $RUNTIME_BASE"
  root="$work/root"
  debootstrap --variant=minbase bookworm "$root" "$DEBIAN_MIRROR" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  # What debian:bookworm-slim leaves out, now and in every later apt-get install.
  cat >"$root/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  cat >"$root/etc/apt/apt.conf.d/slim" <<'EOF'
APT::Install-Recommends "false";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
EOF
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  rm -rf "$root"/usr/share/{man,info}/* "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/*
  tar -C "$root" -c . | podman import --change 'CMD ["/bin/bash"]' - "$RUNTIME_BASE" >/dev/null
  rm -rf "$root"
fi

if ! podman image exists "$BUILD_BASE"; then
  echo "image-base: $BUILD_BASE from $RUNTIME_BASE and this machine's Node.js $(node --version)"
  node=$(readlink -f "$(command -v node)")
  prefix=$(dirname "$(dirname "$node")")
  npm_dir=$(npm root -g)/npm
  headers=""
  for dir in "$prefix/include/node" /usr/local/include/node /usr/include/node; do
    if [[ -f $dir/node_version.h ]]; then headers=$dir; break; fi
  done
  [[ -n $headers ]] || { echo "image-base: no Node headers found (include/node)" >&2; exit 1; }
  ctx="$work/context"
  mkdir -p "$ctx/etc"
  cp "$node" "$ctx/node"
  cp -a "$npm_dir" "$ctx/npm"
  cp -a "$headers" "$ctx/include"
  cafile_copy=""
  globalconfig=$(npm config get globalconfig)
  if [[ -f $globalconfig ]]; then
    cp "$globalconfig" "$ctx/etc/npmrc"
    cafile=$(npm config get cafile)
    if [[ -f $cafile ]]; then
      cp "$cafile" "$ctx/cafile"
      cafile_copy="COPY cafile $cafile"
    fi
  fi
  cat >"$ctx/Containerfile" <<EOF
FROM $RUNTIME_BASE
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
COPY include /usr/local/include/node
COPY etc /usr/local/etc
$cafile_copy
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
 && node --version && npm --version
CMD ["node"]
EOF
  podman build --quiet --network host -t "$BUILD_BASE" "$ctx" >/dev/null
fi
