// Return-path reconcile against a real kernel: a gateway-pod namespace with
// eth0 (a veth to a node namespace) and vxlan0 as init makes it. Converges,
// repeats as a no-op, removes only what it owns, backs off on a kernel error and
// recovers, coalesces bursts. Plus the parsing of iproute2's JSON.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { systemClock } from "../src/clock.js";
import { desiredState } from "../src/dataplane/desired.js";
import {
  createKernel,
  parseDefaultGateway,
  parseFdb,
  parseNeighbours,
  parseRoutes,
} from "../src/dataplane/kernel.js";
import { nodeMac } from "../src/pod-network/mac.js";
import { createReturnPath, type DataplaneLog, type ReturnPath } from "../src/dataplane/return-path.js";
import { Readiness } from "../src/readiness/readiness.js";
import type { KeptRoute, RouteView } from "../src/sync/types.js";
import { Lab, type Namespace } from "../lab/netns.js";
import { routeOf, wholeView } from "../lab/routes.js";

const OUR_IP = "198.51.100.66";
const POD_GATEWAY = "198.18.255.1";
const VNI = 4097;

const route = routeOf;

const OUR_ROUTE = route("198.51.100.64/26", {
  dstNodeName: "gw-node",
  dstNodeIp: "198.18.0.2",
  localWorkload: true,
});

/** `nodes` remote nodes, node i at 198.18.1.i with a VXLAN tunnel 198.19.i.1 and `perNode` /28 blocks in 198.19.i.0/24. */
function snapshot(nodes: number, perNode = 2, extra: KeptRoute[] = []): RouteView {
  const tunnels: KeptRoute[] = [];
  const workloads: KeptRoute[] = [...extra];
  for (let i = 1; i <= nodes; i++) {
    const node = { dstNodeName: `node${i}`, dstNodeIp: `198.18.1.${i}` };
    tunnels.push(
      route(`198.19.${i}.1/32`, {
        dstNodeName: node.dstNodeName,
        tunnelType: { ipip: false, vxlan: true, wireguard: false },
      }),
    );
    for (let b = 0; b < perNode; b++) workloads.push(route(`198.19.${i}.${b * 16}/28`, node));
  }
  return {
    ourRoute: OUR_ROUTE,
    tunnels: new Map(tunnels.map((r) => [r.dst, r])),
    remoteWorkloads: new Map(workloads.map((r) => [r.dst, r])),
  };
}

/** Kernel dumps come in hash order; compare as sets. */
const sorted = <T>(items: readonly T[]): T[] =>
  [...items].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));

function recordingLog(): DataplaneLog & { warnings: { fields: object; msg: string }[] } {
  const warnings: { fields: object; msg: string }[] = [];
  return { warnings, warn: (fields, msg) => warnings.push({ fields, msg }), info: () => {}, debug: () => {} };
}

