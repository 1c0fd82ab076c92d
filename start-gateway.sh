#!/bin/sh
# Main container entrypoint. exec, so that SIGTERM from kubelet reaches Node.
# In the image the program sits in /app; from a checkout, in dist/ beside this script.
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
for app in "$here/dist" "$here/app/dist" /app/dist; do
  if [ -f "$app/gateway/main.js" ]; then exec node "$app/gateway/main.js" "$@"; fi
done
echo "start-gateway.sh: cannot find gateway/main.js next to $here (run 'npm run build' in a checkout)" >&2
exit 1
