// A manual clock: tests advance time explicitly instead of sleeping.
import type { Clock, Timer } from "../../src/clock.js";

interface Pending {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

export class FakeClock implements Clock {
  private current = 0;
  private seq = 0;
  private pending: Pending[] = [];

  now(): number {
    return this.current;
  }

  setTimer(ms: number, fn: () => void): Timer {
    const entry: Pending = { at: this.current + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.pending.push(entry);
    return { cancel: () => void (entry.cancelled = true) };
  }

  /** Moves time forward, firing due timers in order (including ones they schedule). */
  advance(ms: number): void {
    const until = this.current + ms;
    for (;;) {
      this.pending = this.pending.filter((p) => !p.cancelled);
      const next = this.pending.reduce<Pending | undefined>(
        (a, p) => (p.at <= until && (!a || p.at < a.at || (p.at === a.at && p.seq < a.seq)) ? p : a),
        undefined,
      );
      if (!next) break;
      this.current = next.at;
      next.cancelled = true;
      next.fn();
    }
    this.current = until;
  }

  /** Advances in steps, letting promise callbacks run between timers. */
  async advanceAsync(ms: number, stepMs = 1): Promise<void> {
    for (let done = 0; done < ms; done += stepMs) {
      this.advance(Math.min(stepMs, ms - done));
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  get timerCount(): number {
    return this.pending.filter((p) => !p.cancelled).length;
  }
}
