// Return-path programming as a running component (SPEC §5.1, §4.1 `Dataplane`):
// route changes in, reconcile passes out. At most one pass runs at a time and
// it takes every change made until it starts, so a burst of updates costs a few
// passes, each in proportion to what changed (reconcile.ts). A failed
// pass retries with backoff (100 ms doubling to 10 s) and logs one warning; a
// periodic resync reads the kernel again to repair drift (someone deleting our
// routes, vxlan0 recreated). Without our local-workload route the kernel is
// left as it is (see desired.ts), and so it is on stop: traffic keeps flowing
// through a node-agent restart, a gateway restart or a drain.
import type { Clock, Timer } from "../clock.js";
import { formatDuration } from "../config/duration.js";
import type { CommandRunner } from "../exec/run-command.js";
import { parseIpv4 } from "../ip/ipv4.js";
import { COMPONENT } from "../readiness/components.js";
import type { Component } from "../readiness/readiness.js";
import type { RouteFeed } from "../sync/types.js";
import { errorMessage, InvalidOptionError } from "../errors.js";
import { DataplaneError, UNEXPECTED_ERROR_CODE } from "./errors.js";
import { createKernel } from "./kernel.js";
import { Reconciler, type PassResult } from "./reconcile.js";
import type { DesiredCounts, Skipped } from "./types.js";

/** The subset of pino's Logger this component writes to. */
export interface DataplaneLog {
  warn(fields: object, msg: string): void;
  info(fields: object, msg: string): void;
  debug(fields: object, msg: string): void;
}

export interface ReturnPathOptions {
  readonly readiness: { register(name: string, options?: { detail?: string }): Component };
  readonly log: DataplaneLog;
  readonly clock: Clock;
  readonly ourIPv4: string;
  readonly vni: number;
  readonly run?: CommandRunner;
  /** Program a named namespace instead of our own (labs, tests, benchmarks). */
  readonly netns?: string;
  /** Full kernel read-back this long after the last successful pass (default 60 s); 0 disables. */
  readonly resyncIntervalMs?: number;
  /** First retry delay after a failed pass, doubling per failure (default 100 ms). */
  readonly backoffInitialMs?: number;
  /** Longest retry delay (default 10 s). */
  readonly backoffMaxMs?: number;
  /** How long a pass for changes that came in during the previous pass waits after it (default 250 ms). */
  readonly burstGapMs?: number;
}

export interface ReturnPathState {
  readonly ready: boolean;
  /** A pass is running or scheduled (coalescing, backoff). */
  readonly pending: boolean;
  /** Programmed by the last pass that applied a desired state. */
  readonly neighbours: number;
  readonly fdb: number;
  readonly routes: number;
  readonly exitRoutes: number;
  readonly nodes: number;
  /** Completed passes since start, failed ones included. */
  readonly passes: number;
  /** Failed passes since start. */
  readonly failures: number;
  readonly consecutiveFailures: number;
  /** Entries changed by the last pass that applied a desired state. */
  readonly lastChanges: number;
  readonly lastDurationMs: number | undefined;
  readonly incompleteSkipped: number;
  readonly skipped: Skipped;
}

export interface ReturnPath {
  /**
   * Says the routes changed; returns at once. The feed is read when a pass
   * starts, so any number of changes meanwhile cost one pass.
   */
  update(feed: RouteFeed): void;
  /** Asks for a pass that reads the kernel back, whatever it believes it holds. */
  resync(): void;
  /** Cancels timers and waits for a running pass; leaves the kernel as it is. */
  stop(): Promise<void>;
  state(): ReturnPathState;
}

