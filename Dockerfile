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

FROM ${BUILD_IMAGE} AS node
RUN install -D -m 0755 "$(command -v node)" /out/usr/local/bin/node

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

FROM deps AS production-modules
RUN npm prune --omit=dev --loglevel=error \
    && find node_modules/raw-socket/build -mindepth 1 -not -path '*/build/Release' \
        -not -path '*/build/Release/raw.node' -delete \
    && rm -rf node_modules/.package-lock.json

FROM ${RUNTIME_IMAGE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iproute2 nftables iptables \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
    && ip -V && bridge -V && nft --version && iptables-nft --version && iptables-legacy --version
COPY --from=node /out/ /
WORKDIR /app
COPY package.json ./
COPY --from=production-modules /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY init-gateway.sh start-gateway.sh /
ENV NODE_ENV=production
EXPOSE 8080
# Root inside the pod's own network namespace; the manifests decide the
# capabilities: the init container privileged, the gateway NET_ADMIN + NET_RAW.
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
      org.opencontainers.image.base.name="${RUNTIME_IMAGE}"
