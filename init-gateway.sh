#!/bin/sh
# Init container entrypoint. exec, so that the exit status and signals are Node's.
# In the image the program sits in /app; from a checkout, in dist/ beside this script.
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
for app in "$here/dist" "$here/app/dist" /app/dist; do
  if [ -f "$app/init/main.js" ]; then exec node "$app/init/main.js" "$@"; fi
done
echo "init-gateway.sh: cannot find init/main.js next to $here (run 'npm run build' in a checkout)" >&2
exit 1
