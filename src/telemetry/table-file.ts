// The parsing side of the shared slots (table-slots.ts): asks the reading
// thread for a file and hands each filled slot to `onChunk` as it comes, so
// that the parse runs while the kernel writes the next slots. Lives in the
// conntrack worker; the reading thread is started on first use and kept.
import type { Worker } from "node:worker_threads";
import { startThread } from "./thread.js";
import {
  FILLED,
  LENGTHS,
  PARSED,
  SLOT_BYTES,
  SLOTS,
  sharedSlots,
  type ReadOutcome,
  type ReadRequest,
} from "./table-slots.js";

/** A failed read of the file, with its errno code (EACCES, ENOENT) when it has one. */
export class TableFileError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

export class TableFile {
  private readonly slots = sharedSlots();
  private readonly counters = new Int32Array(this.slots.control);
  private reader: Worker | undefined;
  private nextId = 1;
  private readonly waiting = new Map<number, (outcome: ReadOutcome) => void>();
  /** The read before the next one: one set of slots, so one read at a time (the drain reads between refreshes). */
  private last: Promise<void> = Promise.resolve();

  /** Starts the reading thread now, so that it boots while the worker does, not in the first read's time. */
  constructor() {
    this.ensureReader();
  }

  /** Reads `path` to its end; `onChunk` gets views of shared memory, valid only during the call. */
  read(path: string, onChunk: (chunk: Buffer) => void): Promise<void> {
    const read = this.last.then(() => this.readNow(path, onChunk));
    this.last = read.catch(() => undefined);
    return read;
  }

  private async readNow(path: string, onChunk: (chunk: Buffer) => void): Promise<void> {
    const reader = this.ensureReader();
    const id = this.nextId++;
    let outcome: ReadOutcome | undefined;
    const finished = new Promise<void>((resolve) =>
      this.waiting.set(id, (o) => {
        outcome = o;
        resolve();
      }),
    );
    reader.postMessage({ id, path } satisfies ReadRequest);
    // Every filled slot is handed back, even after onChunk threw: the reader
    // would otherwise wait for a free slot for good.
    let failure: { error: unknown } | undefined;
    let parsed = Atomics.load(this.counters, PARSED);
    for (;;) {
      const filled = Atomics.load(this.counters, FILLED);
      for (; parsed !== filled; parsed++) {
        const slot = parsed % SLOTS;
        const chunk = Buffer.from(this.slots.data, slot * SLOT_BYTES, this.counters[LENGTHS + slot]);
        try {
          if (failure === undefined) onChunk(chunk);
        } catch (error) {
          failure = { error };
        }
        Atomics.store(this.counters, PARSED, parsed + 1);
        Atomics.notify(this.counters, PARSED);
      }
      if (outcome !== undefined && Atomics.load(this.counters, FILLED) === parsed) break;
      const wait = Atomics.waitAsync(this.counters, FILLED, filled);
      if (wait.async) await Promise.race([wait.value, finished]);
    }
    if (failure !== undefined) throw failure.error;
    if (!outcome.ok) throw new TableFileError(outcome.message, outcome.code);
  }

  /** Ends the reading thread; reads in flight fail. */
  async close(): Promise<void> {
    const reader = this.reader;
    this.reader = undefined;
    this.fail("the table reader closed");
    await reader?.terminate();
  }

  private ensureReader(): Worker {
    if (this.reader) return this.reader;
    const reader = startThread("table-reader", { workerData: this.slots });
    reader.on("message", (outcome: ReadOutcome) => {
      this.waiting.get(outcome.id)?.(outcome);
      this.waiting.delete(outcome.id);
    });
    reader.on("error", (error) => {
      if (this.reader === reader) this.reader = undefined;
      this.fail(`the table reader failed: ${error.message}`);
    });
    this.reader = reader;
    return reader;
  }

  private fail(message: string): void {
    for (const [id, settle] of this.waiting) settle({ id, ok: false, message, code: undefined });
    this.waiting.clear();
  }
}
