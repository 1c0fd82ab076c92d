// A scriptable stand-in for the node agent's policy-sync server: the same wire
// format (src/sync/proto.ts) on a unix socket. Tests drive each stream by hand
// (routes in either encoding, InSync, removals, a dropped stream, a crash and a
// restart on the same path); fake-agent-cli.ts serves a fixed route list for the lab.
import { Metadata, Server, ServerCredentials, status, type ServerWritableStream } from "@grpc/grpc-js";
import { rmSync } from "node:fs";
import {
  policySyncService,
  type RouteUpdateMessage,
  type SyncRequestMessage,
  type ToDataplaneMessage,
} from "../src/sync/proto.js";
import type { PoolType, RouteTypes, TunnelType } from "../src/sync/types.js";

export type RouteTypeName = keyof RouteTypes;

/** A route as a test or a lab fixture writes it (JSON-friendly). */
export interface FakeRoute {
  readonly dst: string;
  readonly types: readonly RouteTypeName[];
  /** "bitmap" (field 12, newer agents; the default) or "enum" (field 1, older agents: one type at most). */
  readonly encoding?: "bitmap" | "enum";
  readonly poolType?: PoolType;
  readonly dstNodeName?: string;
  readonly dstNodeIp?: string;
  readonly sameSubnet?: boolean;
  readonly natOutgoing?: boolean;
  readonly localWorkload?: boolean;
  readonly tunnelType?: Partial<TunnelType>;
  readonly borrowed?: boolean;
}

const BITS: Record<RouteTypeName, number> = {
  remoteWorkload: 1,
  remoteHost: 2,
  localWorkload: 4,
  localHost: 8,
  remoteTunnel: 16,
  localTunnel: 32,
};
const ENUM: Record<RouteTypeName, number> = {
  remoteWorkload: 1,
  remoteHost: 2,
  localWorkload: 3,
  localHost: 4,
  remoteTunnel: 5,
  localTunnel: 6,
};
const POOL: Record<PoolType, number> = { NONE: 0, NO_ENCAP: 1, VXLAN: 2, IPIP: 3 };

/** The RouteUpdate message for `route`, in the encoding it asks for. */
export function routeUpdateMessage(route: FakeRoute): RouteUpdateMessage {
  const [first, ...rest] = route.types;
  let encoded: Pick<RouteUpdateMessage, "type" | "types">;
  if (route.encoding === "enum") {
    if (rest.length > 0) throw new Error(`${route.dst}: the enum encoding carries one route type at most`);
    encoded = { type: first === undefined ? 0 : ENUM[first] };
  } else {
    encoded = { types: route.types.reduce((bits, name) => bits | BITS[name], 0) };
  }
  return {
    ...encoded,
    dst: route.dst,
    ipPoolType: POOL[route.poolType ?? "NONE"],
    dstNodeName: route.dstNodeName ?? "",
    dstNodeIp: route.dstNodeIp ?? "",
    sameSubnet: route.sameSubnet ?? false,
    natOutgoing: route.natOutgoing ?? false,
    localWorkload: route.localWorkload ?? false,
    ...(route.tunnelType && { tunnelType: route.tunnelType }),
    borrowed: route.borrowed ?? false,
  };
}

/** One Sync stream, as the agent sees it. */
export class AgentStream {
  private sequence = 0;
  private isOpen = true;
  /** Resolves when the stream is over, whichever side ended it. */
  readonly closed: Promise<void>;

  constructor(private readonly call: ServerWritableStream<SyncRequestMessage, ToDataplaneMessage>) {
    this.closed = new Promise((resolve) => {
      const close = (): void => {
        this.isOpen = false;
        resolve();
      };
      call.on("cancelled", close);
      call.on("close", close);
      call.on("finish", close);
    });
  }

  /** The subscription the client sent. */
  get request(): SyncRequestMessage {
    return this.call.request;
  }

  get open(): boolean {
    return this.isOpen && !this.call.cancelled;
  }

  /** Sends any ToDataplane message; the sequence number counts from 1 unless the message has one. */
  send(message: ToDataplaneMessage): void {
    if (!this.open) return;
    this.call.write({ sequenceNumber: String(++this.sequence), ...message });
  }

  route(route: FakeRoute): void {
    this.send({ routeUpdate: routeUpdateMessage(route) });
  }

  remove(dst: string): void {
    this.send({ routeRemove: { dst } });
  }

  inSync(): void {
    this.send({ inSync: {} });
  }

  /** Ends the stream with an error status, as an agent that gives up on a client. */
  drop(details = "fake agent dropped the stream"): void {
    if (!this.open) return;
    this.isOpen = false;
    this.call.emit("error", { code: status.UNAVAILABLE, details });
  }
}

export class FakeAgent {
  /** Every stream opened since start, across restarts. */
  readonly streams: AgentStream[] = [];
  private server: Server | undefined;
  private readonly waiters: { count: number; resolve: (stream: AgentStream) => void }[] = [];

  private constructor(
    readonly socketPath: string,
    private readonly onStream: ((stream: AgentStream) => void) | undefined,
  ) {}

  /** Listens on `socketPath` (a stale file there is replaced); `onStream` runs for each new stream. */
  static async start(socketPath: string, onStream?: (stream: AgentStream) => void): Promise<FakeAgent> {
    const agent = new FakeAgent(socketPath, onStream);
    await agent.listen();
    return agent;
  }

  /** Streams still open. */
  get connected(): AgentStream[] {
    return this.streams.filter((s) => s.open);
  }

  /** The `count`-th stream since start (1-based), once it has been opened; rejects after `timeoutMs` when given. */
  waitForStream(count: number, timeoutMs?: number): Promise<AgentStream> {
    const stream = this.streams[count - 1];
    if (stream) return Promise.resolve(stream);
    return new Promise((resolve, reject) => {
      const waiter = {
        count,
        resolve: (opened: AgentStream) => {
          clearTimeout(timer);
          resolve(opened);
        },
      };
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              this.waiters.splice(this.waiters.indexOf(waiter), 1);
              reject(
                new Error(
                  `fake agent: no stream ${count} within ${timeoutMs} ms (${this.streams.length} so far)`,
                ),
              );
            }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Stops as a crashing agent would: connections cut, socket file gone. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) {
      await new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        server.forceShutdown();
      });
    }
    rmSync(this.socketPath, { force: true });
  }

  /** Stops, then listens again on the same path (an agent restart). */
  async restart(): Promise<void> {
    await this.stop();
    await this.listen();
  }

  private async listen(): Promise<void> {
    rmSync(this.socketPath, { force: true });
    const server = new Server();
    server.addService(policySyncService, {
      Sync: (call: ServerWritableStream<SyncRequestMessage, ToDataplaneMessage>) => this.accept(call),
    });
    await new Promise<void>((resolve, reject) => {
      server.bindAsync(`unix://${this.socketPath}`, ServerCredentials.createInsecure(), (error) =>
        error ? reject(error) : resolve(),
      );
    });
    this.server = server;
  }

  private accept(call: ServerWritableStream<SyncRequestMessage, ToDataplaneMessage>): void {
    const stream = new AgentStream(call);
    // Headers now, so the client sees the stream open before the first message.
    call.sendMetadata(new Metadata());
    this.streams.push(stream);
    for (const waiter of this.waiters.filter((w) => w.count === this.streams.length)) {
      this.waiters.splice(this.waiters.indexOf(waiter), 1);
      waiter.resolve(stream);
    }
    this.onStream?.(stream);
  }
}
