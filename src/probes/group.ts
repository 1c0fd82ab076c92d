// A probe group: every target probed every interval with its own jitter,
// results folded into one readiness component. Within a group it is OR (SPEC
// §4.1): any success refreshes the component, whose staleness timeout is the
// group's TIMEOUT, so "ready while any target succeeded within TIMEOUT" needs
// no extra bookkeeping. When probes run is slot-scheduler.ts's business.
import type { Clock } from "../clock.js";
import { formatDuration } from "../config/duration.js";
import { errorMessage } from "../errors.js";
import type { Component } from "../readiness/readiness.js";
import { SlotScheduler, type ScheduledJob } from "./slot-scheduler.js";
import type { ProbeResult, Prober } from "./types.js";

export { jitteredInterval } from "./slot-scheduler.js";

export type Protocol = "icmp" | "http";

export interface TargetStatus<Detail = unknown> {
  readonly target: string;
  /** undefined until the first result. */
  up: boolean | undefined;
  successes: number;
  failures: number;
  lastDurationMs: number;
  lastResult: ProbeResult<Detail> | undefined;
}

export interface TargetTransition<Detail = unknown> {
  readonly protocol: Protocol;
  readonly target: string;
  readonly up: boolean;
  readonly first: boolean;
  readonly result: ProbeResult<Detail>;
}

export interface ProbeGroupOptions<Detail = unknown> {
  readonly protocol: Protocol;
  readonly targets: readonly string[];
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly prober: Prober<Detail>;
  readonly component: Component;
  readonly clock: Clock;
  /** Called once per change of a target's up/down state. */
  readonly onTargetTransition?: (t: TargetTransition<Detail>) => void;
  /** Uniform [0, 1); injectable so tests are deterministic. */
  readonly random?: () => number;
}

interface TargetState<Detail> {
  readonly status: TargetStatus<Detail>;
  startedAt: number;
  // Bound once per target, so that a probe allocates no closure of its own.
  readonly onResult: (result: ProbeResult<Detail>) => void;
  readonly onError: (error: unknown) => void;
}

export class ProbeGroup<Detail = unknown> {
  readonly statuses: readonly TargetStatus<Detail>[];
  private readonly scheduler: SlotScheduler<TargetState<Detail>>;
  private upCount = 0;
  /** "n of m targets answering", rebuilt only when n changes: successes come 1,000 a second. */
  private upSummary: string;

  constructor(private readonly options: ProbeGroupOptions<Detail>) {
    const { clock, intervalMs, random } = options;
    this.scheduler = new SlotScheduler({ intervalMs, clock, random, run: this.launch });
    this.statuses = options.targets.map((target) => {
      const state: TargetState<Detail> = {
        status: {
          target,
          up: undefined,
          successes: 0,
          failures: 0,
          lastDurationMs: 0,
          lastResult: undefined,
        },
        startedAt: 0,
        onResult: (result) => this.settle(state.status, job, result),
        onError: (error) =>
          this.settle(state.status, job, internalFailure(clock.now() - state.startedAt, error)),
      };
      const job = this.scheduler.add(state);
      return state.status;
    });
    this.upSummary = this.summarise();
    options.component.report(false, `waiting for the first answer from ${this.describeTargets()}`);
  }

  start(): void {
    this.scheduler.start();
  }

  /** Cancels the timer, aborts probes in flight and waits until they have settled. */
  stop(): Promise<void> {
    return this.scheduler.stop();
  }

  private readonly launch = (target: TargetState<Detail>, signal: AbortSignal, startedAt: number): void => {
    target.startedAt = startedAt;
    let result: Promise<ProbeResult<Detail>>;
    try {
      result = this.options.prober(target.status.target, signal);
    } catch (error) {
      // A prober that throws instead of rejecting; the scheduler takes a run
      // that settles from within its start.
      target.onError(error);
      return;
    }
    result.then(target.onResult, target.onError);
  };

  private settle(status: TargetStatus<Detail>, job: ScheduledJob, result: ProbeResult<Detail>): void {
    // A result that arrives after stop() is not recorded.
    if (!this.scheduler.stopped) this.record(status, result);
    job.settled();
  }

  private record(status: TargetStatus<Detail>, result: ProbeResult<Detail>): void {
    status.lastResult = result;
    status.lastDurationMs = result.durationMs;
    if (result.ok) status.successes++;
    else status.failures++;
    const changed = status.up !== result.ok;
    const first = status.up === undefined;
    if (changed) {
      this.upCount += result.ok ? 1 : first ? 0 : -1;
      this.upSummary = this.summarise();
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

  private summarise(): string {
    return `${this.upCount} of ${this.statuses.length} targets answering`;
  }

  private describeUp(failure?: ProbeResult<Detail>): string {
    const summary = this.upSummary;
    return failure?.failure && this.upCount === 0 ? `${summary}; last: ${failure.failure.message}` : summary;
  }

  private describeTargets(): string {
    const n = this.statuses.length;
    const window = formatDuration(this.options.timeoutMs);
    return `${n === 1 ? this.statuses[0]!.target : `any of ${n} targets`} (window ${window})`;
  }
}

function internalFailure(durationMs: number, error: unknown): ProbeResult<never> {
  return {
    ok: false,
    durationMs,
    failure: { code: "INTERNAL", message: `prober failed: ${errorMessage(error)}` },
  };
}
