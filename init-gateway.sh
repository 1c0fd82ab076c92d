#!/bin/sh
# Init container entrypoint. exec, so that the exit status and signals are Node's.
# In the image the program sits in /app; from a checkout, in dist/ beside this script.
# In the image, node carries file capabilities (NET_ADMIN, NET_RAW; see the
# Dockerfile), and the kernel refuses to run it in a container whose capability
# set lacks either: say that in one line instead of the shell's "Operation not
# permitted".
node=$(command -v node)
if command -v getcap >/dev/null 2>&1 && [ -n "$(getcap "$node" 2>/dev/null)" ]; then
  bounding=$(sed -n 's/^CapBnd:[[:space:]]*//p' /proc/self/status)
  if [ $((0x${bounding:-0} & 0x3000)) -ne $((0x3000)) ]; then
    echo "init-gateway.sh: missing privilege: the container's capabilities lack NET_ADMIN or NET_RAW; run the init container privileged" >&2
    exit 4
  fi
fi
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
for app in "$here/dist" "$here/app/dist" /app/dist; do
  if [ -f "$app/init/main.js" ]; then exec node "$app/init/main.js" "$@"; fi
done
echo "init-gateway.sh: cannot find init/main.js next to $here (run 'npm run build' in a checkout)" >&2
exit 1
