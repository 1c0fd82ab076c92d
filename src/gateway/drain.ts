// The drain after SIGTERM: readiness is already 503; wait until node agents
// have surely noticed (minMs) and no forwarded connection is left, or until
// maxMs at the latest, logging the live count every few seconds meanwhile.
import type { Clock } from "../clock.js";

export interface DrainLog {
  info(fields: object, msg: string): void;
}

export interface DrainOptions {
  readonly clock: Clock;
  readonly log: DrainLog;
  /** DRAIN_MIN, capped by maxMs. */
  readonly minMs: number;
  /** DRAIN_TIMEOUT. */
  readonly maxMs: number;
  /** Live forwarded connections now; undefined when they cannot be counted (then the drain runs to maxMs). */
  readonly count: () => Promise<number | undefined>;
  /** Between two counts once minMs has passed. */
  readonly pollMs?: number;
  /** Between two progress lines. */
  readonly logEveryMs?: number;
}

export interface DrainOutcome {
  readonly reason: "idle" | "timeout";
  readonly elapsedMs: number;
  readonly live: number | undefined;
}

export async function drain(options: DrainOptions): Promise<DrainOutcome> {
  const { clock, log, maxMs } = options;
  const minMs = Math.min(options.minMs, maxMs);
  const pollMs = options.pollMs ?? 1_000;
  const logEveryMs = options.logEveryMs ?? 5_000;
  const started = clock.now();
  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => clock.setTimer(Math.max(0, ms), resolve));
  let lastLog = -Infinity;
  for (;;) {
    const live = await options.count();
    const elapsedMs = clock.now() - started;
    if (elapsedMs >= minMs && live === 0) return { reason: "idle", elapsedMs, live };
    if (elapsedMs >= maxMs) return { reason: "timeout", elapsedMs, live };
    if (elapsedMs - lastLog >= logEveryMs) {
      lastLog = elapsedMs;
      log.info(
        { liveConnections: live, elapsedMs: Math.round(elapsedMs), minMs, maxMs },
        "draining: forwarded connections still live",
      );
    }
    // Before minMs only the progress line needs a count; after it, poll.
    const next = elapsedMs < minMs ? Math.min(minMs, lastLog + logEveryMs) : elapsedMs + pollMs;
    await sleep(Math.min(next, maxMs) - (clock.now() - started));
  }
}
