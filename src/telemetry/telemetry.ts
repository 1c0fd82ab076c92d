// Kernel telemetry on its own cadence, off the request path: a refresh reads
// every source at once, each cut off by one deadline, and keeps the figures
// of the sources that answered. /metrics and /readiness only read what the
// last refresh kept; nothing here runs at scrape time.
import type { Clock, Timer } from "../clock.js";
import type { ConntrackStats } from "./conntrack-stats.js";
import type { ConntrackSummary } from "./conntrack-tally.js";
import { TelemetryDeadlineError } from "./errors.js";
import type { ConntrackUsage } from "./kernel.js";
import type { RuleCounters } from "./rule-counters.js";

export interface TelemetryLog {
  warn(fields: object, msg: string): void;
  info(fields: object, msg: string): void;
}

/** Where the figures come from; each may reject, and should stop when `signal` aborts. */
export interface TelemetrySources {
  readonly rules: (signal: AbortSignal) => Promise<RuleCounters>;
  readonly usage: (signal: AbortSignal) => Promise<ConntrackUsage>;
  readonly stats: (signal: AbortSignal) => Promise<ConntrackStats>;
  readonly table: (signal: AbortSignal) => Promise<ConntrackSummary>;
  /** Releases what the sources hold (the conntrack worker). */
  readonly close?: () => Promise<void>;
}

export type SourceName = "rules" | "usage" | "stats" | "table";
export const SOURCE_NAMES: readonly SourceName[] = ["rules", "usage", "stats", "table"];

/** The figures of the last refresh; a source that failed in it is absent. */
export interface TelemetrySnapshot {
  readonly rules?: RuleCounters;
  readonly usage?: ConntrackUsage;
  readonly stats?: ConntrackStats;
  readonly table?: ConntrackSummary;
}

export interface RefreshRecord {
  readonly refreshes: number;
  readonly lastDurationSeconds: number | undefined;
  readonly deadlineExceeded: number;
  /** Failed reads per source, deadline cut-offs included. */
  readonly errors: Readonly<Record<SourceName, number>>;
}

export interface TelemetryOptions {
  readonly intervalMs: number;
  /** A refresh that takes longer is cut off: its unfinished sources count as failed. */
  readonly deadlineMs: number;
  readonly clock: Clock;
  readonly log: TelemetryLog;
  readonly sources: TelemetrySources;
}

export class Telemetry {
  private snapshotNow: TelemetrySnapshot = {};
  private readonly errors: Record<SourceName, number> = { rules: 0, usage: 0, stats: 0, table: 0 };
  private readonly failing = new Map<SourceName, string>();
  private refreshes = 0;
  private deadlineExceeded = 0;
  private lastDurationSeconds: number | undefined;
  private timer: Timer | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly listeners: ((snapshot: TelemetrySnapshot) => void)[] = [];

  constructor(private readonly options: TelemetryOptions) {}

  /** Refreshes now, then every interval after the previous refresh ended. */
  start(): void {
    const loop = (): void => {
      this.running = this.refresh().finally(() => {
        this.running = undefined;
        if (!this.stopped) this.timer = this.options.clock.setTimer(this.options.intervalMs, loop);
      });
    };
    loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    await this.running;
    await this.options.sources.close?.();
  }

  /** Called after every refresh with its snapshot. */
  onRefresh(listener: (snapshot: TelemetrySnapshot) => void): void {
    this.listeners.push(listener);
  }

  snapshot(): TelemetrySnapshot {
    return this.snapshotNow;
  }

  /**
   * Forwarded connections still carrying traffic (TCP's TIME_WAIT and CLOSE
   * excluded) at the last refresh; undefined before the first table read and
   * when the last one failed.
   */
  liveForwardedConnections(): number | undefined {
    return this.snapshotNow.table?.liveForwarded;
  }

  /**
   * Reads the conntrack table now, outside the cadence (the drain asks every
   * second), and keeps it as the snapshot's table; undefined when the read
   * fails, which is counted and logged as in a refresh. Works whether or not
   * start() was called.
   */
  async readLiveForwarded(): Promise<number | undefined> {
    const table = await this.settle("table", (signal) => this.options.sources.table(signal));
    if (table === undefined) return undefined;
    this.snapshotNow = { ...this.snapshotNow, table };
    return table.liveForwarded;
  }

  /** One source under the deadline; undefined (counted and logged) when it fails. */
  private async settle<T>(
    name: SourceName,
    read: (signal: AbortSignal) => Promise<T>,
  ): Promise<T | undefined> {
    const controller = new AbortController();
    const timer = this.options.clock.setTimer(this.options.deadlineMs, () => controller.abort());
    const deadline = new Promise<never>((_, reject) =>
      controller.signal.addEventListener("abort", () =>
        reject(new TelemetryDeadlineError(`no answer within ${this.options.deadlineMs} ms`)),
      ),
    );
    deadline.catch(() => undefined);
    try {
      const value = await Promise.race([read(controller.signal), deadline]);
      if (this.failing.delete(name)) this.options.log.info({ source: name }, "telemetry source recovered");
      return value;
    } catch (error) {
      this.errors[name]++;
      this.noteFailure(name, error);
      return undefined;
    } finally {
      timer.cancel();
      controller.abort();
    }
  }

  record(): RefreshRecord {
    return {
      refreshes: this.refreshes,
      lastDurationSeconds: this.lastDurationSeconds,
      deadlineExceeded: this.deadlineExceeded,
      errors: { ...this.errors },
    };
  }

  /** One refresh: every source at once, cut off at the deadline. Never rejects. */
  async refresh(): Promise<void> {
    const { clock, deadlineMs, sources } = this.options;
    const started = clock.now();
    const controller = new AbortController();
    let timedOut = false;
    const deadline = new Promise<never>((_, reject) => {
      const timer = clock.setTimer(deadlineMs, () => {
        timedOut = true;
        // Rejected before the abort, so that the race reports the deadline, not the aborted read.
        reject(new TelemetryDeadlineError(`no answer within ${deadlineMs} ms`));
        controller.abort();
      });
      controller.signal.addEventListener("abort", () => timer.cancel(), { once: true });
    });
    deadline.catch(() => undefined);
    const results = await Promise.allSettled(
      SOURCE_NAMES.map((name) => Promise.race([sources[name](controller.signal), deadline])),
    );
    controller.abort();
    const next: Record<string, unknown> = {}; // becomes the snapshot: only what answered
    results.forEach((result, i) => {
      const name = SOURCE_NAMES[i]!;
      if (result.status === "fulfilled") {
        next[name] = result.value;
        if (this.failing.delete(name)) this.options.log.info({ source: name }, "telemetry source recovered");
      } else {
        this.errors[name]++;
        this.noteFailure(name, result.reason);
      }
    });
    if (timedOut) this.deadlineExceeded++;
    this.refreshes++;
    this.lastDurationSeconds = (clock.now() - started) / 1000;
    this.snapshotNow = next;
    for (const listener of this.listeners) listener(this.snapshotNow);
  }

  /** Logs a source's failure when it starts or its reason changes, not on every refresh. */
  private noteFailure(name: SourceName, reason: unknown): void {
    const message = reason instanceof Error ? reason.message : String(reason);
    if (this.failing.get(name) === message) return;
    this.failing.set(name, message);
    const code = (reason as { code?: unknown }).code;
    this.options.log.warn({ source: name, code }, `telemetry cannot read ${name}: ${message}`);
  }
}
