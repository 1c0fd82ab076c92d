// The soak's slopes and chart (bench/soak.ts): the arithmetic that turns an
// hour of samples into a verdict must itself be right.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { soakChart } from "../bench/support/soak-chart.js";
import {
  afterWarmup,
  leastSquaresLine,
  leastSquaresSlope,
  summarize,
  type SoakSample,
} from "../bench/support/soak-stats.js";

function sample(minute: number, over: Partial<SoakSample> = {}): SoakSample {
  return {
    minute,
    rssBytes: 60e6,
    heapUsedBytes: 12e6,
    openFds: 30,
    activeHandles: 12,
    activeResources: 40,
    eventLoopP99Seconds: 0.011,
    ...over,
  };
}

describe("soak: least-squares slope", () => {
  it("recovers the slope and intercept of an exact line", () => {
    const points = [0, 1, 2, 3, 4].map((x) => [x, 3 + 2.5 * x] as const);
    assert.equal(leastSquaresSlope(points), 2.5);
    assert.deepEqual(leastSquaresLine(points), { slope: 2.5, intercept: 3 });
  });

  it("sees through noise that averages out: a flat series with alternating spikes", () => {
    const points = Array.from({ length: 60 }, (_, x) => [x, 30 + (x % 2 === 0 ? 4 : -4)] as const);
    assert.ok(Math.abs(leastSquaresSlope(points)) < 0.01);
  });

  it("is NaN without two distinct x", () => {
    assert.ok(Number.isNaN(leastSquaresSlope([])));
    assert.ok(Number.isNaN(leastSquaresSlope([[1, 2]])));
    assert.ok(
      Number.isNaN(
        leastSquaresSlope([
          [1, 2],
          [1, 5],
        ]),
      ),
    );
  });
});

describe("soak: verdict per series", () => {
  it("reads only the samples after warm-up", () => {
    const samples = [0, 1, 2, 3].map((m) => sample(m));
    assert.deepEqual(
      afterWarmup(samples, 2).map((s) => s.minute),
      [2, 3],
    );
  });

  it("fails a leak of 2 MB per 10 minutes and passes a flat RSS whose warm-up grew", () => {
    const leaking = Array.from({ length: 30 }, (_, m) => sample(m, { rssBytes: 60e6 + m * 0.2e6 }));
    const rss = summarize(leaking, 5).find((s) => s.series.key === "rssBytes")!;
    assert.ok(Math.abs(rss.slopePer10Min - 2) < 1e-9, String(rss.slopePer10Min));
    assert.equal(rss.met, false);

    // 20 MB of start-up growth in the first 5 minutes, then flat: warm-up keeps it out of the slope.
    const settling = Array.from({ length: 30 }, (_, m) =>
      sample(m, { rssBytes: 80e6 - Math.max(0, 5 - m) * 4e6 }),
    );
    const settled = summarize(settling, 5).find((s) => s.series.key === "rssBytes")!;
    assert.equal(settled.slopePer10Min, 0);
    assert.equal(settled.met, true);
  });

  it("calls a descriptor a minute a leak, and judges event-loop delay by its worst minute", () => {
    const samples = Array.from({ length: 12 }, (_, m) =>
      sample(m, { openFds: 30 + m, eventLoopP99Seconds: m === 7 ? 0.025 : 0.012 }),
    );
    const byKey = new Map(summarize(samples, 2).map((s) => [s.series.key, s]));
    assert.equal(byKey.get("openFds")!.met, false);
    assert.equal(byKey.get("activeHandles")!.met, true);
    const loop = byKey.get("eventLoopP99Seconds")!;
    assert.equal(loop.max, 25);
    assert.equal(loop.met, false);
  });
});

describe("soak: a minute without /metrics", () => {
  it("leaves the gateway's own figures out of the fit, and its dots out of the chart", () => {
    const samples = Array.from({ length: 10 }, (_, m) =>
      sample(m, m === 6 ? { heapUsedBytes: NaN, eventLoopP99Seconds: NaN } : {}),
    );
    const byKey = new Map(summarize(samples, 0).map((s) => [s.series.key, s]));
    assert.equal(byKey.get("heapUsedBytes")!.slopePer10Min, 0);
    assert.equal(byKey.get("eventLoopP99Seconds")!.met, true);
    const svg = soakChart("gap", samples, [...byKey.values()], 0);
    assert.equal(svg.match(/<circle /g)?.length, byKey.size * samples.length - 2);
    assert.doesNotMatch(svg, /NaN/);
  });
});

describe("soak: chart", () => {
  const samples = Array.from({ length: 11 }, (_, m) => sample(m, { rssBytes: 60e6 + m * 0.5e6 }));
  const summaries = summarize(samples, 2);
  const svg = soakChart('soak <10 min> & "quotes"', samples, summaries, 2);

  it("draws one panel per series with every sample, a fitted line per slope series and the limit line", () => {
    assert.ok(svg.startsWith("<svg ") && svg.trimEnd().endsWith("</svg>"));
    assert.equal(svg.match(/<g transform=/g)?.length, summaries.length);
    assert.equal(svg.match(/<circle /g)?.length, summaries.length * samples.length);
    assert.equal(
      svg.match(/class="fit"/g)?.length,
      summaries.filter((s) => s.series.target.kind === "slope").length,
    );
    assert.equal(svg.match(/class="limit"/g)?.length, 1);
    assert.match(svg, /RSS \(MB\)/);
    assert.match(svg, /slope 5\.00 MB\/10 min: NOT MET/);
  });

  it("escapes text and keeps every dot inside its panel", () => {
    assert.match(svg, /soak &lt;10 min&gt; &amp; &quot;quotes&quot;/);
    for (const [, cx, cy] of svg.matchAll(/<circle cx="([\d.-]+)" cy="([\d.-]+)"/g)) {
      assert.ok(Number(cx) >= 64 && Number(cx) <= 460 - 16, `cx ${cx}`);
      assert.ok(Number(cy) >= 42 && Number(cy) <= 190 - 34, `cy ${cy}`);
    }
  });
});
