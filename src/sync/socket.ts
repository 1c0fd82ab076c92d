// Where the node agent's policy-sync socket is, and whether one is expected at
// all (SPEC §5, §5.2).
//
// The socket reaches the pod through a CSI volume whose content is a
// `nodeagent/` directory holding `socket`. The manual manifest mounts that
// volume at /var/run, the operator at /var/run/calico, hence the two default
// paths. "Mounted" is decided from the paths alone:
//   * DAEMON_SOCKET_PATH set: an agent is expected, always;
//   * otherwise a layout counts as mounted when its socket or the directory that
//     holds it (`.../nodeagent`) exists;
//   * no layout mounted: no agent, the gateway runs as a plain SNAT gateway.
// The mount point itself cannot tell: /var/run exists in every image. A
// mounted layout whose socket is missing or refusing is a broken agent, never
// "no agent": the client keeps redialling and DatastoreConnection stays not ready.
import { statSync } from "node:fs";
import { dirname } from "node:path";

/** Operator layout first, then the manual-manifest layout (SPEC §5). */
export const DEFAULT_SOCKET_CANDIDATES: readonly string[] = [
  "/var/run/calico/nodeagent/socket",
  "/var/run/nodeagent/socket",
];

export type SocketPlan =
  /** DAEMON_SOCKET_PATH: dial this path and nothing else. */
  | { readonly mode: "explicit"; readonly path: string }
  /** A layout is mounted: dial the first candidate that exists, each attempt anew. */
  | { readonly mode: "discover"; readonly candidates: readonly string[]; readonly mounted: readonly string[] }
  /** Nothing mounted: no node agent. */
  | { readonly mode: "none"; readonly candidates: readonly string[] };

export const pathExists = (path: string): boolean => statSync(path, { throwIfNoEntry: false }) !== undefined;

export function planSocket(
  explicitPath: string | undefined,
  candidates: readonly string[],
  exists: (path: string) => boolean = pathExists,
): SocketPlan {
  if (explicitPath !== undefined) return { mode: "explicit", path: explicitPath };
  const mounted = candidates.filter((socket) => exists(socket) || exists(dirname(socket)));
  return mounted.length > 0 ? { mode: "discover", candidates, mounted } : { mode: "none", candidates };
}

/** The path to dial now, or undefined while no socket is there. */
export function socketToDial(
  plan: Exclude<SocketPlan, { mode: "none" }>,
  exists: (path: string) => boolean = pathExists,
): string | undefined {
  if (plan.mode === "explicit") return exists(plan.path) ? plan.path : undefined;
  return plan.candidates.find(exists);
}
