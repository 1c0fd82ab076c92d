# The egress gateway image: /init-gateway.sh and /start-gateway.sh at the root,
# the program in /app. Any OCI builder works:
#
#   podman build -t egress-gateway .        (or docker build / buildah bud)
#
# BUILD_IMAGE: Node.js 20+ with npm, python3, make and g++ (raw-socket's native
#   addon is compiled here), on glibc.
# RUNTIME_IMAGE: Debian 12 with apt. It gets the build image's own node binary
#   (the addon was compiled against exactly that Node), iproute2, nftables and
#   iptables, and nothing else: no npm, no compiler, no dev dependencies.
# Both can be replaced, for example by locally made bases where no registry is
# reachable (scripts/image-build.sh does that for the tests).

ARG BUILD_IMAGE=docker.io/library/node:20-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

# node with its file capabilities (see the runtime stage): set here, where the
# binary is written, and kept by COPY; a setcap in a later layer than the file
# would copy the whole binary again (+100 MB).
FROM ${BUILD_IMAGE} AS node
RUN install -D -m 0755 "$(command -v node)" /out/usr/local/bin/node \
    && /out/usr/local/bin/node --version \
    && if ! command -v setcap >/dev/null; then \
        apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libcap2-bin; fi \
    && setcap cap_net_admin,cap_net_raw+ep /out/usr/local/bin/node

# Every dependency, dev ones included (TypeScript), with raw-socket's install
# script (package.json allowScripts). Only the lockfile invalidates this layer.
FROM ${BUILD_IMAGE} AS deps
ENV npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
WORKDIR /app
COPY package.json package-lock.json ./
COPY scripts/image-nodedir.sh /usr/local/bin/
RUN --mount=type=cache,target=/root/.npm \
    nodedir="$(image-nodedir.sh)"; \
    if [ -n "$nodedir" ]; then export npm_config_nodedir="$nodedir"; fi; \
    npm ci --loglevel=error \
    && test -f node_modules/raw-socket/build/Release/raw.node

FROM deps AS build
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# The CycloneDX SBOM of the production dependencies, from the lockfile's tree
# as installed (cyclonedx-npm reads `npm ls`); dev dependencies are left out.
FROM deps AS sbom
RUN npx --no-install cyclonedx-npm --omit dev --output-format JSON --output-file /out/sbom.cdx.json \
    && node -e 'const s=require("/out/sbom.cdx.json"); if (!(s.components||[]).length) process.exit(1)'

FROM deps AS production-modules
RUN npm prune --omit=dev --loglevel=error \
    && find node_modules/raw-socket/build -mindepth 1 -not -path '*/build/Release' \
        -not -path '*/build/Release/raw.node' -delete \
    && rm -rf node_modules/.package-lock.json

FROM ${RUNTIME_IMAGE}
# The network tools, then file capabilities on exactly the binaries the gateway
# runs, so that it can run as a non-root user (deploy/components/non-root):
# node opens the ICMP raw sockets and netlink sockets (NET_RAW, NET_ADMIN); ip,
# bridge, nft, the iptables multi-binaries and conntrack change or read the
# pod's network state (NET_ADMIN). A file capability raises only what the
# container's capability set allows (the manifests add NET_ADMIN and NET_RAW and
# drop the rest), and only where privilege escalation is allowed: under
# no_new_privs (the root variant) root's own capabilities apply. The kernel
# refuses to run such a file where the capability set lacks one of its
# capabilities (as in this build, so the tools are tried before setcap);
# start-gateway.sh and init-gateway.sh say so in one line. setcap comes with
# libcap2-bin, which iproute2 needs anyway.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        iproute2 nftables iptables conntrack libcap2-bin \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
    && ip -V && bridge -V && nft --version && iptables-nft --version && iptables-legacy --version \
    && conntrack --version \
    && for f in /usr/bin/ip /usr/sbin/bridge /usr/sbin/nft /usr/sbin/xtables-nft-multi \
        /usr/sbin/xtables-legacy-multi /usr/sbin/conntrack; do setcap cap_net_admin+ep "$(readlink -f "$f")"; done \
    && groupadd --gid 65532 egress-gateway \
    && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin egress-gateway
COPY --from=node /out/ /
RUN getcap /usr/local/bin/node | grep -q 'cap_net_admin,cap_net_raw=ep'
WORKDIR /app
COPY package.json ./
COPY --from=production-modules /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=sbom /out/sbom.cdx.json /usr/share/egress-gateway/sbom.cdx.json
COPY init-gateway.sh start-gateway.sh /
ENV NODE_ENV=production
EXPOSE 8080
# Root by default, as the vendor's image: the init container runs privileged as
# root (it writes /proc/sys). The gateway container runs as root with
# no_new_privs (deploy/components/root) or as UID/GID 65532 with the files'
# capabilities above (deploy/components/non-root); the manifests decide.
USER root
CMD ["/start-gateway.sh"]

ARG RUNTIME_IMAGE
ARG VERSION=unknown
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="egress-gateway" \
      org.opencontainers.image.description="Egress gateway pod runtime, a drop-in replacement for the Calico Enterprise egress gateway image" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/egress-gateway/egress-gateway" \
      org.opencontainers.image.base.name="${RUNTIME_IMAGE}" \
      io.github.egress-gateway.sbom="/usr/share/egress-gateway/sbom.cdx.json" \
      io.github.egress-gateway.sbom.format="CycloneDX JSON"