async function waitFor(what: string, pred: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!pred()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const addVxlan = (pod: Namespace): void => {
  pod.ip(
    "link",
    "add",
    "vxlan0",
    "address",
    "a2:2a:c6:33:64:42",
    "type",
    "vxlan",
    "id",
    String(VNI),
    "dstport",
    "4790",
    "dev",
    "eth0",
  );
  pod.ip("link", "set", "vxlan0", "up");
};

describe("return-path reconcile in a pod namespace", () => {
  const lab = new Lab("dpr");
  let pod: Namespace;
  const paths: ReturnPath[] = [];

  before(() => {
    const node = lab.ns("node");
    pod = lab.ns("pod");
    lab.link(pod, "eth0", node, "veth-pod");
    pod.ip("addr", "add", `${OUR_IP}/32`, "dev", "eth0");
    pod.ip("route", "add", POD_GATEWAY, "dev", "eth0", "scope", "link");
    pod.ip("route", "add", "default", "via", POD_GATEWAY, "dev", "eth0");
    addVxlan(pod);
  });

  after(async () => {
    await Promise.all(paths.map((p) => p.stop()));
    lab.destroy();
  });

  const start = (options: { backoffInitialMs?: number; backoffMaxMs?: number } = {}) => {
    const readiness = new Readiness(systemClock);
    const log = recordingLog();
    const path = createReturnPath({
      readiness,
      log,
      clock: systemClock,
      ourIPv4: OUR_IP,
      vni: VNI,
      netns: pod.name,
      resyncIntervalMs: 0,
      ...options,
    });
    paths.push(path);
    const dataplane = () => readiness.evaluate().components.find((c) => c.name === "Dataplane")!;
    return { path, log, dataplane };
  };

  const owned = () => createKernel({ vni: VNI, netns: pod.name }).read();

  it("converges to the desired state, then a second pass (also reading back) changes nothing", async () => {
    const { path, dataplane } = start();
    const snap = snapshot(3);
    path.update(wholeView(snap));
    await waitFor("ready", () => path.state().ready);
    const want = desiredState({ view: snap, vni: VNI, podGateway: POD_GATEWAY });
    const { owned: have, podGateway } = await owned();
    assert.equal(podGateway, POD_GATEWAY);
    assert.deepEqual(sorted(have.neighbours), sorted(want.neighbours));
    assert.deepEqual(sorted(have.fdb), sorted(want.fdb));
    assert.deepEqual(sorted(have.routes), sorted(want.routes));
    assert.equal(path.state().lastChanges, want.neighbours.length + want.fdb.length + want.routes.length);
    assert.match(pod.ip("route", "show", "198.19.1.1"), /via 198\.18\.255\.1 dev eth0 proto 69 onlink/);
    assert.equal(dataplane().ready, true);
    assert.equal(dataplane().detail, "6 return routes to 3 nodes");

    path.update(wholeView(snap));
    await waitFor("second pass", () => path.state().passes === 2);
    assert.equal(path.state().lastChanges, 0);
    path.resync();
    await waitFor("read-back pass", () => path.state().passes === 3);
    assert.equal(path.state().lastChanges, 0);
    await path.stop();
  });

  it("removes only its own entries; hand-made neighbours, FDB entries and routes stay", async () => {
    const foreign = {
      neigh: "198.18.9.9 lladdr 02:00:00:00:09:09 PERMANENT",
      fdb: [
        "00:00:00:00:00:00 dst 198.18.9.9 self permanent",
        "02:00:00:00:09:09 dst 198.18.9.9 self permanent",
      ],
      vxlanRoute: "198.19.200.0/24 via 198.18.9.9 onlink",
      eth0Route: "203.0.113.0/24 via 198.18.255.1 onlink",
    };
    pod.ip(
      "neigh",
      "replace",
      "198.18.9.9",
      "lladdr",
      "02:00:00:00:09:09",
      "dev",
      "vxlan0",
      "nud",
      "permanent",
    );
    pod.exec("bridge", [
      "fdb",
      "append",
      "00:00:00:00:00:00",
      "dev",
      "vxlan0",
      "dst",
      "198.18.9.9",
      "self",
      "permanent",
    ]);
    pod.exec("bridge", [
      "fdb",
      "replace",
      "02:00:00:00:09:09",
      "dev",
      "vxlan0",
      "dst",
      "198.18.9.9",
      "self",
      "permanent",
    ]);
    pod.ip("route", "replace", "198.19.200.0/24", "via", "198.18.9.9", "dev", "vxlan0", "onlink");
    pod.ip("route", "replace", "203.0.113.0/24", "via", POD_GATEWAY, "dev", "eth0", "onlink");

    const { path } = start();
    path.update(wholeView(snapshot(3)));
    await waitFor("ready", () => path.state().ready);
    path.update(wholeView(snapshot(1)));
    await waitFor("removal pass", () => path.state().passes === 2);
    // Two nodes leave: 4 routes, 2 exit routes, 2 neighbours, 2 FDB entries.
    assert.equal(path.state().lastChanges, 10);
    path.resync();
    await waitFor("read-back pass", () => path.state().passes === 3);
    assert.equal(path.state().lastChanges, 0);
    const have = (await owned()).owned;
    assert.deepEqual(
      have.neighbours.map((n) => n.mac),
      [nodeMac("node1")],
    );

    path.update(wholeView({ ourRoute: OUR_ROUTE, tunnels: new Map(), remoteWorkloads: new Map() }));
    await waitFor("emptying pass", () => path.state().passes === 4);
    assert.deepEqual((await owned()).owned, { neighbours: [], fdb: [], routes: [] });
    assert.ok(path.state().ready, "ready with nothing to program");
    assert.equal(pod.ip("neigh", "show", "dev", "vxlan0").trim(), foreign.neigh);
    const fdb = pod.exec("bridge", ["fdb", "show", "dev", "vxlan0"]);
    for (const line of foreign.fdb) assert.ok(fdb.includes(line), `${line} in ${fdb}`);
    assert.equal(pod.ip("route", "show", "dev", "vxlan0").trim(), foreign.vxlanRoute);
    assert.ok(pod.ip("route", "show", "dev", "eth0").includes(foreign.eth0Route));
    await path.stop();
  });

  it("takes over a foreign route that sits on a destination it needs", async () => {
    pod.ip("route", "replace", "198.19.1.0/28", "via", "198.18.9.9", "dev", "vxlan0", "onlink");
    const { path } = start();
    path.update(wholeView(snapshot(1)));
    await waitFor("ready", () => path.state().ready);
    assert.match(pod.ip("route", "show", "198.19.1.0/28"), /via 198\.18\.1\.1 dev vxlan0 proto 69 onlink/);
    await path.stop();
  });

  it("kernel error: not ready, one warning per failed pass, backoff doubling; ready once vxlan0 is back", async () => {
    pod.ip("link", "del", "vxlan0");
    const { path, log, dataplane } = start({ backoffInitialMs: 20, backoffMaxMs: 160 });
    const started = performance.now();
    path.update(wholeView(snapshot(2)));
    await waitFor("5 failures", () => path.state().failures >= 5);
    const elapsed = performance.now() - started;
    assert.equal(path.state().ready, false);
    assert.equal(dataplane().ready, false);
    assert.match(
      dataplane().detail,
      /^reconcile failed \(EGW_ERR_DATAPLANE_READ_FAILED\): .*vxlan0.*; retry in \d+ms$/,
    );
    // 20 + 40 + 80 + 160 ms of backoff before the fifth attempt.
    assert.ok(elapsed >= 300, `5 attempts took ${elapsed} ms`);
    const failed = log.warnings.filter((w) => w.msg.startsWith("return-path reconcile failed"));
    assert.equal(failed.length, path.state().failures);
    assert.deepEqual(
      failed.slice(0, 5).map((w) => (w.fields as { retryInMs: number }).retryInMs),
      [20, 40, 80, 160, 160],
    );

    addVxlan(pod);
    await waitFor("ready after the fix", () => path.state().ready, 2_000);
    assert.equal(dataplane().ready, true);
    assert.equal((await owned()).owned.fdb.length, 2);
    await path.stop();
  });

  it("coalesces a burst of 100 updates into a few passes; the last snapshot wins", async () => {
    const { path } = start();
    for (let i = 1; i <= 100; i++) {
      path.update(wholeView(snapshot(i, 1)));
      if (i % 10 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await waitFor(
      "converged on the last snapshot",
      () => path.state().nodes === 100 && !path.state().pending,
    );
    assert.ok(path.state().passes <= 5, `${path.state().passes} passes`);
    assert.equal((await owned()).owned.routes.length, 200);
    await path.stop();
  });
});

describe("reading iproute2 JSON", () => {
  it("keeps permanent node-MAC neighbours and FDB entries only; absent VNI is the device's", () => {
    const neigh = JSON.stringify([
      { dst: "198.18.0.1", lladdr: "66:f9:37:c3:7e:94", state: ["PERMANENT"] },
      { dst: "198.18.0.2", lladdr: "66:f9:37:c3:7e:95", state: ["REACHABLE"] },
      { dst: "198.18.0.3", lladdr: "02:00:00:00:00:01", state: ["PERMANENT"] },
      { dst: "198.18.0.4", state: ["FAILED"] },
    ]);
    assert.deepEqual(parseNeighbours(neigh), [{ ip: "198.18.0.1", mac: "66:f9:37:c3:7e:94" }]);
    const fdb = JSON.stringify([
      { mac: "00:00:00:00:00:00", dst: "198.18.0.9", flags: ["self"], state: "permanent" },
      { mac: "66:f9:37:c3:7e:94", dst: "198.18.0.1", flags: ["self"], state: "permanent" },
      { mac: "66:f9:37:c3:7e:95", dst: "198.18.0.2", vni: 7, flags: ["self"], state: "permanent" },
      { mac: "66:f9:37:c3:7e:96", dst: "198.18.0.3", flags: ["self"], state: "" },
    ]);
    assert.deepEqual(parseFdb(fdb, VNI), [
      { mac: "66:f9:37:c3:7e:94", dst: "198.18.0.1", vni: VNI },
      { mac: "66:f9:37:c3:7e:95", dst: "198.18.0.2", vni: 7 },
    ]);
  });

  it("routes: host routes get /32, other devices are not ours, odd shapes never match", () => {
    const routes = JSON.stringify([
      { dst: "198.19.1.0/28", gateway: "198.18.1.1", dev: "vxlan0", flags: ["onlink"] },
      { dst: "198.19.1.1", gateway: POD_GATEWAY, dev: "eth0", flags: ["onlink"] },
      { dst: "198.19.2.0/28", gateway: "198.18.1.2", dev: "vxlan0", flags: [] },
      { dst: "198.19.3.0/28", gateway: "198.18.1.3", dev: "eth1", flags: ["onlink"] },
    ]);
    assert.deepEqual(parseRoutes(routes), [
      { dst: "198.19.1.0/28", via: "198.18.1.1", dev: "vxlan0" },
      { dst: "198.19.1.1/32", via: POD_GATEWAY, dev: "eth0" },
      { dst: "198.19.2.0/28", via: "", dev: "vxlan0" },
    ]);
    const defaults = JSON.stringify([
      { dst: "default", gateway: "198.18.0.254", dev: "eth1", flags: [] },
      { dst: "default", gateway: POD_GATEWAY, dev: "eth0", flags: [] },
    ]);
    assert.equal(parseDefaultGateway(defaults), POD_GATEWAY);
    assert.equal(parseDefaultGateway("[]"), undefined);
  });
});
