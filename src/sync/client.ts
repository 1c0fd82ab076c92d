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
import { isIncomplete, RouteStore } from "./route-store.js";
import { socketToDial } from "./socket.js";
import type { AgentSocketPlan, PolicySync, PolicySyncOptions, PolicySyncState } from "./policy-sync.js";
import type { RouteSnapshot } from "./types.js";

/** SPEC §5: redial every 3 s while the socket is absent or broken. */
export const REDIAL_MS = 3_000; // 3 s

const SYNC_REQUEST = { subscriptionType: "l3-routes", supportsIPv6RouteUpdates: true };

interface Stream {
  readonly path: string;
  readonly client: Client;
  readonly call: ClientReadableStream<ToDataplaneMessage>;
  connected: boolean;
  ended: boolean;
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
  private stopped = false;
  /** The last problem logged, so that a socket absent for an hour is one line, not 1,200. */
  private loggedProblem: string | undefined;
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
    this.store = new RouteStore(options.config.podIPv4);
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
    const snapshot = this.store.snapshot;
    let incomplete = 0;
    if (snapshot) {
      for (const route of snapshot.tunnels.values()) if (isIncomplete(route)) incomplete++;
      for (const route of snapshot.remoteWorkloads.values()) if (isIncomplete(route)) incomplete++;
    }
    return {
      mode: "agent",
      socketPath: this.stream?.path ?? this.lastPath,
      connected: this.stream?.connected ?? false,
      inSync: this.stream !== undefined && this.store.inSync,
      lastSequence: this.lastSequence,
      routes: {
        tunnels: snapshot?.tunnels.size ?? 0,
        remoteWorkloads: snapshot?.remoteWorkloads.size ?? 0,
        ourRoute: snapshot?.ourRoute !== undefined,
      },
      incompleteRoutes: incomplete,
      reconnects: Math.max(0, this.attempts - 1),
      messagesReceived: this.messages,
      messagesIgnored: this.ignored,
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.redialTimer?.cancel();
    this.refreshTimer?.cancel();
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
    const stream: Stream = { path, client, call, connected: false, ended: false };
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
    this.loggedProblem = undefined;
    this.options.log.info(
      { component: COMPONENT.datastoreConnection, socket: stream.path },
      "policy sync connected",
    );
    this.component.report(false, `connected to ${stream.path}, waiting for InSync`);
  }

  private onMessage(stream: Stream, message: ToDataplaneMessage): void {
    if (stream !== this.stream) return;
    this.onConnected(stream);
    this.messages++;
    const event = decodeToDataplane(message);
    if (event === undefined) {
      this.ignored++;
    } else {
      this.lastSequence = event.sequence;
      const wasInSync = this.store.inSync;
      const snapshot = this.store.apply(event);
      if (!wasInSync && this.store.inSync) this.onInSync(stream, snapshot);
      if (snapshot) this.deliver(snapshot);
    }
    if (this.store.inSync) this.component.report(true);
  }

  private onInSync(stream: Stream, snapshot: RouteSnapshot | undefined): void {
    this.options.log.info(
      {
        component: COMPONENT.datastoreConnection,
        socket: stream.path,
        tunnels: snapshot?.tunnels.size,
        remoteWorkloads: snapshot?.remoteWorkloads.size,
        ourRoute: snapshot?.ourRoute?.dst,
      },
      "policy sync in sync",
    );
    this.component.report(true, `in sync with the node agent at ${stream.path}`);
    this.refresh(stream);
  }

  private refresh(stream: Stream): void {
    this.refreshTimer = this.options.clock.setTimer(this.refreshMs, () => {
      if (stream !== this.stream || this.stopped) return;
      this.component.report(true);
      this.refresh(stream);
    });
  }

  private deliver(snapshot: RouteSnapshot): void {
    try {
      this.options.onSnapshot(snapshot);
    } catch (error) {
      this.options.log.error(
        { component: COMPONENT.datastoreConnection, err: error },
        "route snapshot consumer failed",
      );
    }
  }

  private onEnd(stream: Stream, status: StatusObject): void {
    stream.ended = true;
    if (stream !== this.stream) return;
    this.stream = undefined;
    this.refreshTimer?.cancel();
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
