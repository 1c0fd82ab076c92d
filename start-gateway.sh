#!/bin/sh
# Main container entrypoint. exec, so that SIGTERM from kubelet reaches Node.
# In the image the program sits in /app; from a checkout, in dist/ beside this script.
#
# V8 flags, measured with bench/icmp-targets.ts (1,000 targets at 1 s, 60 s)
# and bench/readiness.ts on the 2-core lab machines:
# --max-semi-space-size=2  caps the young generation at 2 MB a semi-space
#     (default: grows to 16 MB), which was most of the gap to the 80 MB goal;
#     with the next flag, peak RSS went from 96.7 MiB to 75.0 MiB, CPU within
#     noise (5.6-6.0 % of a core), /readiness req/s unchanged within noise.
#     It costs ~35 ms of start-up (more scavenges while modules load: 247 vs
#     211 ms to load the gateway's modules, medians of 15); start to listening
#     stays well under 300 ms (bench/gateway-start.ts).
#     Since ajv is no longer loaded at start: 66.2 MiB with this flag, 74.1 MiB
#     without (one run each), so it still buys ~8 MiB of headroom.
# --v8-pool-size=1  one V8 worker thread instead of four: fewer threads,
#     stacks and malloc arenas; GC and compilation still run off the main
#     thread.
# The old space is left unbounded on purpose: the same process holds the
# policy-sync route table (10,000 routes), and a cap is a crash, not a saving.
# In the image, node carries file capabilities (NET_ADMIN, NET_RAW; see the
# Dockerfile), and the kernel refuses to run it in a container whose capability
# set lacks either: say that in one line instead of the shell's "Operation not
# permitted".
node=$(command -v node)
if command -v getcap >/dev/null 2>&1 && [ -n "$(getcap "$node" 2>/dev/null)" ]; then
  bounding=$(sed -n 's/^CapBnd:[[:space:]]*//p' /proc/self/status)
  if [ $((0x${bounding:-0} & 0x3000)) -ne $((0x3000)) ]; then
    echo "start-gateway.sh: the container's capabilities lack NET_ADMIN or NET_RAW; add both (securityContext.capabilities.add: [NET_ADMIN, NET_RAW]), as deploy/ does" >&2
    exit 1
  fi
fi
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
for app in "$here/dist" "$here/app/dist" /app/dist; do
  if [ -f "$app/gateway/main.js" ]; then
    exec node --max-semi-space-size=2 --v8-pool-size=1 "$app/gateway/main.js" "$@"
  fi
done
echo "start-gateway.sh: cannot find gateway/main.js next to $here (run 'npm run build' in a checkout)" >&2
exit 1
