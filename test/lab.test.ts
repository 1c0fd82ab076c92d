// The lab that tests, benchmarks and the demo share: the pod-on-bridge topology
// with a peer echo on the external host, teardown that leaves nothing, and a
// sweep that removes what crashed runs left but never a live run's namespaces.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { ADDR, buildPodLab, type PeerEcho, type PodLab } from "../lab/pod-lab.js";
import type { NamespaceHttpClient } from "../lab/namespace-http.js";
import { ROOT } from "../lab/run-lab.js";
import { ownerOf, processExists, projectNamespaces, sweepCrashedRuns } from "../lab/sweep.js";
import { Lab } from "../lab/netns.js";

const namespacesOf = (prefix: string): string[] =>
  projectNamespaces().filter((name) => name.startsWith(`${prefix}-`));

async function gone(pid: number, withinMs = 3_000): Promise<boolean> {
  const until = Date.now() + withinMs;
  while (processExists(pid)) {
    if (Date.now() > until) return false;
    await sleep(20);
  }
  return true;
}

/** Another process that builds a lab with a peer echo and keeps it until it is signalled. */
async function labInAnotherProcess(): Promise<{ child: ChildProcess; prefix: string; pids: number[] }> {
  const script = `
    import { buildPodLab } from "./lab/pod-lab.ts";
    const pod = buildPodLab("other");
    await pod.startPeerEcho();
    console.log(JSON.stringify({ prefix: pod.lab.prefix, pids: pod.lab.pids() }));
    setInterval(() => undefined, 60_000);
  `;
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const [line] = (await once(createInterface({ input: child.stdout }), "line")) as [string];
  return { child, ...(JSON.parse(line) as { prefix: string; pids: number[] }) };
}

describe("pod lab", () => {
  let pod: PodLab;
  let echo: PeerEcho;
  let client: NamespaceHttpClient;

  before(async () => {
    pod = buildPodLab("labt");
    [echo, client] = await Promise.all([pod.startPeerEcho(0), pod.httpClient(pod.client)]);
  });
  after(() => pod.destroy());

  it("builds four namespaces under one per-run prefix that names this process", () => {
    assert.match(pod.lab.prefix, new RegExp(`^egt-labt-p${process.pid}-`));
    assert.deepEqual(namespacesOf(pod.lab.prefix).sort(), [
      `${pod.lab.prefix}-client`,
      `${pod.lab.prefix}-ext`,
      `${pod.lab.prefix}-gw`,
      `${pod.lab.prefix}-node`,
    ]);
  });

  it("lets the client reach the external host directly: the host sees the client's own addresses", async () => {
    assert.equal(await client.text(echo.url(4)), ADDR.client.v4);
    assert.equal(await client.text(echo.url(6)), ADDR.client.v6);
  });

  it("routes the client's external traffic via the gateway pod on request, and back", () => {
    pod.routeClientViaGateway(true);
    assert.match(pod.client.ip("route", "get", ADDR.external.v4), new RegExp(`via ${ADDR.gateway.v4} `));
    pod.routeClientViaGateway(false);
    assert.match(pod.client.ip("route", "get", ADDR.external.v4), new RegExp(`via ${ADDR.node.v4} `));
  });

  it("fails a request from the client cleanly when nothing listens", async () => {
    await assert.rejects(client.get(`http://${ADDR.external.v4}:9/`), /ECONNREFUSED/);
  });
});

describe("pod lab teardown", () => {
  it("destroy() kills the processes started in the lab and deletes every namespace", async () => {
    const pod = buildPodLab("labt");
    await Promise.all([pod.startPeerEcho(0), pod.httpClient(pod.client)]);
    const pids = pod.lab.pids();
    assert.equal(pids.length, 2);
    pod.destroy();
    assert.deepEqual(namespacesOf(pod.lab.prefix), []);
    for (const pid of pids) assert.ok(await gone(pid), `process ${pid} still running`);
    pod.destroy();
  });

  it("SIGTERM to a script that built a lab removes the lab before the script exits", async () => {
    const other = await labInAnotherProcess();
    assert.equal(namespacesOf(other.prefix).length, 4);
    other.child.kill("SIGTERM");
    const [code] = (await once(other.child, "exit")) as [number | null];
    assert.equal(code, 143);
    assert.deepEqual(namespacesOf(other.prefix), []);
    for (const pid of other.pids) assert.ok(await gone(pid), `process ${pid} still running`);
  });
});

describe("sweep of crashed runs", () => {
  it("removes a crashed run's namespaces and processes, keeps a live run's", async () => {
    const live = buildPodLab("labt");
    const liveOther = await labInAnotherProcess();
    const crashed = await labInAnotherProcess();
    try {
      crashed.child.kill("SIGKILL"); // no exit hook runs: this is a crash
      await once(crashed.child, "exit");
      assert.equal(namespacesOf(crashed.prefix).length, 4, "a crash leaves the namespaces behind");
      assert.ok(crashed.pids.every(processExists), "and the processes that ran in them");

      const { removed, kept } = sweepCrashedRuns();

      assert.deepEqual(namespacesOf(crashed.prefix), []);
      assert.deepEqual(removed.filter((n) => n.startsWith(crashed.prefix)).length, 4);
      for (const pid of crashed.pids) assert.ok(await gone(pid), `leftover process ${pid} still running`);
      for (const prefix of [live.lab.prefix, liveOther.prefix]) {
        assert.equal(namespacesOf(prefix).length, 4, `${prefix} was touched`);
        assert.equal(kept.filter((n) => n.startsWith(prefix)).length, 4);
      }
    } finally {
      liveOther.child.kill("SIGTERM");
      await once(liveOther.child, "exit");
      live.destroy();
    }
  });

  it("reads the owner from the namespace name, and none from a hand-made one", () => {
    assert.equal(ownerOf("egt-demo-p4242-1a-node"), 4242);
    assert.equal(ownerOf(`${new Lab("hp").prefix}-cli`), process.pid);
    assert.equal(ownerOf("egt-"), undefined);
    assert.equal(ownerOf("egt-scratch"), undefined);
  });
});
