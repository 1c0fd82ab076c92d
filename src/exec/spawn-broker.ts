// The gateway's side of its spawn broker (broker-main.ts). Why a broker:
// child_process.spawn() blocks the event loop until the child has exec'd
// (libuv forks, then waits on a pipe), and the fork copies the page tables of
// the whole process: 13-15 ms per spawn at ~120 MB of RSS, measured here, on
// every reconcile pass, integrity check and telemetry refresh. The broker is
// forked once while the gateway is still small and forks the tools from its
// own small heap; the gateway only writes a request to a pipe.
//
// Only the gateway can reach it: the IPC channel is a socket pair inherited at
// fork, not a listening socket that other containers in the pod's network
// namespace could connect to (the broker's tools carry NET_ADMIN).
//
// When the broker dies, requests it had taken fail at once with a clear result
// (they may or may not have run: the callers retry as after any failed tool),
// it is started again (at once, then after 1 s doubling to 60 s), and until it
// is ready again commands run in this process, with one warning per outage.
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import {
  BROKER_HEALTHY_MS,
  InFlight,
  parseBrokerMessage,
  restartDelayMs,
  type CommandRequest,
} from "./broker-protocol.js";
import type { CommandBroker } from "./run-command.js";
import { spawnCommand, type CommandResult } from "./spawn-command.js";

export interface ExecLog {
  warn(fields: object, msg: string): void;
  info(fields: object, msg: string): void;
}

export interface SpawnBrokerOptions {
  readonly log: ExecLog;
  /** A broker that has not said it is ready after this long is killed and restarted. */
  readonly readyTimeoutMs?: number;
  /** The broker's program: node and its arguments; the built broker-main.js by default (tests point elsewhere). */
  readonly entry?: BrokerEntry;
}

export interface BrokerEntry {
  readonly modulePath: string;
  readonly execArgv: readonly string[];
}

export interface SpawnBrokerState {
  /** Ready and taking commands. */
  readonly up: boolean;
  readonly pid: number | undefined;
  /** Times the broker was started again after it died. */
  readonly restarts: number;
  /** Commands run in the gateway's own process because the broker was not running. */
  readonly directRuns: number;
}

// The broker keeps nothing but a few pending commands' output: a small heap
// (measured: ~43 MB RSS, of which ~12 MB proportional share and ~7 MB
// private, the rest the node binary's pages shared with the gateway) and one
// V8 helper thread. A command whose output outgrew the old space would kill
// the broker, which then counts as a failed command and a restart.
const BROKER_FLAGS = ["--max-old-space-size=64", "--max-semi-space-size=1", "--v8-pool-size=1"];
// Generous: a Node start took up to 10 s here on a loaded machine; commands wait for it meanwhile.
const READY_TIMEOUT_MS = 30_000; // 30 s
const STOP_GRACE_MS = 2_000; // 2 s for commands in flight, then as long again for the exit

/** The broker as built beside this file: dist/ in production; the sources under tsx in tests and benchmarks. */
export function defaultBrokerEntry(): BrokerEntry {
  if (!import.meta.url.endsWith(".ts")) {
    return {
      modulePath: fileURLToPath(new URL("./broker-main.js", import.meta.url)),
      execArgv: BROKER_FLAGS,
    };
  }
  return {
    modulePath: fileURLToPath(new URL("./broker-main.ts", import.meta.url)),
    execArgv: [...BROKER_FLAGS, "--import", import.meta.resolve("tsx")],
  };
}

interface Queued {
  readonly argv: readonly string[];
  readonly input: string | undefined;
  readonly resolve: (result: CommandResult) => void;
}

export class SpawnBroker implements CommandBroker {
  private child: ChildProcess | undefined;
  private ready = false;
  private readyAt = 0;
  private stopped = false;
  private deaths = 0;
  private restarts = 0;
  private directRuns = 0;
  private warnedDirect = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private readyTimer: NodeJS.Timeout | undefined;
  private readonly inFlight = new InFlight();
  /** Commands that came while the broker was booting: sent once it is ready, run here if it never is. */
  private queued: Queued[] = [];
  private exitWaiters: (() => void)[] = [];
  private readonly entry: BrokerEntry;

  constructor(private readonly options: SpawnBrokerOptions) {
    this.entry = options.entry ?? defaultBrokerEntry();
  }

  /** Forks the broker; returns at once (it boots in ~0.1-0.3 s, commands meanwhile wait for it). */
  start(): this {
    this.launch();
    return this;
  }

  state(): SpawnBrokerState {
    return { up: this.ready, pid: this.child?.pid, restarts: this.restarts, directRuns: this.directRuns };
  }

  run(argv: readonly string[], input?: string): Promise<CommandResult> {
    if (this.child === undefined) return this.runHere(argv, input);
    if (!this.ready) {
      const queued = new Promise<CommandResult>((resolve) => this.queued.push({ argv, input, resolve }));
      this.holdLoop(this.child);
      return queued;
    }
    return this.send(this.child, argv, input);
  }

