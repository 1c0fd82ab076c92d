// Time as a dependency, so that readiness windows and schedulers can be tested
// without sleeping.

export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
  /** Runs fn once after ms, however long that is (chained past Node's timer limit). */
  setTimer(ms: number, fn: () => void): Timer;
}

/**
 * The longest delay one Node.js timer holds (2^31 - 1 ms, about 24.8 days). A
 * longer one is not refused: Node warns and fires it after 1 ms, which would
 * turn an operator's 30-day probe interval into a busy loop.
 */
export const MAX_TIMER_MS = 2_147_483_647;

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer(ms, fn) {
    // Past the limit, timers are chained: each link waits at most MAX_TIMER_MS,
    // and the last one runs fn. Cancel stops whichever link is pending.
    let left = Math.max(0, ms);
    let handle: NodeJS.Timeout;
    const step = (): void => {
      if (left > MAX_TIMER_MS) {
        left -= MAX_TIMER_MS;
        handle = setTimeout(step, MAX_TIMER_MS);
      } else {
        handle = setTimeout(fn, left);
      }
    };
    step();
    return { cancel: () => clearTimeout(handle) };
  },
};
