import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import { describe, it } from "node:test";
import { Readiness } from "../src/readiness/readiness.js";
import { jitteredInterval, ProbeGroup, type TargetTransition } from "../src/probes/group.js";
import type { ProbeResult, Prober } from "../src/probes/types.js";
import { FakeClock } from "./helpers/fake-clock.js";

/** A scripted upstream: each target answers according to `alive`, after `latencyMs`, or never. */
function scriptedProber(clock: FakeClock, alive: Map<string, boolean>, latencyMs = 10) {
  const starts: { target: string; at: number }[] = [];
  const prober: Prober = (target, signal) =>
    new Promise<ProbeResult>((resolve) => {
      const startedAt = clock.now();
      starts.push({ target, at: startedAt });
      const settle = (result: Omit<ProbeResult, "durationMs">) =>
        resolve({ ...result, durationMs: clock.now() - startedAt });
      if (alive.get(target)) {
        clock.setTimer(latencyMs, () => settle({ ok: true }));
      } else {
        signal.addEventListener("abort", () =>
          settle({ ok: false, failure: { code: "TIMEOUT", message: "no reply" } }),
        );
      }
    });
  return { prober, starts };
}

function setup(targets: string[], alive: Map<string, boolean>, intervalMs = 1_000, timeoutMs = 3_000) {
  const clock = new FakeClock();
  const readiness = new Readiness(clock);
  const component = readiness.register("ICMPProbes", { timeoutMs, staleDetail: "stale" });
  const { prober, starts } = scriptedProber(clock, alive);
  const transitions: TargetTransition[] = [];
  const group = new ProbeGroup({
    protocol: "icmp",
    targets,
    intervalMs,
    timeoutMs,
    prober,
    component,
    clock,
    random: () => 0.5,
    onTargetTransition: (t) => transitions.push(t),
  });
  return { clock, readiness, group, starts, transitions };
}

