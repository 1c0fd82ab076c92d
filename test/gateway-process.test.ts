// The built gateway started through start-gateway.sh, as kubelet would, with
// HTTP probes against a real upstream on loopback that goes away and returns.
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { after, before, describe, it } from "node:test";
import { freePort, startGatewayProcess, type GatewayProcess } from "../lab/gateway-process.js";

const INTERVAL_MS = 500;
const TIMEOUT_MS = 2_000;

class Upstream {
  private server: Server | undefined;
  constructor(readonly port: number) {}
  async up(): Promise<void> {
    this.server = createServer((_req, res) => res.end("ok"));
    await new Promise<void>((resolve) => this.server!.listen(this.port, "127.0.0.1", resolve));
  }
  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

async function status(port: number, path = "/readiness"): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  await res.arrayBuffer();
  return res.status;
}

/** Polls every 25 ms until `pred(status)`; returns the ms it took. */
async function waitForStatus(port: number, want: number, limitMs: number): Promise<number> {
  const start = performance.now();
  for (;;) {
    const got = await status(port).catch(() => 0);
    if (got === want) return performance.now() - start;
    if (performance.now() - start > limitMs)
      throw new Error(`/readiness not ${want} within ${limitMs} ms (last ${got})`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function gatewayEnv(healthPort: number, upstreamPort: number, extra: Record<string, string> = {}) {
  return {
    HEALTH_PORT: String(healthPort),
    HEALTH_LISTEN_ADDRESS: "127.0.0.1",
    HTTP_PROBE_URLS: `http://127.0.0.1:${upstreamPort}/`,
    HTTP_PROBE_INTERVAL: `${INTERVAL_MS}ms`,
    HTTP_PROBE_TIMEOUT: `${TIMEOUT_MS}ms`,
    ...extra,
  };
}

describe("gateway process: readiness follows the upstream", () => {
  let upstream: Upstream;
  let gateway: GatewayProcess;
  let healthPort: number;

  before(async () => {
    upstream = new Upstream(await freePort());
    await upstream.up();
    healthPort = await freePort();
    gateway = startGatewayProcess(gatewayEnv(healthPort, upstream.port));
    await gateway.waitForLog((l) => l.msg === "health server listening");
  });

  after(async () => {
    await gateway.kill();
    await upstream.down();
  });

  it("is ready once a target answers", async () => {
    await waitForStatus(healthPort, 200, 3_000);
    assert.equal(await status(healthPort, "/liveness"), 200);
    assert.equal(await status(healthPort, "/nope"), 404);
  });

  it("turns 503 within TIMEOUT + 1 s after the target goes away, not before TIMEOUT - interval", async () => {
    await waitForStatus(healthPort, 200, 3_000);
    await upstream.down();
    const took = await waitForStatus(healthPort, 503, TIMEOUT_MS + 1_000);
    assert.ok(took >= TIMEOUT_MS - INTERVAL_MS * 1.05 - 50, `503 after only ${Math.round(took)} ms`);
    await gateway.waitForLog(
      (l) => l.msg === "readiness changed" && l.component === "HTTPProbes" && l.ready === false,
    );
  });

  it("is 200 again within one interval after the target comes back", async () => {
    await upstream.up();
    const took = await waitForStatus(healthPort, 200, 5_000);
    assert.ok(took <= INTERVAL_MS * 1.05 + 250, `200 again after ${Math.round(took)} ms`);
  });

  it("logs each readiness transition once, not every tick", () => {
    const changes = gateway.logs.filter((l) => l.msg === "readiness changed" && l.component === "HTTPProbes");
    assert.deepEqual(
      changes.map((l) => l.ready),
      [true, false, true],
    );
    const down = gateway.logs.filter((l) => l.msg === "probe target down");
    assert.equal(down.length, 1, gateway.dump());
  });
});

describe("gateway process: termination", () => {
  it("on SIGTERM answers 503 at once, keeps serving through the drain, then exits 0", async () => {
    const upstream = new Upstream(await freePort());
    await upstream.up();
    const healthPort = await freePort();
    const gateway = startGatewayProcess(gatewayEnv(healthPort, upstream.port, { DRAIN_TIMEOUT: "2s" }));
    try {
      await waitForStatus(healthPort, 200, 5_000);
      const sentAt = performance.now();
      gateway.signal("SIGTERM");
      assert.ok((await waitForStatus(healthPort, 503, 500)) < 500);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      assert.equal(await status(healthPort), 503, "still serving during the drain");
      assert.equal(await status(healthPort, "/liveness"), 200);
      const exit = await gateway.exited;
      const tookMs = performance.now() - sentAt;
      assert.deepEqual(exit, { code: 0, signal: null });
      assert.ok(tookMs >= 1_900 && tookMs < 4_000, `exited ${Math.round(tookMs)} ms after SIGTERM`);
      assert.ok(gateway.logs.some((l) => l.msg === "drain complete, exiting"));
    } finally {
      await gateway.kill();
      await upstream.down();
    }
  });

  it("exits at once on a second signal", async () => {
    const healthPort = await freePort();
    const gateway = startGatewayProcess({
      HEALTH_PORT: String(healthPort),
      HEALTH_LISTEN_ADDRESS: "127.0.0.1",
      DRAIN_TIMEOUT: "60s",
    });
    try {
      await gateway.waitForLog((l) => l.msg === "gateway started");
      assert.equal(await status(healthPort), 200, "no components: ready once serving");
      gateway.signal("SIGTERM");
      await gateway.waitForLog((l) => l.msg.startsWith("termination signal"));
      const sentAt = performance.now();
      gateway.signal("SIGTERM");
      const exit = await gateway.exited;
      assert.equal(exit.code, 143);
      assert.ok(performance.now() - sentAt < 1_000);
    } finally {
      await gateway.kill();
    }
  });
});

describe("gateway process: start-up", () => {
  // The health port listens before the probe and policy-sync modules load
  // (start-up time). From the first accepted connection on, /readiness must
  // already count the probe components, and fastify's routes must answer even
  // when asked while fastify itself is still loading.
  it("is never ready before its probes report, and serves /metrics from the first connection", async () => {
    const [healthPort, upstreamPort] = [await freePort(), await freePort()];
    const gateway = startGatewayProcess(gatewayEnv(healthPort, upstreamPort)); // nothing listens upstream
    try {
      const startedAt = performance.now();
      const ask = (path: string) => status(healthPort, path).catch(() => 0);
      let metrics = 0;
      while (metrics === 0) {
        if (performance.now() - startedAt > 5_000)
          throw new Error(`no answer within 5 s:\n${gateway.dump()}`);
        // Both requests go out together, so /metrics can arrive while fastify loads.
        const [readiness, got] = await Promise.all([ask("/readiness"), ask("/metrics")]);
        assert.notEqual(readiness, 200, "ready although the upstream never answered");
        metrics = got;
      }
      assert.equal(metrics, 200);
      const body = await (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text();
      assert.match(body, /^egress_gateway_component_ready\{component="HTTPProbes"\} 0$/m);
      await gateway.waitForLog((l) => l.msg === "gateway started");
      assert.equal(await status(healthPort), 503, "the HTTP probe fails: not ready");
    } finally {
      await gateway.kill();
    }
  });
});

describe("gateway process: bad environment", () => {
  for (const [name, value] of [
    ["ICMP_PROBE_INTERVAL", "5"],
    ["ICMP_PROBE_INTERVAL", "-5s"],
    ["HTTP_PROBE_TIMEOUT", "30 s"],
    ["HEALTH_TIMEOUT_DATASTORE", "-90"],
    ["ICMP_PROBE_IPS", "198.51.100.1,not-an-ip"],
    ["HEALTH_PORT", "70000"],
    ["HTTP_PROBE_URLS", "ftp://198.51.100.1/"],
  ] as const) {
    it(`${name}=${value} exits 2 with one line naming the variable`, async () => {
      const gateway = startGatewayProcess({ [name]: value, HEALTH_PORT: "0", ...{ [name]: value } });
      const exit = await gateway.exited;
      assert.equal(exit.code, 2);
      assert.equal(gateway.stderr.length, 1, gateway.stderr.join("\n"));
      assert.match(gateway.stderr[0]!, new RegExp(`^egress-gateway: configuration error: ${name}=`));
      assert.doesNotMatch(gateway.stderr[0]!, /\bat .*\(.*:\d+:\d+\)/, "no stack trace");
      assert.equal(gateway.logs.length, 0, "nothing started");
    });
  }
});
