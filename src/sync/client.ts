// The policy-sync client (SPEC §5): dials the node agent's unix socket, keeps
// one Sync stream open, feeds the route store and hands every new view to the
// dataplane, and owns the DatastoreConnection readiness component (SPEC §4.1).
//
// Readiness: ready once InSync arrived on the current stream; every message
// refreshes it, and so does a timer (a third of the timeout) while the stream
// stays open, because a stable cluster can send nothing for hours and an idle
// stream is a healthy one. A dead or restarted agent closes the unix socket,
// which ends the stream at once and makes the component not ready with the
// reason. gRPC keepalive is deliberately not used: Go gRPC servers answer
// pings more frequent than every 5 minutes with GOAWAY "too_many_pings", so a
// keepalive short enough to matter against a 90 s timeout would itself break
// the stream, and pings are answered by the transport even when the agent's
// sync logic is stuck, so they would prove no more than the open socket does.
// The staleness window still catches a gateway whose own event loop stalls.
import {
  credentials,
  Client,
  status as grpcStatus,
  type ClientReadableStream,
  type StatusObject,
} from "@grpc/grpc-js";
import type { Timer } from "../clock.js";
import { formatDuration } from "../config/duration.js";
import { COMPONENT } from "../readiness/components.js";
import type { Component } from "../readiness/readiness.js";
import { decodeToDataplane } from "./codec.js";
import { SYNC_METHOD, syncRequestType, toDataplaneType, type ToDataplaneMessage } from "./proto.js";
import { RouteStore } from "./route-store.js";
import { RejectionLog } from "./rejection-log.js";
import { socketToDial } from "./socket.js";
import type { AgentSocketPlan, PolicySync, PolicySyncOptions, PolicySyncState } from "./policy-sync.js";

/** SPEC §5: redial every 3 s while the socket is absent or broken. */
export const REDIAL_MS = 3_000; // 3 s
/** While a stream replays without InSync, how often its readiness detail is brought up to date. */
export const REPLAY_CHECK_MS = 5_000; // 5 s
/** A replay with no message for this long has stalled (the agent sends a snapshot in one go). */
export const REPLAY_STALL_MS = 10_000; // 10 s

const SYNC_REQUEST = { subscriptionType: "l3-routes", supportsIPv6RouteUpdates: true };

interface Stream {
  readonly path: string;
  readonly client: Client;
  readonly call: ClientReadableStream<ToDataplaneMessage>;
  connected: boolean;
  ended: boolean;
  connectedAt: number;
  lastMessageAt: number | undefined;
}

export class SyncClient implements PolicySync {
  readonly mode = "agent";
  private readonly store: RouteStore;
  private readonly redialMs: number;
  private readonly refreshMs: number;
  private stream: Stream | undefined;
  private lastPath: string | undefined;
  private redialTimer: Timer | undefined;
  private refreshTimer: Timer | undefined;
  private replayTimer: Timer | undefined;
  private readonly rejectionLog: RejectionLog;
  private stopped = false;
  /** The last problem logged, so that a socket absent for an hour is one line, not 1,200. */
  private loggedProblem: "absent" | "broken" | "refused" | "stalled" | undefined;
  private attempts = 0;
  private messages = 0;
  private ignored = 0;
  private lastSequence: bigint | undefined;

  constructor(
    private readonly options: PolicySyncOptions,
    private readonly plan: AgentSocketPlan,
    /** DatastoreConnection, registered by preparePolicySync (./policy-sync.js) before this module loaded. */
    private readonly component: Component,
  ) {
    const timeoutMs = options.config.health.datastoreTimeoutMs;
    this.redialMs = options.redialMs ?? REDIAL_MS;
    this.refreshMs = Math.max(1, Math.floor(timeoutMs / 3));
    this.rejectionLog = new RejectionLog(({ reason, count, detail }) =>
      options.log.warn(
        { component: "DatastoreConnection", reason, count, detail },
        count === 1
          ? "rejected a route from the node agent"
          : `rejected ${count} routes from the node agent since the last such line`,
      ),
    );
    this.store = new RouteStore(options.config.podIPv4, {
      onReject: (reason, detail) => this.rejectionLog.note(reason, detail, options.clock.now()),
    });
    const where = plan.mode === "explicit" ? plan.path : plan.mounted.join(", ");
    options.log.info({ component: COMPONENT.datastoreConnection, socket: where }, "policy sync starting");
    if (options.config.podIPv4 === undefined) {
      options.log.warn(
        { component: COMPONENT.datastoreConnection },
        "no pod IPv4 address (EGRESS_POD_IP/EGRESS_POD_IPS): the route of our own node cannot be found",
      );
    }
    this.dial();
  }

