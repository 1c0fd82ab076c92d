// A long-running `conntrack -E` child in the pod's network namespace, its
// stdout handed on line by line, restarted with backoff when it dies (1 s
// doubling to 30 s, back to 1 s after a minute of running). The thin I/O shell
// around the pure parser.
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import type { Clock, Timer } from "../clock.js";

export interface EventStreamLog {
  warn(fields: object, msg: string): void;
  info(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
}

export interface EventStreamOptions {
  /** Arguments after `conntrack`. */
  readonly args: readonly string[];
  readonly onLine: (line: string) => void;
  /** The kernel dropped events because the listener fell behind (ENOBUFS). */
  readonly onOverflow: () => void;
  readonly clock: Clock;
  readonly log: EventStreamLog;
  /** The program, `conntrack` unless a test says otherwise. */
  readonly command?: string;
}

// The kernel's conntrack collector destroys expired entries about a second's
// worth at a time, and the listener's socket holds only ~166 events (see
// netlink-drops.ts): lines are taken off conntrack's stdout as fast as they
// come and handled in slices, so that a burst waits in memory here instead of
// stalling conntrack on a full stdout while the kernel drops what follows.
// Past MAX_QUEUED lines (a backlog that is not a burst any more) reading
// pauses, and what the kernel then drops is counted there.
const SLICE = 256;
const MAX_QUEUED = 50_000;
const COMPACT_AT = 4_096;

const FIRST_BACKOFF_MS = 1_000;
const MAX_BACKOFF_MS = 30_000;
const STABLE_MS = 60_000;

export class EventStream {
  private child: ChildProcess | undefined;
  private restart: Timer | undefined;
  private backoffMs = FIRST_BACKOFF_MS;
  private stopped = false;
  private readonly queued: string[] = [];
  private head = 0;
  private draining = false;
  /** Times the child had to be started again. */
  restarts = 0;

  constructor(private readonly options: EventStreamOptions) {}

  get running(): boolean {
    return this.child !== undefined;
  }

  start(): void {
    const { clock, log, args } = this.options;
    const command = this.options.command ?? "conntrack";
    const startedAt = clock.now();
    // conntrack -E flushes stdout after every event (checked with 1.4.7 writing
    // to a file), so no stdbuf: its LD_PRELOAD would be ignored anyway for the
    // file-capable conntrack of the non-root image. ctime() in its output
    // follows TZ: UTC makes it parseable.
    const child = spawn(command, [...args], {
      env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", TZ: "UTC" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    createInterface({ input: child.stdout }).on("line", (line) => {
      this.queued.push(line);
      if (this.queued.length - this.head >= MAX_QUEUED) child.stdout.pause();
      if (!this.draining) {
        this.draining = true;
        setImmediate(() => this.drain());
      }
    });
    const stderr: string[] = [];
    createInterface({ input: child.stderr }).on("line", (line) => {
      if (line.includes("ENOBUFS")) this.options.onOverflow();
      else if (!line.startsWith("This message") && !line.startsWith("Please, check")) stderr.push(line);
    });
    let failed = false;
    const ended = (why: string): void => {
      if (this.child !== child) return;
      this.child = undefined;
      if (this.stopped) return;
      if (clock.now() - startedAt >= STABLE_MS) this.backoffMs = FIRST_BACKOFF_MS;
      const said = stderr.slice(-2).join(" | ");
      log[failed ? "error" : "warn"](
        { command: [command, ...args].join(" "), retryInMs: this.backoffMs, detail: said || undefined },
        `conntrack event listener ${why}; restarting`,
      );
      this.restart = clock.setTimer(this.backoffMs, () => {
        this.restarts += 1;
        this.start();
      });
      this.backoffMs = Math.min(MAX_BACKOFF_MS, this.backoffMs * 2);
    };
    child.once("error", (error) => {
      failed = true;
      ended(`cannot start (${error.message}; the image needs the conntrack package)`);
    });
    child.once("close", (code, signal) => ended(`exited (${signal ?? code})`));
  }

  /** Handles one slice of the queued lines, then lets the event loop read more before the next. */
  private drain(): void {
    const end = Math.min(this.queued.length, this.head + SLICE);
    for (; this.head < end; this.head++) this.options.onLine(this.queued[this.head]!);
    if (this.head === this.queued.length || this.head >= COMPACT_AT) {
      this.queued.splice(0, this.head);
      this.head = 0;
    }
    if (this.queued.length < MAX_QUEUED / 2) this.child?.stdout?.resume();
    if (this.queued.length === 0) this.draining = false;
    else setImmediate(() => this.drain());
  }

  stop(): void {
    this.stopped = true;
    this.restart?.cancel();
    this.child?.kill("SIGTERM");
    this.child = undefined;
  }
}
