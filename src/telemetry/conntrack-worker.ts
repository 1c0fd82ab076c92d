// Worker thread that reads the conntrack table and tallies it, so that the
// gateway's event loop never parses 45 MB of text. It imports nothing but the
// tally: the ICMP prober's raw-socket addon crashes when loaded in a worker.
import { open } from "node:fs/promises";
import { parentPort } from "node:worker_threads";
import { ConntrackTally, type ConntrackSummary } from "./conntrack-tally.js";

export interface TallyRequest {
  readonly id: number;
  readonly path: string;
  readonly topN: number;
}

export type TallyReply =
  | { readonly id: number; readonly ok: true; readonly summary: ConntrackSummary }
  | { readonly id: number; readonly ok: false; readonly message: string; readonly code: string | undefined };

// 1 MiB reads: /proc fills the whole buffer per read(2), so 250k entries take
// ~45 reads. Two buffers: the kernel fills one (in libuv's thread pool) while
// this thread parses the other, so reading and parsing overlap.
const CHUNK_BYTES = 1 << 20;

export async function tallyFile(path: string, topN: number): Promise<ConntrackSummary> {
  const file = await open(path, "r");
  try {
    const tally = new ConntrackTally(topN);
    let [filling, parsing] = [Buffer.allocUnsafe(CHUNK_BYTES), Buffer.allocUnsafe(CHUNK_BYTES)];
    let reading = file.read(filling, 0, CHUNK_BYTES, null);
    for (;;) {
      const { bytesRead } = await reading;
      if (bytesRead === 0) break;
      [filling, parsing] = [parsing, filling];
      reading = file.read(filling, 0, CHUNK_BYTES, null);
      tally.write(parsing.subarray(0, bytesRead));
    }
    return tally.end();
  } finally {
    await file.close();
  }
}

parentPort?.on("message", (request: TallyRequest) => {
  tallyFile(request.path, request.topN).then(
    (summary) => parentPort?.postMessage({ id: request.id, ok: true, summary } satisfies TallyReply),
    (error: unknown) => {
      const message = error instanceof Error ? error.message : String(error);
      const code = (error as { code?: unknown }).code;
      parentPort?.postMessage({
        id: request.id,
        ok: false,
        message,
        code: typeof code === "string" ? code : undefined,
      } satisfies TallyReply);
    },
  );
});
