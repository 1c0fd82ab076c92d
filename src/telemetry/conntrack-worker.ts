// Worker thread that reads the conntrack table and tallies it, so that the
// gateway's event loop never parses 45 MB of text. It imports nothing but the
// tally and its reading thread: the ICMP prober's raw-socket addon crashes
// when loaded in a worker.
import { spawn } from "node:child_process";
import { parentPort } from "node:worker_threads";
import { ConntrackTally, type ConntrackSummary } from "./conntrack-tally.js";
import { TableFile } from "./table-file.js";

/** Where the table's text comes from: /proc's file, or a command that prints the same lines. */
export type TableSource =
  | { readonly kind: "file"; readonly path: string }
  | { readonly kind: "command"; readonly argv: readonly string[]; readonly timeoutMs: number };

export interface TallyRequest {
  readonly id: number;
  readonly source: TableSource;
  readonly topN: number;
}

export type TallyReply =
  | { readonly id: number; readonly ok: true; readonly summary: ConntrackSummary }
  | { readonly id: number; readonly ok: false; readonly message: string; readonly code: string | undefined };

// One reading thread for the worker's life, started with it: the file is read
// there in a synchronous loop while this thread parses what it has read
// (table-file.ts).
const tableFile = new TableFile();

export async function tallyFile(path: string, topN: number): Promise<ConntrackSummary> {
  const tally = new ConntrackTally(topN);
  await tableFile.read(path, (chunk) => tally.write(chunk));
  return tally.end();
}

/**
 * Tallies what `argv` prints (`conntrack -L -o extended`: /proc's line format).
 * The child is killed at `timeoutMs`; if this worker is ended first, the child
 * dies of a broken pipe at its next write.
 */
export function tallyCommand(
  argv: readonly string[],
  topN: number,
  timeoutMs: number,
): Promise<ConntrackSummary> {
  const [command = "", ...args] = argv;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin" },
      stdio: ["ignore", "pipe", "pipe"],
      timeout: timeoutMs,
      killSignal: "SIGKILL",
    });
    const tally = new ConntrackTally(topN);
    child.stdout.on("data", (chunk: Buffer) => tally.write(chunk));
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
    child.once("error", reject);
    child.once("close", (code, signal) => {
      if (code === 0) resolve(tally.end());
      else {
        const why = stderr.trim().split("\n")[0] ?? "";
        reject(new Error(`${argv.join(" ")} exited (${signal ?? code})${why ? `: ${why}` : ""}`));
      }
    });
  });
}

function tally(request: TallyRequest): Promise<ConntrackSummary> {
  if (request.source.kind === "file") return tallyFile(request.source.path, request.topN);
  // The reader went over to the command for good (the file was refused): the reading thread idles.
  void tableFile.close();
  return tallyCommand(request.source.argv, request.topN, request.source.timeoutMs);
}

parentPort?.on("message", (request: TallyRequest) => {
  tally(request).then(
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