  /** Lets commands in flight finish (up to 2 s), then closes the channel; the broker exits on that. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.restartTimer);
    const child = this.child;
    if (child === undefined) return;
    const exited = new Promise<void>((resolve) => this.exitWaiters.push(resolve));
    await Promise.race([this.settled(), delay(STOP_GRACE_MS)]);
    if (child.connected) child.disconnect();
    const timer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  }

  private async settled(): Promise<void> {
    while (this.inFlight.size > 0 || this.queued.length > 0) await delay(10);
  }

  private runHere(argv: readonly string[], input: string | undefined): Promise<CommandResult> {
    this.directRuns++;
    if (!this.warnedDirect && !this.stopped) {
      this.warnedDirect = true;
      this.options.log.warn(
        { file: argv[0] },
        "spawn broker not running: running tools from the gateway process until it is back (each blocks the event loop while it forks)",
      );
    }
    return spawnCommand(argv, input);
  }

  private send(
    child: ChildProcess,
    argv: readonly string[],
    input: string | undefined,
  ): Promise<CommandResult> {
    const { id, result } = this.inFlight.add(argv);
    const request: CommandRequest = { id, argv, input };
    this.holdLoop(child);
    // A failed write means the channel closed: the exit handler fails the request.
    child.send(request, (error) => {
      if (error !== null && error !== undefined) child.kill("SIGKILL");
    });
    return result.finally(() => this.holdLoop(child));
  }

  // The channel keeps the gateway's event loop alive only while a command is
  // pending, so that a process that is otherwise done can exit.
  private holdLoop(child: ChildProcess): void {
    if (child !== this.child) return;
    const busy = this.inFlight.size > 0 || this.queued.length > 0;
    const channel = child.channel as { ref(): void; unref(): void } | null | undefined;
    if (busy) {
      child.ref();
      channel?.ref();
    } else {
      child.unref();
      channel?.unref();
    }
  }

  private launch(): void {
    let child: ChildProcess;
    try {
      child = fork(this.entry.modulePath, [], {
        execArgv: [...this.entry.execArgv],
        stdio: ["ignore", "ignore", "inherit", "ipc"],
        serialization: "json",
      });
    } catch (error) {
      this.lost(undefined, `cannot start: ${(error as Error).message}`);
      return;
    }
    this.child = child;
    this.ready = false;
    this.holdLoop(child);
    this.readyTimer = setTimeout(
      () => child.kill("SIGKILL"),
      this.options.readyTimeoutMs ?? READY_TIMEOUT_MS,
    );
    this.readyTimer.unref();
    child.on("message", (message) => this.receive(child, message));
    child.on("error", (error) => this.lost(child, error.message));
    child.on("exit", (code, signal) => this.lost(child, `exited with ${code ?? signal}`));
    // A channel that closes while the process lives is a broker nobody can talk to.
    child.on("disconnect", () => {
      if (!this.stopped) child.kill("SIGKILL");
    });
  }

  private receive(child: ChildProcess, raw: unknown): void {
    if (child !== this.child) return;
    const message = parseBrokerMessage(raw);
    if (message === undefined) return;
    if (message.type === "reply") {
      const { ok, stdout, stderr } = message;
      this.inFlight.settle(message.id, { ok, stdout, stderr });
      return;
    }
    clearTimeout(this.readyTimer);
    this.ready = true;
    this.readyAt = performance.now();
    if (this.warnedDirect) this.options.log.info({ pid: child.pid }, "spawn broker running again");
    this.warnedDirect = false;
    const queued = this.queued;
    this.queued = [];
    for (const { argv, input, resolve } of queued) void this.send(child, argv, input).then(resolve);
    this.holdLoop(child);
  }

  private lost(child: ChildProcess | undefined, why: string): void {
    if (child !== undefined && child !== this.child) return;
    this.child = undefined;
    clearTimeout(this.readyTimer);
    const wasReady = this.ready;
    this.ready = false;
    child?.removeAllListeners("exit");
    child?.removeAllListeners("error");
    if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    this.inFlight.failAll(`the spawn broker ${why} before the command finished (it may or may not have run)`);
    // Never sent: safe to run here.
    const queued = this.queued;
    this.queued = [];
    for (const { argv, input, resolve } of queued) void this.runHere(argv, input).then(resolve);
    for (const resolve of this.exitWaiters.splice(0)) resolve();
    if (this.stopped) return;

    if (wasReady && performance.now() - this.readyAt >= BROKER_HEALTHY_MS) this.deaths = 0;
    this.deaths++;
    const inMs = restartDelayMs(this.deaths);
    this.options.log.warn(
      { why, restartInMs: inMs, deaths: this.deaths },
      `spawn broker ${why}; starting it again${inMs === 0 ? "" : ` in ${inMs} ms`}`,
    );
    const restart = (): void => {
      this.restarts++;
      this.launch();
    };
    if (inMs === 0) return restart();
    this.restartTimer = setTimeout(restart, inMs);
    this.restartTimer.unref();
  }
}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
