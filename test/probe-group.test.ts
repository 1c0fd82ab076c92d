import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Readiness } from "../src/gateway/readiness.js";
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
