// A long-running process inside a lab namespace whose output a test, benchmark
// or the demo waits on (an echo server, tcpdump), stopped by its own PID.
import type { ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

/** A long-running process in a namespace; `stop()` ends it and returns all it printed. */
export class NsProcess {
  private readonly out: string[] = [];
  private readonly err: string[] = [];
  private readonly exited: Promise<void>;

  constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on("line", (line) => this.out.push(line));
    createInterface({ input: child.stderr! }).on("line", (line) => this.err.push(line));
    this.exited = new Promise((resolve) => child.on("close", () => resolve()));
  }

  async waitFor(pred: (stdout: string, stderr: string) => boolean, timeoutMs = 5_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (!pred(this.out.join("\n"), this.err.join("\n"))) {
      if (this.child.exitCode !== null || performance.now() > deadline) {
        throw new Error(`process not ready: stdout ${this.out.join("\n")} stderr ${this.err.join("\n")}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async stop(signal: NodeJS.Signals = "SIGINT"): Promise<string> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    const killer = setTimeout(() => this.child.kill("SIGKILL"), 2_000);
    await this.exited;
    clearTimeout(killer);
    return this.out.join("\n");
  }
}