describe("probe group scheduling and readiness window", () => {
  it("jitters the interval by at most ±5 %", () => {
    assert.equal(jitteredInterval(1_000, 0), 950);
    assert.equal(jitteredInterval(1_000, 0.5), 1_000);
    assert.ok(jitteredInterval(1_000, 0.999_999) <= 1_050);
  });

  it("becomes ready on the first success and stays ready while any target answers (OR)", async () => {
    const alive = new Map([
      ["198.51.100.1", true],
      ["198.51.100.2", false],
    ]);
    const { clock, readiness, group } = setup([...alive.keys()], alive);
    group.start();
    assert.equal(readiness.evaluate().ready, false);
    await clock.advanceAsync(600, 10);
    assert.equal(readiness.evaluate().ready, true);
    await clock.advanceAsync(10_000, 10);
    assert.equal(readiness.evaluate().ready, true);
    assert.equal(readiness.evaluate().components[0]?.detail, "1 of 2 targets answering");
    await group.stop();
  });

  it("turns not ready TIMEOUT after the last success, and ready again within one interval", async () => {
    const alive = new Map([["198.51.100.1", true]]);
    const { clock, readiness, group, starts } = setup([...alive.keys()], alive, 1_000, 3_000);
    group.start();
    await clock.advanceAsync(5_000, 10);
    assert.equal(readiness.evaluate().ready, true);
    const lastSuccessAt = starts.at(-1)!.at + 10;
    alive.set("198.51.100.1", false);
    // Step to just before the window closes, then just after.
    await clock.advanceAsync(lastSuccessAt + 3_000 - clock.now() - 10, 10);
    assert.equal(readiness.evaluate().ready, true);
    await clock.advanceAsync(20, 10);
    assert.equal(readiness.evaluate().ready, false);
    assert.equal(readiness.evaluate().components[0]?.detail, "stale");
    alive.set("198.51.100.1", true);
    const back = clock.now();
    while (!readiness.evaluate().ready && clock.now() - back < 5_000) await clock.advanceAsync(10, 10);
    assert.ok(clock.now() - back <= 1_050 + 10, `ready again after ${clock.now() - back} ms`);
    await group.stop();
  });

  it("probes each target every interval with its deadline = the interval", async () => {
    const alive = new Map([["198.51.100.9", false]]);
    const { clock, group, starts } = setup([...alive.keys()], alive, 1_000, 3_000);
    group.start();
    await clock.advanceAsync(10_400, 10);
    const gaps = starts.slice(1).map((s, i) => s.at - starts[i]!.at);
    assert.ok(gaps.length >= 9, `${gaps.length} probes`);
    for (const gap of gaps) assert.ok(gap >= 950 && gap <= 1_060, `gap ${gap}`);
    await group.stop();
  });

  it("reports each target transition once, not every tick", async () => {
    const alive = new Map([["198.51.100.1", true]]);
    const { clock, group, transitions } = setup([...alive.keys()], alive);
    group.start();
    await clock.advanceAsync(5_000, 10);
    alive.set("198.51.100.1", false);
    await clock.advanceAsync(5_000, 10);
    alive.set("198.51.100.1", true);
    await clock.advanceAsync(5_000, 10);
    assert.deepEqual(
      transitions.map((t) => [t.up, t.first]),
      [
        [true, true],
        [false, false],
        [true, false],
      ],
    );
    assert.equal(transitions[1]?.result.failure?.code, "TIMEOUT");
    await group.stop();
  });

  it("contains a prober that throws, and counts it as a failure", async () => {
    const clock = new FakeClock();
    const readiness = new Readiness(clock);
    const transitions: TargetTransition[] = [];
    const group = new ProbeGroup({
      protocol: "http",
      targets: ["http://198.51.100.1/"],
      intervalMs: 1_000,
      timeoutMs: 3_000,
      prober: () => Promise.reject(new Error("boom")),
      component: readiness.register("HTTPProbes", { timeoutMs: 3_000 }),
      clock,
      onTargetTransition: (t) => transitions.push(t),
    });
    group.start();
    await clock.advanceAsync(3_000, 10);
    assert.equal(group.statuses[0]?.successes, 0);
    assert.ok(group.statuses[0].failures >= 2);
    assert.equal(transitions[0]?.result.failure?.code, "INTERNAL");
    await group.stop();
  });

  it("stop() aborts probes in flight, waits for them and leaves no timer", async () => {
    const alive = new Map([["198.51.100.9", false]]);
    const { clock, group, starts } = setup([...alive.keys()], alive);
    group.start();
    await clock.advanceAsync(600, 10);
    assert.equal(starts.length, 1);
    await group.stop();
    assert.equal(clock.timerCount, 0);
    await clock.advanceAsync(5_000, 100);
    assert.equal(starts.length, 1, "no probe after stop");
  });
});

/** A deterministic uniform [0, 1) source (mulberry32), so that jitter tests repeat. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Counts the timers a group arms. */
class CountingClock extends FakeClock {
  armed = 0;
  override setTimer(ms: number, fn: () => void) {
    this.armed++;
    return super.setTimer(ms, fn);
  }
}

function groupOn(
  clock: FakeClock,
  targets: readonly string[],
  prober: Prober,
  random: () => number = () => 0.5,
  intervalMs = 1_000,
) {
  const readiness = new Readiness(clock);
  const component = readiness.register("ICMPProbes", { timeoutMs: 3_000 });
  const group = new ProbeGroup({
    protocol: "icmp",
    targets,
    intervalMs,
    timeoutMs: 3_000,
    prober,
    component,
    clock,
    random,
  });
  return { readiness, group };
}

const addresses = (n: number): string[] =>
  Array.from({ length: n }, (_, i) => `198.18.${Math.floor(i / 250)}.${(i % 250) + 1}`);

