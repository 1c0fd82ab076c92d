// The command line of init-gateway.sh: everything else comes from the environment.
import { InitUsageError } from "./errors.js";

export interface InitArgs {
  readonly dryRun: boolean;
  readonly help: boolean;
}

export const USAGE = `usage: init-gateway.sh [--dry-run]

Prepares the egress gateway pod's network namespace (SNAT, redirect suppression,
rp_filter, vxlan0, MSS clamp, forwarding), configured by environment variables
(EGRESS_POD_IP or EGRESS_POD_IPS, EGRESS_VXLAN_VNI, EGRESS_VXLAN_PORT, DATAPLANE,
IPTABLES_BACKEND). Safe to run again.

  --dry-run   print the plan (steps, sysctls, ruleset, ip commands) and change nothing
  -h, --help  print this text

exit status: 0 done, 1 a step or the read-back failed, 2 bad configuration,
3 the pod's network does not fit, 4 missing privilege (2-4: nothing was changed)
`;

export function parseArgs(argv: readonly string[]): InitArgs {
  let dryRun = false;
  let help = false;
  for (const arg of argv) {
    if (arg === "--dry-run") dryRun = true;
    else if (arg === "-h" || arg === "--help") help = true;
    else
      throw new InitUsageError(`unknown argument ${JSON.stringify(arg)}; usage: init-gateway.sh [--dry-run]`);
  }
  return { dryRun, help };
}
