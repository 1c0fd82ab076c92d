// Debian's Prometheus (LAB.md) inside a lab namespace, for tests that prove
// what the gateway's /metrics and the alerting rules show through a real
// Prometheus: its configuration and TSDB in a temp folder of its own, its web
// API on a lab address, queried from inside the namespace. stop() ends it by
// PID and removes the folder; the lab's destroy() and an exit hook do both too
// when a test fails or the process is interrupted.
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { stringify } from "yaml";
import { teardownOnExit } from "./exit-hooks.js";
import type { NamespaceHttpClient } from "./namespace-http.js";
import type { Namespace } from "./netns.js";
import type { RunLab } from "./run-lab.js";

export interface PrometheusSample {
  readonly metric: Readonly<Record<string, string>>;
  /** An instant vector's sample. */
  readonly value: readonly [number, string];
  /** A range vector's samples. */
  readonly values?: readonly (readonly [number, string])[];
}

export interface LabPrometheusOptions {
  /** `address:port` to serve the web API on, an address of `ns`. */
  readonly listen: string;
  /** The whole configuration file, as an object; `rule_files` name files of `ruleFiles`. */
  readonly config: Record<string, unknown>;
  /** Rule files by name, written beside the configuration. */
  readonly ruleFiles?: Readonly<Record<string, unknown>>;
  /** How long it may take to answer /-/ready (default 30 s). */
  readonly readyTimeoutMs?: number;
}

export class LabPrometheus {
  private constructor(
    private readonly http: NamespaceHttpClient,
    private readonly base: string,
    readonly child: ChildProcess,
    private readonly stderr: readonly string[],
    private readonly cleanUp: () => void,
  ) {}

  static async start(
    lab: RunLab,
    ns: Namespace,
    http: NamespaceHttpClient,
    options: LabPrometheusOptions,
  ): Promise<LabPrometheus> {
    const dir = mkdtempSync(join(tmpdir(), "egt-prom-"));
    let child: ChildProcess | undefined;
    // Synchronous, so that it also runs from an exit handler.
    const cleanUp = teardownOnExit(() => {
      if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(child.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      rmSync(dir, { recursive: true, force: true });
    });
    try {
      for (const [name, rules] of Object.entries(options.ruleFiles ?? {})) {
        writeFileSync(join(dir, name), stringify(rules));
      }
      writeFileSync(join(dir, "prometheus.yml"), stringify(options.config));
      const stderr: string[] = [];
      child = lab.spawn(ns, "prometheus", [
        `--config.file=${join(dir, "prometheus.yml")}`,
        `--storage.tsdb.path=${join(dir, "data")}`,
        `--web.listen-address=${options.listen}`,
        "--log.level=warn",
      ]);
      child.stdout!.resume();
      child.stderr!.setEncoding("utf8").on("data", (s: string) => stderr.push(s));
      const prometheus = new LabPrometheus(http, `http://${options.listen}`, child, stderr, cleanUp);
      await prometheus.waitReady(options.readyTimeoutMs ?? 30_000);
      return prometheus;
    } catch (error) {
      cleanUp();
      throw error;
    }
  }

  /** An instant PromQL query; rejects with Prometheus's own error for a bad one. */
  async query(expr: string): Promise<PrometheusSample[]> {
    const answer = await this.http.get(`${this.base}/api/v1/query?query=${encodeURIComponent(expr)}`, {
      timeoutMs: 5_000,
    });
    const body = JSON.parse(answer.body) as { status: string; error?: string; data?: { result: unknown } };
    if (answer.status !== 200 || body.status !== "success") {
      throw new Error(`PromQL ${expr}: ${answer.status} ${body.error ?? answer.body}`);
    }
    return body.data!.result as PrometheusSample[];
  }

  /** The value of the query's first sample, undefined when it has none. */
  async value(expr: string): Promise<number | undefined> {
    const [first] = await this.query(expr);
    return first === undefined ? undefined : Number(first.value[1]);
  }

  /** Polls `expr` every 250 ms until `ok` holds of its value; rejects with the last value seen. */
  async eventually(
    expr: string,
    ok: (value: number | undefined) => boolean,
    limitMs: number,
  ): Promise<number | undefined> {
    const value = (samples: readonly PrometheusSample[]): number | undefined =>
      samples[0] === undefined ? undefined : Number(samples[0].value[1]);
    return value(await this.until(expr, (samples) => ok(value(samples)), limitMs, value));
  }

  /**
   * Polls `expr` every 250 ms until `ok` holds of its samples. A series can be
   * missing from one scrape (the gateway leaves out a telemetry source its last
   * refresh could not read), so a test asks again rather than once.
   */
  async until(
    expr: string,
    ok: (samples: readonly PrometheusSample[]) => boolean,
    limitMs: number,
    show: (samples: readonly PrometheusSample[]) => unknown = (samples) => samples.length,
  ): Promise<PrometheusSample[]> {
    for (const until = performance.now() + limitMs; ; await sleep(250)) {
      const samples = await this.query(expr);
      if (ok(samples)) return samples;
      if (performance.now() > until) {
        throw new Error(`${expr} was still ${JSON.stringify(show(samples))} after ${limitMs} ms`);
      }
    }
  }

  /** GET of any other API path (`/api/v1/targets`, `/api/v1/rules`), parsed. */
  async api<T>(path: string): Promise<T> {
    const answer = await this.http.get(`${this.base}${path}`, { timeoutMs: 5_000 });
    if (answer.status !== 200) throw new Error(`GET ${path}: ${answer.status} ${answer.body}`);
    return (JSON.parse(answer.body) as { data: T }).data;
  }

  /** What it logged on stderr (warnings and errors only). */
  log(): string {
    return this.stderr.join("");
  }

  /** SIGTERM by PID, SIGKILL after 5 s, then its folder removed. Safe to call twice. */
  async stop(): Promise<void> {
    const { child } = this;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await Promise.race([exited, sleep(5_000)]);
    }
    this.cleanUp();
  }

  private async waitReady(limitMs: number): Promise<void> {
    for (const until = performance.now() + limitMs; ; await sleep(100)) {
      if (this.child.exitCode !== null) {
        throw new Error(`prometheus exited (${this.child.exitCode}): ${this.log().trim()}`);
      }
      const ready = await this.http.get(`${this.base}/-/ready`, { timeoutMs: 500 }).catch(() => undefined);
      if (ready?.status === 200) return;
      if (performance.now() > until) {
        throw new Error(`prometheus not ready within ${limitMs} ms: ${this.log().trim()}`);
      }
    }
  }
}
