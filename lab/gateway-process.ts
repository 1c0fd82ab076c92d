// Runs the built gateway the way kubelet does: through start-gateway.sh, with
// configuration in environment variables only, optionally inside a namespace.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
export const START_GATEWAY = join(ROOT, "start-gateway.sh");

/** Builds dist/ once if a test runs before `npm run build` did. */
export function ensureBuilt(): void {
  if (!existsSync(join(ROOT, "dist", "gateway", "main.js"))) {
    execFileSync("npm", ["run", "--silent", "build"], { cwd: ROOT, stdio: "inherit" });
  }
}

export interface LogLine {
  readonly level: string;
  readonly msg: string;
  readonly [field: string]: unknown;
}

export class GatewayProcess {
  readonly logs: LogLine[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];

  constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      let parsed: LogLine;
      try {
        parsed = JSON.parse(line) as LogLine;
      } catch {
        parsed = { level: "raw", msg: line };
      }
      this.logs.push(parsed);
      for (const w of [...this.waiters]) {
        if (w.pred(parsed)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(parsed);
        }
      }
    });
    createInterface({ input: child.stderr! }).on("line", (line) => this.stderr.push(line));
    this.exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  }

  /** Resolves with the first log line (past or future) that matches, or rejects after timeoutMs. */
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs = 5_000): Promise<LogLine> {
    const seen = this.logs.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`no matching log line within ${timeoutMs} ms; got:\n${this.dump()}`));
      }, timeoutMs);
      this.waiters.push({
        pred,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
    });
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** Ends the process (SIGKILL) if it is still running. Safe to call twice. */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
    await this.exited;
  }

  dump(): string {
    return [...this.logs.map((l) => JSON.stringify(l)), ...this.stderr].join("\n");
  }
}

/** Starts start-gateway.sh, in a namespace when `netns` is given, with `env` on top of PATH only. */
export function startGatewayProcess(
  env: Record<string, string>,
  options: { netns?: string; wrapper?: readonly string[] } = {},
): GatewayProcess {
  ensureBuilt();
  const command = [...(options.wrapper ?? []), START_GATEWAY];
  const argv = options.netns ? ["ip", "netns", "exec", options.netns, ...command] : command;
  const child = spawn(argv[0]!, argv.slice(1), {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return new GatewayProcess(child);
}

/** A port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (typeof address !== "object" || address === null) throw new Error("no port");
  return address.port;
}
