// An HTTP client that runs inside a lab namespace (lab/http-agent.ts), driven
// from this process: start it once, then every get() costs a request, not a
// process start. Used to fetch from the client pod what the external host saw,
// and /readiness from the node, where the gateway pod's address is reachable.
import type { ChildProcess } from "node:child_process";
import type { Interface } from "node:readline";
import type { Namespace } from "./netns.js";
import type { AgentAnswer, AgentRequest } from "./http-agent.js";
import type { RunLab } from "./run-lab.js";

export interface HttpAnswer {
  readonly status: number;
  readonly body: string;
  /** Request to end of body, measured inside the namespace. */
  readonly ms: number;
}

interface Pending {
  readonly resolve: (answer: HttpAnswer) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

export class NamespaceHttpClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  private constructor(
    readonly ns: Namespace,
    private readonly child: ChildProcess,
    lines: Interface,
  ) {
    lines.on("line", (line) => this.settle(JSON.parse(line) as AgentAnswer));
    // A write after the agent died fails here; its exit already rejected what was pending.
    child.stdin!.on("error", () => undefined);
    child.once("exit", (code, signal) => {
      for (const [id, p] of this.pending) {
        clearTimeout(p.timer);
        p.reject(new Error(`HTTP agent in ${ns.name} exited (${signal ?? code}) before answering #${id}`));
      }
      this.pending.clear();
    });
  }

  /** `readyTimeoutMs`: how long the agent may take to start (tsx compiles it; a loaded machine is slow). */
  static async start(lab: RunLab, ns: Namespace, readyTimeoutMs?: number): Promise<NamespaceHttpClient> {
    const { child, lines } = await lab.startProgram(ns, "http-agent.ts", [], readyTimeoutMs);
    return new NamespaceHttpClient(ns, child, lines);
  }

  /** GET on a fresh connection; rejects on a connection error or after timeoutMs, resolves on any status. */
  get(
    url: string,
    options: { timeoutMs?: number; headers?: Record<string, string> } = {},
  ): Promise<HttpAnswer> {
    const timeoutMs = options.timeoutMs ?? 2_000;
    const ask: AgentRequest = { id: this.nextId++, url, timeoutMs, headers: options.headers };
    return new Promise((resolve, reject) => {
      // The agent enforces timeoutMs itself; this one only catches a stuck agent.
      const timer = setTimeout(() => {
        this.pending.delete(ask.id);
        reject(
          new Error(`HTTP agent in ${this.ns.name} did not answer GET ${url} within ${timeoutMs + 1_000} ms`),
        );
      }, timeoutMs + 1_000);
      this.pending.set(ask.id, { resolve, reject, timer });
      this.child.stdin!.write(`${JSON.stringify(ask)}\n`);
    });
  }

  /** The body, trimmed, of a 200 answer; rejects on anything else. */
  async text(url: string, timeoutMs?: number): Promise<string> {
    const answer = await this.get(url, { timeoutMs });
    if (answer.status !== 200) throw new Error(`GET ${url} from ${this.ns.name}: status ${answer.status}`);
    return answer.body.trim();
  }

  /** Ends the agent (it exits when its stdin closes). destroy() of the lab kills it anyway. */
  close(): void {
    this.child.stdin!.end();
  }

  private settle(answer: AgentAnswer): void {
    const p = this.pending.get(answer.id);
    if (!p) return;
    this.pending.delete(answer.id);
    clearTimeout(p.timer);
    if ("error" in answer) p.reject(new Error(`GET from ${this.ns.name}: ${answer.error}`));
    else p.resolve(answer);
  }
}
