// The conntrack worker's reading thread: read(2) after read(2) of
// /proc/net/nf_conntrack in a synchronous loop, into the shared slots, while
// the worker parses the slots filled before. /proc hands out at most a page
// per read(2), ~11,000 reads for 250k entries: through libuv's thread pool
// (one promise each) they cost the worker ~0.4 s of CPU on top of the
// kernel's ~0.45 s, and parsing after reading adds the parse to the wall time.
import { closeSync, openSync, readSync } from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import {
  FILLED,
  LENGTHS,
  MIN_READ_BYTES,
  PARSED,
  SLOT_BYTES,
  SLOTS,
  type ReadOutcome,
  type ReadRequest,
  type SharedSlots,
} from "./table-slots.js";

const { data, control } = workerData as SharedSlots;
const counters = new Int32Array(control);

function fill(path: string): void {
  const fd = openSync(path, "r");
  try {
    let filled = Atomics.load(counters, FILLED);
    for (;;) {
      // Every slot waits to be parsed: wait for one (the timeout only lets a
      // termination of this thread through).
      while (filled - Atomics.load(counters, PARSED) >= SLOTS)
        Atomics.wait(counters, PARSED, filled - SLOTS, 1_000);
      const slot = filled % SLOTS;
      const bytes = new Uint8Array(data, slot * SLOT_BYTES, SLOT_BYTES);
      let length = 0;
      let got = 0;
      do {
        got = readSync(fd, bytes, length, SLOT_BYTES - length, null);
        length += got;
      } while (got > 0 && SLOT_BYTES - length >= MIN_READ_BYTES);
      if (length > 0) {
        counters[LENGTHS + slot] = length;
        Atomics.store(counters, FILLED, ++filled);
        Atomics.notify(counters, FILLED);
      }
      if (got === 0) return;
    }
  } finally {
    closeSync(fd);
  }
}

parentPort?.on("message", ({ id, path }: ReadRequest) => {
  let outcome: ReadOutcome;
  try {
    fill(path);
    outcome = { id, ok: true };
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const message = error instanceof Error ? error.message : String(error);
    outcome = { id, ok: false, message, code: typeof code === "string" ? code : undefined };
  }
  parentPort?.postMessage(outcome);
});
