import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { renderReadiness } from "../src/gateway/render.js";
import { Readiness, type Transition } from "../src/readiness/readiness.js";
import { FakeClock } from "./helpers/fake-clock.js";

function setup() {
  const clock = new FakeClock();
  const readiness = new Readiness(clock);
  const transitions: Transition[] = [];
  readiness.onTransition((t) => transitions.push(t));
  return { clock, readiness, transitions };
}

describe("readiness aggregation", () => {
  it("is ready with no components (no probes, no policy sync)", () => {
    const { readiness } = setup();
    assert.equal(readiness.evaluate().ready, true);
  });

  it("starts every component not ready", () => {
    const { readiness } = setup();
    readiness.register("ICMPProbes", { timeoutMs: 15_000 });
    const view = readiness.evaluate();
    assert.equal(view.ready, false);
    assert.equal(view.components[0]?.ready, false);
  });

  it("is the AND of components", () => {
    const { readiness } = setup();
    const icmp = readiness.register("ICMPProbes", { timeoutMs: 15_000 });
    const http = readiness.register("HTTPProbes", { timeoutMs: 30_000 });
    icmp.report(true);
    assert.equal(readiness.evaluate().ready, false);
    http.report(true);
    assert.equal(readiness.evaluate().ready, true);
    http.report(false, "broken");
    assert.equal(readiness.evaluate().ready, false);
    assert.equal(readiness.evaluate().components[1]?.detail, "broken");
  });

  it("counts a ready report older than its timeout as not ready at the moment of the request", () => {
    const { clock, readiness } = setup();
    const icmp = readiness.register("ICMPProbes", { timeoutMs: 15_000, staleDetail: "no target answered" });
    icmp.report(true);
    clock.advance(14_999);
    assert.equal(readiness.evaluate().ready, true);
    assert.equal(readiness.evaluate(clock.now() + 1).ready, false, "evaluation uses the time of the request");
    clock.advance(1);
    const view = readiness.evaluate();
    assert.equal(view.ready, false);
    assert.equal(view.components[0]?.detail, "no target answered");
  });

  it("refreshes the window with every ready report", () => {
    const { clock, readiness } = setup();
    const c = readiness.register("HTTPProbes", { timeoutMs: 1_000 });
    c.report(true);
    clock.advance(900);
    c.report(true);
    clock.advance(900);
    assert.equal(readiness.evaluate().ready, true);
    clock.advance(100);
    assert.equal(readiness.evaluate().ready, false);
  });

  it("announces each transition once, including expiry by time, without timer churn", () => {
    const { clock, readiness, transitions } = setup();
    const c = readiness.register("ICMPProbes", { timeoutMs: 1_000, staleDetail: "stale" });
    for (let i = 0; i < 100; i++) {
      c.report(true);
      clock.advance(5);
    }
    assert.equal(clock.timerCount, 1, "one expiry timer, however many reports");
    assert.deepEqual(transitions, [{ component: "ICMPProbes", ready: true, detail: "starting" }]);
    clock.advance(1_000);
    assert.deepEqual(transitions.at(-1), { component: "ICMPProbes", ready: false, detail: "stale" });
    assert.equal(transitions.length, 2);
    clock.advance(10_000);
    assert.equal(transitions.length, 2);
  });

  it("announces expiry at reportedAt + timeout, not at the first report + timeout", () => {
    const { clock, readiness, transitions } = setup();
    const c = readiness.register("ICMPProbes", { timeoutMs: 1_000 });
    c.report(true);
    clock.advance(600);
    c.report(true);
    clock.advance(999);
    assert.equal(transitions.length, 1);
    clock.advance(1);
    assert.equal(transitions.length, 2);
    assert.equal(clock.now(), 1_600);
  });

  it("turns not ready at once on terminate, whatever the components say", () => {
    const { readiness, transitions } = setup();
    readiness.register("X").report(true);
    assert.equal(readiness.evaluate().ready, true);
    readiness.terminate();
    readiness.terminate();
    const view = readiness.evaluate();
    assert.equal(view.ready, false);
    assert.equal(view.terminating, true);
    assert.equal(transitions.filter((t) => t.component === "Termination").length, 1);
  });

  it("changes the view version exactly when what it shows may change", () => {
    const { clock, readiness } = setup();
    const c = readiness.register("ICMPProbes", { timeoutMs: 1_000 });
    c.report(true, "1 of 1 targets answering");
    const v1 = readiness.evaluate().version;
    clock.advance(100);
    c.report(true, "1 of 1 targets answering");
    assert.equal(readiness.evaluate().version, v1, "a refresh with the same detail keeps the cache");
    clock.advance(1_000);
    assert.notEqual(readiness.evaluate().version, v1, "going stale changes the version");
  });
});

describe("readiness rendering", () => {
  it("renders an aligned text table and JSON with every component", () => {
    const { readiness } = setup();
    readiness.register("ICMPProbes", { timeoutMs: 15_000 }).report(true, "1 of 2 targets answering");
    readiness.register("HTTPProbes", { timeoutMs: 90_000 });
    const rendered = renderReadiness(readiness.evaluate());
    assert.equal(rendered.status, 503);
    const lines = rendered.text.trimEnd().split("\n");
    assert.equal(lines.length, 3);
    assert.match(lines[0]!, /^COMPONENT\s+TIMEOUT\s+READINESS\s+DETAIL$/);
    assert.match(lines[1]!, /^ICMPProbes\s+15s\s+ready\s+1 of 2 targets answering$/);
    assert.match(lines[2]!, /^HTTPProbes\s+1m30s\s+not ready\s+starting$/);
    assert.equal(lines[1]!.indexOf("15s"), lines[0]!.indexOf("TIMEOUT"), "columns align");
    assert.deepEqual(JSON.parse(rendered.json), {
      ready: false,
      terminating: false,
      components: [
        { name: "ICMPProbes", timeoutSeconds: 15, ready: true, detail: "1 of 2 targets answering" },
        { name: "HTTPProbes", timeoutSeconds: 90, ready: false, detail: "starting" },
      ],
    });
  });
});
