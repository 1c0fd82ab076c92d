// A probe group: every target on its own jittered timer, results folded into
// one readiness component. Within a group it is OR (SPEC §4.1): any success
// refreshes the component, whose staleness timeout is the group's TIMEOUT, so
// "ready while any target succeeded within TIMEOUT" needs no extra bookkeeping.
import type { Clock, Timer } from "../clock.js";
import type { Component } from "../gateway/readiness.js";
import { formatMs } from "../gateway/readiness.js";
import type { ProbeResult, Prober } from "./types.js";

export type Protocol = "icmp" | "http";

export interface TargetStatus {
  readonly target: string;
  /** undefined until the first result. */
  up: boolean | undefined;
  successes: number;
  failures: number;
  lastDurationMs: number;
  lastResult: ProbeResult | undefined;
}

export interface TargetTransition {
  readonly protocol: Protocol;
  readonly target: string;
  readonly up: boolean;
  readonly first: boolean;
  readonly result: ProbeResult;
}

export interface ProbeGroupOptions {
  readonly protocol: Protocol;
  readonly targets: readonly string[];
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly prober: Prober;
  readonly component: Component;
  readonly clock: Clock;
  /** Called once per change of a target's up/down state. */
  readonly onTargetTransition?: (t: TargetTransition) => void;
  /** Uniform [0, 1); injectable so tests are deterministic. */
  readonly random?: () => number;
}

const JITTER = 0.05; // ±5 % of the interval (SPEC §4.2)
const FIRST_PROBE_SPREAD_MS = 1_000; // 1 s: first probes spread out, never a burst of 1,000 at once

/** The delay before the next probe of a target: the interval with ±5 % jitter. */
export function jitteredInterval(intervalMs: number, random: number): number {
  return intervalMs * (1 - JITTER + 2 * JITTER * random);
}

export class ProbeGroup {
  readonly statuses: readonly TargetStatus[];
  private readonly timers = new Map<string, Timer>();
  private readonly inFlight = new Set<{ controller: AbortController; done: Promise<void> }>();
  private stopped = false;
  private upCount = 0;
  private readonly random: () => number;

  constructor(private readonly options: ProbeGroupOptions) {
    this.random = options.random ?? Math.random;
    this.statuses = options.targets.map((target) => ({
      target,
      up: undefined,
      successes: 0,
      failures: 0,
      lastDurationMs: 0,
      lastResult: undefined,
    }));
    options.component.report(false, `waiting for the first answer from ${this.describeTargets()}`);
  }

  start(): void {
    const spread = Math.min(this.options.intervalMs, FIRST_PROBE_SPREAD_MS);
    for (const status of this.statuses) this.schedule(status, this.random() * spread);
  }

  /** Cancels timers, aborts probes in flight and waits until they have settled. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers.values()) timer.cancel();
    this.timers.clear();
    const pending = [...this.inFlight];
    for (const p of pending) p.controller.abort();
    await Promise.all(pending.map((p) => p.done));
  }

  private schedule(status: TargetStatus, delayMs: number): void {
    if (this.stopped) return;
    this.timers.set(
      status.target,
      this.options.clock.setTimer(delayMs, () => this.probe(status)),
    );
  }

  private probe(status: TargetStatus): void {
    const { clock, intervalMs, prober } = this.options;
    const controller = new AbortController();
    const deadline = clock.setTimer(intervalMs, () => controller.abort());
    const startedAt = clock.now();
    const entry = {
      controller,
      done: prober(status.target, controller.signal)
        .catch((error: unknown): ProbeResult => internalFailure(clock.now() - startedAt, error))
        .then((result) => {
          deadline.cancel();
          this.inFlight.delete(entry);
          if (this.stopped) return;
          this.record(status, result);
          const next = startedAt + jitteredInterval(intervalMs, this.random());
          this.schedule(status, Math.max(0, next - clock.now()));
        }),
    };
    this.inFlight.add(entry);
  }

  private record(status: TargetStatus, result: ProbeResult): void {
    status.lastResult = result;
    status.lastDurationMs = result.durationMs;
    if (result.ok) status.successes++;
    else status.failures++;
    const changed = status.up !== result.ok;
    const first = status.up === undefined;
    if (changed) {
      this.upCount += result.ok ? 1 : first ? 0 : -1;
      status.up = result.ok;
    }
    // The component only hears successes: a failure does not end the window,
    // time does (the staleness timeout).
    if (result.ok) this.options.component.report(true, this.describeUp());
    else if (changed) this.options.component.describe(this.describeUp(result));
    if (changed) {
      this.options.onTargetTransition?.({
        protocol: this.options.protocol,
        target: status.target,
        up: result.ok,
        first,
        result,
      });
    }
  }

  private describeUp(failure?: ProbeResult): string {
    const summary = `${this.upCount} of ${this.statuses.length} targets answering`;
    return failure?.failure && this.upCount === 0 ? `${summary}; last: ${failure.failure.message}` : summary;
  }

  private describeTargets(): string {
    const n = this.statuses.length;
    const window = formatMs(this.options.timeoutMs);
    return `${n === 1 ? this.statuses[0]!.target : `any of ${n} targets`} (window ${window})`;
  }
}

function internalFailure(durationMs: number, error: unknown): ProbeResult {
  const message = error instanceof Error ? error.message : String(error);
  return { ok: false, durationMs, failure: { code: "INTERNAL", message: `prober failed: ${message}` } };
}
