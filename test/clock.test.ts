// The system clock's timers honour any delay: past Node's 24.8-day limit a
// plain setTimeout fires after 1 ms, so the clock chains timers (SPEC §2: an
// operator may write ICMP_PROBE_INTERVAL=2147483647s).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MAX_TIMER_MS, systemClock } from "../src/clock.js";

describe("systemClock.setTimer past Node's timer limit", () => {
  it("a plain setTimeout past the limit fires at once (the bug the chain avoids)", (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    let fired = 0;
    setTimeout(() => fired++, MAX_TIMER_MS + 1);
    t.mock.timers.tick(1);
    assert.equal(fired, 1);
  });

  it("fires exactly after twice the limit and a bit, not before", (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    let fired = 0;
    systemClock.setTimer(2 * MAX_TIMER_MS + 5, () => fired++);
    t.mock.timers.tick(MAX_TIMER_MS);
    t.mock.timers.tick(MAX_TIMER_MS);
    t.mock.timers.tick(4);
    assert.equal(fired, 0);
    t.mock.timers.tick(1);
    assert.equal(fired, 1);
    t.mock.timers.tick(3 * MAX_TIMER_MS);
    assert.equal(fired, 1, "fires once");
  });

  it("the operator's longest window, 2 x 2147483647 s, fires on time", (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const ms = 2 * 2_147_483_647_000;
    let fired = false;
    systemClock.setTimer(ms, () => (fired = true));
    for (let left = ms - 1; left > 0; left -= Math.min(left, MAX_TIMER_MS)) {
      t.mock.timers.tick(Math.min(left, MAX_TIMER_MS));
    }
    assert.equal(fired, false);
    t.mock.timers.tick(1);
    assert.equal(fired, true);
  });

  it("cancel stops the chain wherever it is", (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    let fired = 0;
    const timer = systemClock.setTimer(3 * MAX_TIMER_MS, () => fired++);
    t.mock.timers.tick(MAX_TIMER_MS + 10);
    timer.cancel();
    t.mock.timers.tick(5 * MAX_TIMER_MS);
    assert.equal(fired, 0);
  });

  it("short delays are one plain timer, and a negative delay fires at once", (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const order: string[] = [];
    systemClock.setTimer(10, () => order.push("10ms"));
    systemClock.setTimer(-5, () => order.push("negative"));
    t.mock.timers.tick(1);
    assert.deepEqual(order, ["negative"]);
    t.mock.timers.tick(9);
    assert.deepEqual(order, ["negative", "10ms"]);
  });

  it("with real timers, a delay just past the limit has not fired 100 ms later", async () => {
    let fired = false;
    const timer = systemClock.setTimer(MAX_TIMER_MS + 1, () => (fired = true));
    await new Promise((resolve) => setTimeout(resolve, 100));
    timer.cancel();
    assert.equal(fired, false);
  });
});