export function createReturnPath(options: ReturnPathOptions): ReturnPath {
  const { clock, log, ourIPv4, vni } = options;
  if (parseIpv4(ourIPv4) === undefined) {
    throw new InvalidOptionError(`ourIPv4 must be an IPv4 address, got ${JSON.stringify(ourIPv4)}`);
  }
  if (!Number.isInteger(vni) || vni < 1 || vni > 16_777_215) {
    throw new InvalidOptionError(`vni must be an integer in 1..16777215, got ${vni}`);
  }
  const settings = {
    resyncIntervalMs: options.resyncIntervalMs ?? 60_000, // 60 s
    backoffInitialMs: options.backoffInitialMs ?? 100, // 100 ms
    backoffMaxMs: options.backoffMaxMs ?? 10_000, // 10 s
    // Each pass runs `ip` and `bridge` once: during a burst of 30,000 messages,
    // passes back to back would start them for a handful of changes each. A
    // change after a quiet spell still goes at once.
    burstGapMs: options.burstGapMs ?? 250, // 250 ms
  };
  const kernel = createKernel({ vni, netns: options.netns, run: options.run });
  const reconciler = new Reconciler(kernel, { vni });
  const component = options.readiness.register(COMPONENT.dataplane, {
    detail: "waiting for routes from the node agent",
  });

  let feed: RouteFeed | undefined;
  let wanted = false;
  let stopped = false;
  let running: Promise<void> | undefined;
  let passTimer: Timer | undefined;
  let resyncTimer: Timer | undefined;
  /** Incomplete routes at the last warning about them: one warning per change of that number. */
  let warnedIncomplete = 0;
  /** The last pass that applied a desired state (a held pass leaves the kernel, and these, as they were). */
  let programmed: { counts: DesiredCounts; changes: number } | undefined;
  let ourRouteSeen = false;
  let lastDurationMs: number | undefined;
  let passes = 0;
  let failures = 0;
  let consecutiveFailures = 0;

  const want = (): void => {
    wanted = true;
    if (stopped || running !== undefined || passTimer !== undefined) return;
    armPass(0);
  };

  const armPass = (ms: number): void => {
    passTimer = clock.setTimer(ms, () => {
      passTimer = undefined;
      running = runPass().finally(() => {
        running = undefined;
        if (wanted && !stopped && passTimer === undefined) armPass(settings.burstGapMs);
      });
    });
  };

  const armResync = (): void => {
    resyncTimer?.cancel();
    resyncTimer = undefined;
    if (settings.resyncIntervalMs <= 0 || stopped) return;
    resyncTimer = clock.setTimer(settings.resyncIntervalMs, () => {
      resyncTimer = undefined;
      reconciler.invalidate();
      want();
    });
  };

  const runPass = async (): Promise<void> => {
    if (!wanted || feed === undefined) return;
    wanted = false;
    const started = clock.now();
    try {
      const result = await reconciler.pass(feed);
      lastDurationMs = clock.now() - started;
      passes++;
      succeeded(result);
    } catch (error) {
      lastDurationMs = clock.now() - started;
      passes++;
      failed(error);
    }
  };

  const succeeded = (result: PassResult): void => {
    if (consecutiveFailures > 0) {
      log.info(
        { component: COMPONENT.dataplane, failures: consecutiveFailures },
        "return-path reconcile recovered",
      );
    }
    consecutiveFailures = 0;
    ourRouteSeen = !result.held;
    if (result.held) {
      component.report(false, `no local-workload route covering ${ourIPv4} from the node agent yet`);
      return;
    }
    const { counts } = result;
    programmed = { counts, changes: result.changes };
    const { incomplete } = counts.skipped;
    if (incomplete > 0 && incomplete !== warnedIncomplete) {
      log.warn(
        { component: COMPONENT.dataplane, incomplete },
        "skipped remote-workload routes without a node IP or node name (the node agent will complete them)",
      );
    }
    warnedIncomplete = incomplete;
    if (result.changes > 0) {
      log.debug(
        {
          component: COMPONENT.dataplane,
          changes: result.changes,
          readKernel: result.readKernel,
          ms: lastDurationMs,
        },
        "return path programmed",
      );
    }
    component.report(true, `${plural(counts.routes, "return route")} to ${plural(counts.nodes, "node")}`);
    armResync();
  };

  const failed = (error: unknown): void => {
    failures++;
    consecutiveFailures++;
    const retryInMs = Math.min(
      settings.backoffMaxMs,
      settings.backoffInitialMs * 2 ** Math.min(consecutiveFailures - 1, 30),
    );
    const code = error instanceof DataplaneError ? error.code : UNEXPECTED_ERROR_CODE;
    const detail = errorMessage(error);
    log.warn(
      { component: COMPONENT.dataplane, code, detail, failures: consecutiveFailures, retryInMs },
      "return-path reconcile failed; retrying",
    );
    component.report(false, `reconcile failed (${code}): ${detail}; retry in ${formatDuration(retryInMs)}`);
    wanted = true;
    if (!stopped) armPass(retryInMs);
  };

  return {
    update(source) {
      if (stopped) return;
      feed = source;
      want();
    },
    resync() {
      if (stopped) return;
      reconciler.invalidate();
      want();
    },
    async stop() {
      stopped = true;
      passTimer?.cancel();
      passTimer = undefined;
      resyncTimer?.cancel();
      resyncTimer = undefined;
      await running;
    },
    state() {
      const counts = programmed?.counts;
      return {
        ready: ourRouteSeen && consecutiveFailures === 0 && counts !== undefined,
        pending: running !== undefined || passTimer !== undefined,
        neighbours: counts?.neighbours ?? 0,
        fdb: counts?.fdb ?? 0,
        routes: counts?.routes ?? 0,
        exitRoutes: counts?.exitRoutes ?? 0,
        nodes: counts?.nodes ?? 0,
        passes,
        failures,
        consecutiveFailures,
        lastChanges: programmed?.changes ?? 0,
        lastDurationMs,
        incompleteSkipped: counts?.skipped.incomplete ?? 0,
        skipped: counts?.skipped ?? { incomplete: 0, unsupported: 0, ownNode: 0, conflicting: 0 },
      };
    },
  };
}

const plural = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? "" : "s"}`;
