#!/bin/sh
# Prints the prefix whose include/node holds the headers of the running Node.js,
# or nothing. The Dockerfile gives it to node-gyp (npm_config_nodedir) so that
# raw-socket's addon is compiled against the very Node it will run on, without
# downloading headers (node:20-bookworm ships them under /usr/local).
want=$(node -p process.versions.node)
for prefix in "$(dirname "$(dirname "$(command -v node)")")" /usr/local /usr; do
  header="$prefix/include/node/node_version.h"
  [ -f "$header" ] || continue
  have=$(awk '/^#define NODE_(MAJOR|MINOR|PATCH)_VERSION / { printf "%s%s", sep, $3; sep = "." }' "$header")
  if [ "$have" = "$want" ]; then
    echo "$prefix"
    exit 0
  fi
done
