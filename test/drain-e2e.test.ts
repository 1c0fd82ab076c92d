// Flow-aware drain through the built gateway in the lab's gateway pod: after
// SIGTERM it waits while a forwarded connection is live, exits as soon as the
// last one finished (never before DRAIN_MIN), and DRAIN_TIMEOUT stays the bound.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { describeInit, runInit, startGateway } from "../lab/gateway-pod.js";
import { ADDR, buildPodLab, type PodLab } from "../lab/pod-lab.js";
import type { Finished } from "../lab/run-lab.js";
import type { GatewayProcess } from "../lab/gateway-process.js";

const PEER_PORT = 9500;

interface Drained {
  readonly reason: unknown;
  readonly liveConnections: unknown;
  /** SIGTERM to exit, measured here. */
  readonly ms: number;
  readonly code: number | null;
}

describe("drain counts forwarded connections", () => {
  let pod: PodLab;

  before(async () => {
    pod = buildPodLab("dr");
    const init = await runInit(pod);
    assert.equal(init.code, 0, describeInit(init));
    pod.routeClientViaGateway(true);
    await pod.lab.startProgram(pod.external, "flow-peer.ts", [
      ...["server", "--host", ADDR.external.v4, "--port", String(PEER_PORT)],
    ]);
  });

  after(() => pod?.destroy());

  /** A TCP connection from the client pod that stays open `holdMs` after its first answer. */
  function hold(holdMs: number): Promise<Finished> {
    return pod.lab.run(pod.client, process.execPath, [
      ...["--import", "tsx", "lab/flow-peer.ts", "tcp", "--host", ADDR.external.v4],
      ...["--port", String(PEER_PORT), "--hold-ms", String(holdMs)],
    ]);
  }

  async function started(env: Record<string, string>): Promise<GatewayProcess> {
    const gateway = startGateway(pod, { HEALTH_LISTEN_ADDRESS: "127.0.0.1", ...env });
    await gateway.waitForLog((l) => l.msg === "gateway started", 30_000);
    return gateway;
  }

  async function terminate(gateway: GatewayProcess): Promise<Drained> {
    const sent = performance.now();
    gateway.signal("SIGTERM");
    const { code } = await gateway.exited;
    const ms = performance.now() - sent;
    const done = gateway.logs.find((l) => l.msg === "drain complete, exiting");
    assert.ok(done, gateway.dump());
    return { reason: done.reason, liveConnections: done.liveConnections, ms, code };
  }

  // A client process under load can take seconds to start (tsx).
  async function established(): Promise<void> {
    const until = performance.now() + 20_000;
    while (!pod.gateway.exec("conntrack", ["-L", "--src-nat"]).includes("ESTABLISHED")) {
      if (performance.now() > until) throw new Error("no forwarded connection established");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  it("with nothing forwarded, exits at DRAIN_MIN, not at DRAIN_TIMEOUT", async () => {
    const gateway = await started({ DRAIN_MIN: "2s", DRAIN_TIMEOUT: "30s" });
    try {
      const drained = await terminate(gateway);
      assert.equal(drained.code, 0);
      assert.equal(drained.reason, "idle");
      assert.equal(drained.liveConnections, 0);
      assert.ok(drained.ms >= 2_000 && drained.ms < 6_000, `exited after ${Math.round(drained.ms)} ms`);
    } finally {
      await gateway.kill();
    }
  });

  it("waits while a connection is live, logs the count, and exits soon after it finished", async () => {
    const gateway = await started({ DRAIN_MIN: "1s", DRAIN_TIMEOUT: "30s" });
    try {
      const client = hold(5_000);
      await established();
      const sent = performance.now();
      const drained = terminate(gateway);
      const exchange = await client;
      assert.equal(exchange.code, 0, exchange.stderr);
      const closedMs = performance.now() - sent;
      const { code, reason, ms } = await drained;
      assert.equal(code, 0);
      assert.equal(reason, "idle");
      assert.ok(closedMs > 3_000, `the connection closed ${Math.round(closedMs)} ms after SIGTERM`);
      // closedMs is when the client process's exit reached the test, a few ms
      // after the kernel saw the close; an exit before the close would be at ~1 s.
      assert.ok(
        ms >= closedMs - 1_000 && ms < closedMs + 3_000,
        `exit ${Math.round(ms)} ms, close ${Math.round(closedMs)} ms`,
      );
      const progress = gateway.logs.filter((l) => l.msg === "draining: forwarded connections still live");
      assert.ok(progress.length >= 1);
      assert.equal(progress[0]!.liveConnections, 1);
    } finally {
      await gateway.kill();
    }
  });

  it("DRAIN_TIMEOUT is the bound: exits with the connection still live", async () => {
    const gateway = await started({ DRAIN_MIN: "1s", DRAIN_TIMEOUT: "3s" });
    const client = hold(20_000);
    try {
      await established();
      const drained = await terminate(gateway);
      assert.equal(drained.code, 0);
      assert.equal(drained.reason, "timeout");
      assert.equal(drained.liveConnections, 1);
      assert.ok(drained.ms >= 3_000 && drained.ms < 6_000, `exited after ${Math.round(drained.ms)} ms`);
    } finally {
      await gateway.kill();
      void client.catch(() => undefined);
    }
  });
});
