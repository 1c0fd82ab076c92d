// The main thread's side of the conntrack worker: one long-lived worker thread
// (started on first use, ~15 ms), one table read at a time, and a read that is
// aborted (its deadline passed) ends the worker, so that a stuck read of a huge
// table cannot pile up behind the next refresh.
//
// Why a worker thread and /proc/net/nf_conntrack, measured with 250k entries
// on this 2-core machine: the kernel spends ~0.45 s of CPU producing the text
// either way; `conntrack -L` adds ~0.45 s of its own formatting and a process
// start, and its text is no cheaper to parse. A worker keeps the parse off the
// event loop (/readiness keeps answering), overlaps it with the kernel's
// reading, and costs no second Node process (~40 MB of RSS for a child).
//
// /proc/net/nf_conntrack is mode 0440 root: the non-root variant (UID 65532,
// NET_ADMIN from file capabilities, no DAC_OVERRIDE) gets EACCES. Then the
// reader switches, once and for good, to `conntrack -L -o extended`, which
// prints the same lines over netlink with the binary's file capability.
import type { Worker } from "node:worker_threads";
import type { ConntrackSummary } from "./conntrack-tally.js";
import type { TableSource, TallyReply, TallyRequest } from "./conntrack-worker.js";
import { TelemetryDeadlineError, TelemetryReadError } from "./errors.js";
import { startThread } from "./thread.js";

export const CONNTRACK_TABLE = "/proc/net/nf_conntrack";
/** Prints the table in /proc's line format, over ctnetlink (NET_ADMIN). */
export const CONNTRACK_LIST = ["conntrack", "-L", "-o", "extended"] as const;

/** Errors of opening the file that mean "not as this user", where the command may still work. */
const NOT_PERMITTED = new Set(["EACCES", "EPERM"]);

export interface ConntrackReaderOptions {
  /** The table file; /proc/net/nf_conntrack. */
  readonly path?: string;
  /** The fallback command; `conntrack -L -o extended`. */
  readonly command?: readonly string[];
  /** The fallback command is killed after this long. */
  readonly commandTimeoutMs?: number;
  /** Told once, when the file is not readable and the command takes over. */
  readonly onFallback?: (reason: string) => void;
}

export class ConntrackReader {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (s: ConntrackSummary) => void; reject: (e: Error) => void }
  >();
  private source: TableSource;

  constructor(private readonly options: ConntrackReaderOptions = {}) {
    this.source = { kind: "file", path: options.path ?? CONNTRACK_TABLE };
  }

  /** How the table is read now: the file, or the command after the file was refused. */
  get method(): "file" | "command" {
    return this.source.kind;
  }

  /** Tallies the table with the top `topN` destinations and clients; `signal` aborts and ends the worker. */
  async read(topN: number, signal?: AbortSignal): Promise<ConntrackSummary> {
    try {
      return await this.readFrom(this.source, topN, signal);
    } catch (error) {
      const errno = error instanceof TelemetryReadError ? error.errno : undefined;
      if (this.source.kind !== "file" || errno === undefined || !NOT_PERMITTED.has(errno)) throw error;
      const argv = this.options.command ?? CONNTRACK_LIST;
      this.source = { kind: "command", argv, timeoutMs: this.options.commandTimeoutMs ?? 30_000 };
      this.options.onFallback?.(
        `${this.options.path ?? CONNTRACK_TABLE} is not readable as uid ${process.getuid?.() ?? "?"} ` +
          `(${errno}: it needs root or DAC_OVERRIDE); reading the table with \`${argv.join(" ")}\` instead`,
      );
      return this.readFrom(this.source, topN, signal);
    }
  }

  private readFrom(source: TableSource, topN: number, signal?: AbortSignal): Promise<ConntrackSummary> {
    if (signal?.aborted) return Promise.reject(new TelemetryDeadlineError("aborted"));
    const worker = this.ensureWorker();
    const id = this.nextId++;
    return new Promise<ConntrackSummary>((resolve, reject) => {
      const onAbort = (): void => this.restart(new TelemetryDeadlineError("aborted"));
      signal?.addEventListener("abort", onAbort, { once: true });
      this.pending.set(id, {
        resolve: (s) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(s);
        },
        reject: (e) => {
          signal?.removeEventListener("abort", onAbort);
          reject(e);
        },
      });
      worker.postMessage({ id, source, topN } satisfies TallyRequest);
    });
  }

  /** Ends the worker; reads in flight reject. */
  async close(): Promise<void> {
    const worker = this.worker;
    this.restart(new TelemetryReadError("the conntrack reader closed"));
    await worker?.terminate();
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const worker = startThread("conntrack-worker");
    worker.unref();
    worker.on("message", (reply: TallyReply) => {
      const waiter = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      if (reply.ok) waiter?.resolve(reply.summary);
      else {
        const where = this.source.kind === "file" ? this.source.path : this.source.argv.join(" ");
        waiter?.reject(new TelemetryReadError(`${where}: ${reply.message}`, reply.code));
      }
    });
    worker.on("error", (error) => {
      if (this.worker === worker) this.restart(new TelemetryReadError(error.message));
    });
    this.worker = worker;
    return worker;
  }

  /** Drops the worker (the next read starts another) and rejects what waited on it. */
  private restart(reason: Error): void {
    void this.worker?.terminate();
    this.worker = undefined;
    for (const waiter of this.pending.values()) waiter.reject(reason);
    this.pending.clear();
  }
}
