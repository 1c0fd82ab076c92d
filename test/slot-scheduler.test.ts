// The slot scheduler on its own: jobs of any kind, time only from the clock.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Timer } from "../src/clock.js";
import { SlotScheduler, type ScheduledJob } from "../src/probes/slot-scheduler.js";
import { FakeClock } from "./helpers/fake-clock.js";

const NODE_TIMER_LIMIT_MS = 2 ** 31 - 1; // setTimeout clamps anything longer to 1 ms

/** Records every delay asked for. */
class RecordingClock extends FakeClock {
  readonly delays: number[] = [];
  override setTimer(ms: number, fn: () => void): Timer {
    this.delays.push(ms);
    return super.setTimer(ms, fn);
  }
}

/** A scheduler whose jobs are names; each run ends only when its signal aborts. */
function unanswered(clock: FakeClock, intervalMs: number, random: () => number) {
  const runs: { job: string; at: number; signal: AbortSignal; abortedAt?: number }[] = [];
  const handles = new Map<string, ScheduledJob>();
  const scheduler = new SlotScheduler<string>({
    intervalMs,
    clock,
    random,
    run: (job, signal, startedAt) => {
      const run: (typeof runs)[number] = { job, at: startedAt, signal };
      runs.push(run);
      signal.addEventListener(
        "abort",
        () => {
          run.abortedAt = clock.now();
          handles.get(job)!.settled();
        },
        { once: true },
      );
    },
  });
  return { scheduler, runs, handles };
}

describe("slot scheduler", () => {
  it("runs and times out jobs beyond Node's 2^31-1 ms timer limit, asking only the injected clock", async (t) => {
    const raw = t.mock.method(globalThis, "setTimeout");
    const clock = new RecordingClock();
    const intervalMs = 30 * 24 * 3_600_000; // 30 days
    const { scheduler, runs, handles } = unanswered(clock, intervalMs, () => 0.5);
    handles.set("upstream", scheduler.add("upstream"));
    scheduler.start();
    clock.advance(2 * intervalMs + 1_000);
    assert.equal(raw.mock.callCount(), 0, "no timer outside the clock");
    assert.ok(
      clock.delays.some((ms) => ms > NODE_TIMER_LIMIT_MS),
      `the clock was asked for the long delay itself: ${clock.delays.join(", ")}`,
    );
    assert.equal(runs.length, 3);
    const [first, second] = runs;
    assert.equal(first!.at, 500, "first run within the first second");
    assert.equal(first!.abortedAt, first!.at + intervalMs, "the deadline is one interval");
    const gap = second!.at - first!.at;
    assert.ok(gap >= intervalMs * 0.95 && gap <= intervalMs * 1.05, `gap ${gap} ms`);
    await scheduler.stop();
    assert.equal(clock.timerCount, 0);
  });

  it("lets a run settle from within run(), without handing its signal to a later sweep early", async () => {
    const clock = new FakeClock();
    const randoms = [0, 0, 0.5];
    const ran: { job: string; at: number; signal: AbortSignal }[] = [];
    const aborted = new Map<string, number>();
    const handles = new Map<string, ScheduledJob>();
    const scheduler = new SlotScheduler<string>({
      intervalMs: 1_000,
      clock,
      random: () => randoms.shift() ?? 0.5,
      run: (job, signal, startedAt) => {
        ran.push({ job, at: startedAt, signal });
        // "quick" is over at once; the others wait for their deadline.
        if (job === "quick") return handles.get(job)!.settled();
        signal.addEventListener("abort", () => {
          aborted.set(job, clock.now());
          handles.get(job)!.settled();
        });
      },
    });
    for (const job of ["quick", "slow", "later"]) handles.set(job, scheduler.add(job));
    scheduler.start();
    clock.advance(1_600);
    const [quick, slow, later] = ["quick", "slow", "later"].map((job) => ran.find((r) => r.job === job)!);
    assert.equal(quick!.signal, slow!.signal, "one sweep, one signal");
    assert.equal(later!.at, 500);
    assert.notEqual(later!.signal, slow!.signal, "a signal still in use is not reused");
    assert.equal(aborted.get("slow"), 1_000);
    assert.equal(aborted.get("later"), 1_500, "aborted at its own deadline, not at the earlier sweep's");
    await scheduler.stop();
  });

  it("stop() aborts what runs, waits for it, and drops later runs", async () => {
    const clock = new FakeClock();
    const { scheduler, runs, handles } = unanswered(clock, 1_000, () => 0);
    for (const job of ["a", "b"]) handles.set(job, scheduler.add(job));
    scheduler.start();
    clock.advance(100);
    assert.equal(runs.length, 2);
    assert.equal(scheduler.stopped, false);
    await scheduler.stop();
    assert.equal(scheduler.stopped, true);
    assert.deepEqual(
      runs.map((r) => r.abortedAt),
      [100, 100],
    );
    clock.advance(5_000);
    assert.equal(runs.length, 2);
    assert.equal(clock.timerCount, 0);
  });
});