  state(): PolicySyncState {
    const counts = this.store.counts;
    return {
      mode: "agent",
      socketPath: this.stream?.path ?? this.lastPath,
      connected: this.stream?.connected ?? false,
      inSync: this.stream !== undefined && this.store.inSync,
      lastSequence: this.lastSequence,
      routes: { tunnels: counts.tunnels, remoteWorkloads: counts.remoteWorkloads, ourRoute: counts.ourRoute },
      incompleteRoutes: counts.incomplete,
      stagedRoutes: this.store.staged,
      rejectedRoutes: this.store.rejections,
      reconnects: Math.max(0, this.attempts - 1),
      messagesReceived: this.messages,
      messagesIgnored: this.ignored,
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.redialTimer?.cancel();
    this.refreshTimer?.cancel();
    this.replayTimer?.cancel();
    const stream = this.stream;
    this.stream = undefined;
    if (!stream) return;
    const ended = stream.ended
      ? Promise.resolve()
      : new Promise((resolve) => stream.call.once("status", resolve));
    stream.call.cancel();
    await ended;
    stream.client.close();
  }

  private dial(): void {
    this.redialTimer = undefined;
    if (this.stopped) return;
    this.attempts++;
    const path = socketToDial(this.plan);
    if (path === undefined) {
      const where = this.plan.mode === "explicit" ? this.plan.path : this.plan.candidates.join(", ");
      this.problem("absent", `no policy-sync socket at ${where}`);
      return;
    }
    this.lastPath = path;
    // A fresh channel per attempt: the channel's own reconnect backoff grows
    // to minutes, while SPEC §5 wants a steady 3 s and a fresh look at the paths.
    const client = new Client(`unix://${path}`, credentials.createInsecure());
    const call = client.makeServerStreamRequest(
      SYNC_METHOD,
      syncRequestType.serialize,
      toDataplaneType.deserialize,
      SYNC_REQUEST,
    );
    const stream: Stream = {
      path,
      client,
      call,
      connected: false,
      ended: false,
      connectedAt: 0,
      lastMessageAt: undefined,
    };
    this.stream = stream;
    this.store.newStream();
    call.on("metadata", () => this.onConnected(stream));
    call.on("data", (message: ToDataplaneMessage) => this.onMessage(stream, message));
    // Every end, clean or not, also arrives as "status"; this listener only
    // keeps an error event from being unhandled.
    call.on("error", () => undefined);
    call.on("status", (status: StatusObject) => this.onEnd(stream, status));
  }

  private onConnected(stream: Stream): void {
    if (stream !== this.stream || stream.connected) return;
    stream.connected = true;
    stream.connectedAt = this.options.clock.now();
    this.loggedProblem = undefined;
    this.options.log.info(
      { component: COMPONENT.datastoreConnection, socket: stream.path },
      "policy sync connected",
    );
    this.component.report(false, `connected to ${stream.path}, waiting for InSync`);
    this.watchReplay(stream);
  }

  /**
   * Until InSync, keeps the detail saying how far the replay got, so that an
   * agent that never sends InSync, or stalls mid-snapshot, is visible in
   * /readiness and in one log line rather than as a bare "waiting".
   */
  private watchReplay(stream: Stream): void {
    this.replayTimer = this.options.clock.setTimer(REPLAY_CHECK_MS, () => {
      if (stream !== this.stream || this.stopped || this.store.inSync) return;
      const now = this.options.clock.now();
      const since = formatDuration(now - stream.connectedAt);
      const staged = this.store.staged;
      let detail: string;
      let stalled = false;
      if (stream.lastMessageAt === undefined) {
        detail = `connected to ${stream.path} ${since} ago; no InSync: the node agent has sent nothing`;
        stalled = true;
      } else if (now - stream.lastMessageAt >= REPLAY_STALL_MS) {
        detail =
          `connected to ${stream.path} ${since} ago; no InSync: the node agent stalled mid-snapshot ` +
          `(${staged} routes received, the last ${formatDuration(now - stream.lastMessageAt)} ago)`;
        stalled = true;
      } else {
        detail = `connected to ${stream.path} ${since} ago; waiting for InSync (${staged} routes received so far)`;
      }
      this.component.describe(detail);
      if (stalled && this.loggedProblem !== "stalled") {
        this.loggedProblem = "stalled";
        this.options.log.warn({ component: "DatastoreConnection", detail }, "policy sync waiting for InSync");
      }
      this.watchReplay(stream);
    });
  }

  private onMessage(stream: Stream, message: ToDataplaneMessage): void {
    if (stream !== this.stream) return;
    this.onConnected(stream);
    this.messages++;
    stream.lastMessageAt = this.options.clock.now();
    const event = decodeToDataplane(message);
    if (event === undefined) {
      this.ignored++;
    } else {
      this.lastSequence = event.sequence;
      const wasInSync = this.store.inSync;
      const changed = this.store.apply(event);
      if (!wasInSync && this.store.inSync) this.onInSync(stream);
      if (changed) this.deliver();
    }
    if (this.store.inSync) this.component.report(true, this.inSyncDetail(stream));
  }

  private inSyncDetail(stream: Stream): string {
    let rejected = 0;
    for (const count of this.store.rejections.values()) rejected += count;
    const base = `in sync with the node agent at ${stream.path}`;
    if (rejected === 0) return base;
    const limit = this.store.rejections.get("route_limit") ?? 0;
    return `${base}; ${rejected} invalid routes rejected${limit > 0 ? `, ${limit} of them over the route limit` : ""} (see the log)`;
  }

  private onInSync(stream: Stream): void {
    this.replayTimer?.cancel();
    const counts = this.store.counts;
    this.options.log.info(
      {
        component: COMPONENT.datastoreConnection,
        socket: stream.path,
        tunnels: counts.tunnels,
        remoteWorkloads: counts.remoteWorkloads,
        ourRoute: this.store.view?.ourRoute?.dst,
      },
      "policy sync in sync",
    );
    if (this.loggedProblem === "stalled") this.loggedProblem = undefined;
    this.component.report(true, this.inSyncDetail(stream));
    this.refresh(stream);
  }

  private refresh(stream: Stream): void {
    this.refreshTimer = this.options.clock.setTimer(this.refreshMs, () => {
      if (stream !== this.stream || this.stopped) return;
      this.component.report(true);
      this.refresh(stream);
    });
  }

  private deliver(): void {
    try {
      this.options.onRoutes(this.store.feed);
    } catch (error) {
      this.options.log.error(
        { component: COMPONENT.datastoreConnection, err: error },
        "route change consumer failed",
      );
    }
  }

  private onEnd(stream: Stream, status: StatusObject): void {
    stream.ended = true;
    if (stream !== this.stream) return;
    this.stream = undefined;
    this.refreshTimer?.cancel();
    this.replayTimer?.cancel();
    stream.client.close();
    if (this.stopped) return;
    const why = `${grpcStatus[status.code] ?? status.code}: ${status.details}`;
    if (stream.connected) {
      this.problem(
        "broken",
        `policy-sync stream from ${stream.path} broken (${why}); keeping the last routes`,
      );
    } else {
      this.problem("refused", `cannot open a policy-sync stream on ${stream.path} (${why})`);
    }
  }

  /** Reports and logs (once per kind of outage) why the stream is down, and redials. */
  private problem(kind: "absent" | "broken" | "refused", reason: string): void {
    const detail = `${reason}; redialling every ${formatDuration(this.redialMs)}`;
    this.component.report(false, detail);
    if (this.loggedProblem !== kind) {
      this.loggedProblem = kind;
      this.options.log.warn({ component: COMPONENT.datastoreConnection, detail }, "policy sync down");
    }
    this.redialTimer = this.options.clock.setTimer(this.redialMs, () => this.dial());
  }
}
