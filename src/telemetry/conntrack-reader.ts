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
import { Worker } from "node:worker_threads";
import type { ConntrackSummary } from "./conntrack-tally.js";
import type { TallyReply, TallyRequest } from "./conntrack-worker.js";
import { TelemetryDeadlineError, TelemetryReadError } from "./errors.js";

export const CONNTRACK_TABLE = "/proc/net/nf_conntrack";

// The worker runs from the same tree as this file: dist/ in production; the
// sources under tsx in tests and benchmarks, where a worker must register tsx
// itself (loader hooks do not reach worker threads in Node 20).
function startWorker(): Worker {
  if (!import.meta.url.endsWith(".ts")) return new Worker(new URL("./conntrack-worker.js", import.meta.url));
  const source = JSON.stringify(new URL("./conntrack-worker.ts", import.meta.url).href);
  return new Worker(`import("tsx/esm/api").then((tsx) => { tsx.register(); return import(${source}); })`, {
    eval: true,
  });
}

export class ConntrackReader {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (s: ConntrackSummary) => void; reject: (e: Error) => void }
  >();

  constructor(private readonly path = CONNTRACK_TABLE) {}

  /** Tallies the table with the top `topN` destinations and clients; `signal` aborts and ends the worker. */
  read(topN: number, signal?: AbortSignal): Promise<ConntrackSummary> {
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
      worker.postMessage({ id, path: this.path, topN } satisfies TallyRequest);
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
    const worker = startWorker();
    worker.unref();
    worker.on("message", (reply: TallyReply) => {
      const waiter = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      if (reply.ok) waiter?.resolve(reply.summary);
      else waiter?.reject(new TelemetryReadError(`${this.path}: ${reply.message}`));
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
