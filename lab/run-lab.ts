// One lab run: namespaces named after the process that owns them (see
// runPrefix), and the processes started inside them: destroy() kills every process the run started, by PID, before removing the
// namespaces.
import type { ChildProcess, SpawnOptions } from "node:child_process";
import { dirname, join } from "node:path";
import { createInterface, type Interface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Lab, type Namespace } from "./netns.js";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

export interface Finished {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Wall time from spawn to exit. */
  readonly ms: number;
}

export class RunLab extends Lab {
  private readonly children = new Set<ChildProcess>();

  constructor(tag = "lab") {
    super(tag);
  }

  /** Starts `cmd` inside `ns`; destroy() kills it. `ip netns exec` execs, so the PID is the program's. */
  spawn(ns: Namespace, cmd: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
    const child = ns.spawn(cmd, args, { cwd: ROOT, ...options });
    this.track(child);
    return child;
  }

  /** Makes destroy() kill a process started elsewhere (for example the gateway harness's). */
  track(child: ChildProcess): void {
    this.children.add(child);
    child.once("exit", () => this.children.delete(child));
  }

  /** PIDs of the tracked processes that have not exited yet. */
  pids(): number[] {
    return [...this.children].flatMap((c) => (c.pid === undefined ? [] : [c.pid]));
  }

  /** Runs `cmd` inside `ns` to completion, collecting its output. Never rejects for a non-zero exit. */
  run(
    ns: Namespace,
    cmd: string,
    args: readonly string[],
    options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
  ): Promise<Finished> {
    const start = performance.now();
    const child = this.spawn(ns, cmd, args, { env: options.env, stdio: ["ignore", "pipe", "pipe"] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout!.on("data", (b: Buffer) => stdout.push(b));
    child.stderr!.on("data", (b: Buffer) => stderr.push(b));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000);
    return new Promise((resolve, reject) => {
      child.once("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
      child.once("close", (code, signal) => {
        clearTimeout(timer);
        resolve({
          code,
          signal,
          stdout: Buffer.concat(stdout).toString("utf8"),
          stderr: Buffer.concat(stderr).toString("utf8"),
          ms: performance.now() - start,
        });
      });
    });
  }

  /**
   * Starts one of the lab's TypeScript programs (`lab/<file>`) inside `ns` and
   * resolves with it once it printed its first stdout line (its "ready" line);
   * `lines` gives the lines after that one.
   */
  async startProgram(
    ns: Namespace,
    file: string,
    args: readonly string[],
    timeoutMs = 10_000,
  ): Promise<{ child: ChildProcess; ready: string; lines: Interface }> {
    const child = this.spawn(ns, process.execPath, ["--import", "tsx", join(ROOT, "lab", file), ...args], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    const stderr: string[] = [];
    child.stderr!.setEncoding("utf8").on("data", (s: string) => stderr.push(s));
    const lines = createInterface({ input: child.stdout! });
    try {
      const ready = await new Promise<string>((resolve, reject) => {
        const fail = (why: string): void => {
          clearTimeout(timer);
          const said = stderr.join("").trim() || "(empty)";
          reject(new Error(`lab/${file} in ${ns.name}: ${why}; stderr: ${said}`));
        };
        const timer = setTimeout(() => fail(`no ready line within ${timeoutMs} ms`), timeoutMs);
        lines.once("line", (line) => {
          clearTimeout(timer);
          resolve(line);
        });
        child.once("error", (error) => fail(error.message));
        child.once("exit", (code, signal) => fail(`exited (${signal ?? code}) before it was ready`));
      });
      return { child, ready, lines };
    } catch (error) {
      lines.close();
      child.kill("SIGKILL");
      throw error;
    }
  }

  override destroy(): void {
    for (const child of this.children) {
      if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) continue;
      try {
        process.kill(child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    this.children.clear();
    super.destroy();
  }
}
