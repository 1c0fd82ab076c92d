// Policy sync starts in two steps so that the health server can listen before
// the gRPC stack loads (@grpc/grpc-js and the proto loader take ~130 ms of a
// start that should stay under 300 ms):
//   prepare: decides whether a node agent is expected (SPEC §5.2) and registers
//            DatastoreConnection at once, so /readiness never answers 200 for a
//            component list that is still missing it;
//   start:   loads the client (./client.js) and dials.
import type { Component } from "../gateway/readiness.js";
import { formatMs } from "../gateway/readiness.js";
import type { PolicySync, PolicySyncOptions, PolicySyncState } from "./client.js";
import { DEFAULT_SOCKET_CANDIDATES, planSocket, type SocketPlan } from "./socket.js";

export type AgentSocketPlan = Exclude<SocketPlan, { mode: "none" }>;

/** `pending` stands in (for /metrics) until start resolves; with no agent it is final and dials nothing. */
export type PreparedPolicySync =
  /** No socket mounted: a plain SNAT gateway. */
  | { readonly mode: "none"; readonly pending: PolicySync }
  /** An agent is expected. */
  | {
      readonly mode: "agent";
      readonly plan: AgentSocketPlan;
      readonly component: Component;
      readonly pending: PolicySync;
    };

/** State before any stream: nothing dialled, nothing received. */
export const idleState = (mode: PolicySyncState["mode"]): PolicySyncState => ({
  mode,
  socketPath: undefined,
  connected: false,
  inSync: false,
  lastSequence: undefined,
  routes: { tunnels: 0, remoteWorkloads: 0, ourRoute: false },
  incompleteRoutes: 0,
  reconnects: 0,
  messagesReceived: 0,
  messagesIgnored: 0,
});

const idle = (mode: PolicySyncState["mode"]): PolicySync => {
  const state = idleState(mode);
  return { mode, state: () => state, stop: () => Promise.resolve() };
};

export function preparePolicySync(options: PolicySyncOptions): PreparedPolicySync {
  const { config, log } = options;
  const candidates = options.socketCandidates ?? DEFAULT_SOCKET_CANDIDATES;
  const plan = planSocket(config.daemonSocketPath, candidates);
  if (plan.mode === "none") {
    log.warn(
      { component: "DatastoreConnection", candidates },
      `no policy-sync socket mounted (none of ${candidates.join(", ")} nor their directories exist, ` +
        "DAEMON_SOCKET_PATH unset): running as a plain SNAT gateway without return-path programming",
    );
    return { mode: "none", pending: idle("none") };
  }
  const timeoutMs = config.health.datastoreTimeoutMs;
  const component = options.readiness.register("DatastoreConnection", {
    timeoutMs,
    detail: "connecting to the node agent",
    staleDetail: `no sign of life from the policy-sync stream within ${formatMs(timeoutMs)}`,
  });
  return { mode: "agent", plan, component, pending: idle("agent") };
}

/** Loads the gRPC client and dials, for an agent; the final PolicySync either way. */
export async function startPreparedPolicySync(
  options: PolicySyncOptions,
  prepared: PreparedPolicySync,
): Promise<PolicySync> {
  if (prepared.mode === "none") return prepared.pending;
  const { SyncClient } = await import("./client.js");
  return new SyncClient(options, prepared.plan, prepared.component);
}