describe("probe group slots", () => {
  it("serves 1,000 targets with one timer a slot, not one per target or per deadline", async () => {
    const clock = new CountingClock();
    const targets = addresses(1_000);
    let probes = 0;
    // Answers without a timer of its own, so that every timer armed is the group's.
    const prober: Prober = () => {
      probes++;
      return Promise.resolve({ ok: true, durationMs: 0.5 });
    };
    const { group } = groupOn(clock, targets, prober, seeded(1));
    group.start();
    await clock.advanceAsync(10_000, 5);
    // 10 s of 20 ms slots is 500 sweeps; a timer per probe and per deadline was 20,000.
    assert.ok(clock.armed <= 520, `${clock.armed} timers armed`);
    assert.ok(probes >= 9_500, `${probes} probes`);
    for (const status of group.statuses)
      assert.ok(status.successes >= 9, `${status.target}: ${status.successes}`);
    await group.stop();
  });

  it("keeps every gap between two probes of a target within ±5 % of the interval", async () => {
    const clock = new FakeClock();
    const targets = addresses(40);
    const alive = new Map(targets.map((t, i) => [t, i % 2 === 0]));
    const { prober, starts } = scriptedProber(clock, alive, 3);
    const { group } = groupOn(clock, targets, prober, seeded(7));
    group.start();
    await clock.advanceAsync(20_000, 5);
    const gaps = new Set<number>();
    for (const target of targets) {
      const at = starts.filter((s) => s.target === target).map((s) => s.at);
      assert.ok(at.length >= 18, `${target}: ${at.length} probes`);
      for (let i = 1; i < at.length; i++) {
        const gap = at[i]! - at[i - 1]!;
        assert.ok(gap >= 950 && gap <= 1_050, `${target}: gap ${gap}`);
        gaps.add(gap);
      }
    }
    // Still jitter: several distinct gaps, not one rounded interval.
    assert.ok(gaps.size >= 4, `gaps seen: ${[...gaps].join(", ")}`);
    await group.stop();
  });

  it("gives the probes of one sweep one signal, aborted exactly one interval after their start", async () => {
    const clock = new FakeClock();
    const targets = addresses(5);
    const signals = new Set<AbortSignal>();
    const aborted: number[] = [];
    let startedAt = -1;
    const prober: Prober = (_target, signal) =>
      new Promise((resolve) => {
        if (startedAt < 0) startedAt = clock.now();
        if (signals.size === 0) signal.addEventListener("abort", () => aborted.push(clock.now()));
        signals.add(signal);
        const started = clock.now();
        signal.addEventListener("abort", () =>
          resolve({
            ok: false,
            durationMs: clock.now() - started,
            failure: { code: "TIMEOUT", message: "none" },
          }),
        );
      });
    // random 0: every first probe in the first slot.
    const { group } = groupOn(clock, targets, prober, () => 0);
    group.start();
    await clock.advanceAsync(1_010, 5);
    assert.equal(signals.size, 1, "one signal for the sweep");
    assert.deepEqual(aborted, [startedAt + 1_000]);
    for (const status of group.statuses) assert.equal(status.lastResult?.failure?.code, "TIMEOUT");
    await group.stop();
  });

  it("never hands a probe a signal that still carries an earlier probe's listener", async () => {
    const clock = new FakeClock();
    const leftBehind: number[] = [];
    // A careless prober: answers at once and leaves its abort listener on the signal.
    const prober: Prober = (_target, signal) => {
      leftBehind.push(getEventListeners(signal, "abort").length);
      signal.addEventListener("abort", () => undefined);
      return Promise.resolve({ ok: true, durationMs: 1 });
    };
    const { group } = groupOn(clock, ["198.51.100.1"], prober);
    group.start();
    await clock.advanceAsync(5_000, 10);
    assert.ok(leftBehind.length >= 4);
    assert.deepEqual(new Set(leftBehind), new Set([0]));
    await group.stop();
  });

  it("contains a prober that throws instead of returning a promise", async () => {
    const clock = new FakeClock();
    const prober: Prober = () => {
      throw new Error("sync boom");
    };
    const { group } = groupOn(clock, ["198.51.100.1"], prober);
    group.start();
    await clock.advanceAsync(3_000, 10);
    const status = group.statuses[0]!;
    assert.ok(status.failures >= 2, `${status.failures} failures`);
    assert.equal(status.lastResult?.failure?.code, "INTERNAL");
    assert.match(status.lastResult.failure.message, /sync boom/);
    await group.stop();
  });

  it("stop() called twice resolves both times once the probes in flight settled", async () => {
    const clock = new FakeClock();
    const alive = new Map([["198.51.100.9", false]]);
    const { prober, starts } = scriptedProber(clock, alive);
    const { group } = groupOn(clock, [...alive.keys()], prober, () => 0);
    group.start();
    await clock.advanceAsync(100, 10);
    assert.equal(starts.length, 1);
    await Promise.all([group.stop(), group.stop()]);
    assert.equal(clock.timerCount, 0);
    assert.equal(group.statuses[0]?.lastResult, undefined, "a result after stop is not recorded");
  });
});
