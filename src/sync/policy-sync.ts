// Policy sync as the gateway sees it (SPEC §5): its options and state, the
// no-agent variant, and the two steps that start it. Two steps, so that the
// health server can listen before the gRPC stack loads (@grpc/grpc-js and the
// proto loader take ~130 ms of a start that should stay under 300 ms):
//   prepare: decides whether a node agent is expected (SPEC §5.2) and registers
//            DatastoreConnection at once, so /readiness never answers 200 for a
//            component list that is still missing it;
//   start:   loads the gRPC client (./client.js) and dials.
import type { Clock } from "../clock.js";
import type { Config } from "../config/types.js";
import { formatDuration } from "../config/duration.js";
import { COMPONENT } from "../readiness/components.js";
import type { Component, Readiness } from "../readiness/readiness.js";
import { DEFAULT_SOCKET_CANDIDATES, planSocket, type SocketPlan } from "./socket.js";
import type { RejectReason } from "./route-check.js";
import type { RouteFeed } from "./types.js";

/** The subset of pino's Logger policy sync writes to. */
export interface PolicySyncLog {
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
}

export interface PolicySyncOptions {
  readonly config: Pick<Config, "daemonSocketPath" | "podIPv4" | "health">;
  readonly readiness: Pick<Readiness, "register">;
  readonly log: PolicySyncLog;
  readonly clock: Clock;
  /**
   * Called at every InSync and after it on every change, with the feed of the
   * view and its changes: the consumer reads it when it is ready to, so a
   * burst of messages costs it what changed, not one look per message.
   */
  readonly onRoutes: (feed: RouteFeed) => void;
  /** Discovery paths when DAEMON_SOCKET_PATH is unset; the two SPEC layouts by default. */
  readonly socketCandidates?: readonly string[];
  /** Pause between dial attempts; REDIAL_MS (./client.js) by default. */
  readonly redialMs?: number;
}

export interface PolicySyncState {
  /** "agent": a node agent is expected; "none": no socket mounted, plain SNAT gateway (SPEC §5.2). */
  readonly mode: "agent" | "none";
  /** The socket of the current or last stream. */
  readonly socketPath: string | undefined;
  /** A stream is open and the agent has answered on it. */
  readonly connected: boolean;
  /** The current stream's InSync has arrived. */
  readonly inSync: boolean;
  readonly lastSequence: bigint | undefined;
  /** Counts in the view handed to the dataplane. */
  readonly routes: { readonly tunnels: number; readonly remoteWorkloads: number; readonly ourRoute: boolean };
  /** Routes in that view that return-path programming skips for now (no node name or node IP yet). */
  readonly incompleteRoutes: number;
  /** Routes the current stream has replayed so far, before its InSync. */
  readonly stagedRoutes: number;
  /** Route updates rejected since start, by reason (route-check.ts). */
  readonly rejectedRoutes: ReadonlyMap<RejectReason, number>;
  /** Dial attempts after the first one. */
  readonly reconnects: number;
  readonly messagesReceived: number;
  /** Messages whose payload the gateway does not use, or route messages without a dst. */
  readonly messagesIgnored: number;
}

export interface PolicySync {
  readonly mode: "agent" | "none";
  state(): PolicySyncState;
  /** Ends the stream and the redial timer; no callback or readiness report follows. */
  stop(): Promise<void>;
}

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
const idleState = (mode: PolicySyncState["mode"]): PolicySyncState => ({
  mode,
  socketPath: undefined,
  connected: false,
  inSync: false,
  lastSequence: undefined,
  routes: { tunnels: 0, remoteWorkloads: 0, ourRoute: false },
  incompleteRoutes: 0,
  stagedRoutes: 0,
  rejectedRoutes: new Map(),
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
      { component: COMPONENT.datastoreConnection, candidates },
      `no policy-sync socket mounted (none of ${candidates.join(", ")} nor their directories exist, ` +
        "DAEMON_SOCKET_PATH unset): running as a plain SNAT gateway without return-path programming",
    );
    return { mode: "none", pending: idle("none") };
  }
  const timeoutMs = config.health.datastoreTimeoutMs;
  const component = options.readiness.register(COMPONENT.datastoreConnection, {
    timeoutMs,
    detail: "connecting to the node agent",
    staleDetail: `no sign of life from the policy-sync stream within ${formatDuration(timeoutMs)}`,
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
