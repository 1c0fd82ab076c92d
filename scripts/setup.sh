#!/usr/bin/env bash
# Installs what the tests, benchmarks and demo need on a fresh Debian/Ubuntu
# machine (run as root), and only what is missing, so a second run is instant.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for tool in ip:iproute2 nft:nftables iptables:iptables conntrack:conntrack tcpdump:tcpdump socat:socat \
  iperf3:iperf3 promtool:prometheus prometheus:prometheus ps:procps setpriv:util-linux capsh:libcap2-bin unshare:util-linux; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
# podman and buildah for the image test, debootstrap for its local base images (LAB.md).
for pkg in buildah podman runc fuse-overlayfs uidmap containernetworking-plugins \
  golang-github-containers-common conmon catatonit debootstrap; do
  [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) == *" ok installed" ]] || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "setup: installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# kubectl renders deploy/'s kustomizations (test/deploy-variants.test.ts). It
# comes with this project's machine image; Debian's own kubectl (1.20) is too
# old for kustomize components, so there is nothing to install here.
command -v kubectl >/dev/null 2>&1 ||
  echo "setup: warning: kubectl is missing; test/deploy-variants.test.ts will fail (kubectl kustomize renders deploy/)" >&2

# podman on these machines: cgroup v1, no systemd, limited rlimits (LAB.md).
podman_conf=/etc/containers/containers.conf.d/50-local.conf
if [[ ! -f $podman_conf ]]; then
  mkdir -p "$(dirname "$podman_conf")"
  cat >"$podman_conf" <<'EOF'
[containers]
default_ulimits = ["nofile=16384:16384", "nproc=16384:16384"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
fi

# npm ci only when the lockfile changed since the last install (npm itself
# writes node_modules/.package-lock.json after every install).
if [[ ! node_modules/.package-lock.json -nt package-lock.json ]]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
