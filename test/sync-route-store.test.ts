import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { routeUpdateMessage, type FakeRoute } from "../lab/fake-agent.js";
import { decodeRoute } from "../src/sync/codec.js";
import { isIncomplete, RouteStore } from "../src/sync/route-store.js";
import type { Route, SyncEvent } from "../src/sync/types.js";
import { ourBlock, tunnelB, workloadsB } from "./helpers/sync-routes.js";

const OUR_IP = "10.65.0.7";

function route(fake: FakeRoute): Route {
  const decoded = decodeRoute(routeUpdateMessage(fake));
  assert.ok(decoded);
  return decoded;
}
const update = (fake: FakeRoute): SyncEvent => ({ kind: "routeUpdate", sequence: 0n, route: route(fake) });
const remove = (dst: string): SyncEvent => ({ kind: "routeRemove", sequence: 0n, dst });
const inSync: SyncEvent = { kind: "inSync", sequence: 0n };
const workloadsC = { ...workloadsB, dst: "10.65.2.0/26", dstNodeName: "node-c", dstNodeIp: "192.0.2.12" };

/** A store that has seen `events` and an InSync on one stream. */
function synced(...events: SyncEvent[]): RouteStore {
  const store = new RouteStore(OUR_IP);
  store.newStream();
  for (const event of events) store.apply(event);
  store.apply(inSync);
  return store;
}

describe("route store: what it keeps", () => {
  it("keeps host tunnels, remote workloads and our node's route, from either encoding", () => {
    const store = synced(
      update({ ...ourBlock, encoding: "enum" }),
      update(tunnelB),
      update({ ...workloadsB, encoding: "enum" }),
      update({ dst: "192.0.2.11/32", types: ["remoteHost"], dstNodeName: "node-b" }),
      update({ dst: "10.96.0.0/12", types: [] }),
    );
    const view = store.view;
    assert.equal(view?.ourRoute?.dst, "10.65.0.0/26");
    assert.equal(view.ourRoute.poolType, "VXLAN");
    assert.deepEqual([...view.tunnels.keys()], ["10.65.1.1/32"]);
    assert.deepEqual([...view.remoteWorkloads.keys()], ["10.65.1.0/26"]);
  });

  it("keeps a tunnel only when it has a tunnel type", () => {
    const store = synced(
      update({ ...tunnelB, tunnelType: undefined }),
      update({ dst: "10.65.2.1/32", types: ["localTunnel"], tunnelType: {}, dstNodeName: "node-a" }),
      update({ dst: "10.65.3.1/32", types: ["remoteTunnel"], encoding: "enum", tunnelType: { ipip: true } }),
    );
    assert.deepEqual([...(store.view?.tunnels.keys() ?? [])], ["10.65.3.1/32"]);
  });

  it("finds our route by containment of our IPv4, the most specific one winning", () => {
    const other = { ...ourBlock, dst: "10.65.0.64/26" };
    const wide = { ...ourBlock, dst: "10.64.0.0/10", sameSubnet: true };
    const ours = { ...ourBlock, dst: "10.65.0.7/32" };
    const v6 = { ...ourBlock, dst: "fd00::/64" };
    // iproute2 would read 010 as octal 8: the same text means another network there.
    const zeroPadded = { ...ourBlock, dst: "010.65.0.0/26" };
    const notLocal = { ...ourBlock, types: ["remoteWorkload"] } as const;
    assert.equal(synced(update(other), update(v6), update(zeroPadded)).view?.ourRoute, undefined);
    assert.equal(synced(update(notLocal)).view?.ourRoute, undefined);
    assert.equal(synced(update(wide), update(ourBlock)).view?.ourRoute?.dst, "10.65.0.0/26");
    assert.equal(synced(update(ours), update(ourBlock)).view?.ourRoute?.dst, "10.65.0.7/32");
    assert.equal(synced(update(ourBlock)).view?.ourRoute?.cidr?.text, "10.65.0.0/26", "kept parsed");
    const store = synced(update(ourBlock), update(ours));
    store.apply(remove("10.65.0.7/32"));
    assert.equal(store.view?.ourRoute?.dst, "10.65.0.0/26", "falls back to the block");
    const noIPv4 = new RouteStore(undefined);
    noIPv4.apply(update(ourBlock));
    noIPv4.apply(inSync);
    assert.equal(noIPv4.view?.ourRoute, undefined, "no IPv4, no route of ours");
  });

  it("treats an update as the whole new state of its dst", () => {
    const store = synced(update(tunnelB), update(workloadsB));
    store.apply(update({ ...tunnelB, types: ["remoteHost"] }));
    store.apply(update({ ...workloadsB, dstNodeIp: "192.0.2.99" }));
    assert.equal(store.view?.tunnels.size, 0);
    assert.equal(store.view.remoteWorkloads.get("10.65.1.0/26")?.dstNodeIp, "192.0.2.99");
  });

  it("removes by dst from every collection", () => {
    const both = { ...tunnelB, types: ["remoteWorkload", "remoteTunnel"] } as const;
    const store = synced(update(both), update(ourBlock));
    assert.equal(store.view?.tunnels.size, 1);
    assert.equal(store.view.remoteWorkloads.size, 1);
    store.apply(remove(both.dst));
    store.apply(remove(ourBlock.dst));
    assert.equal(store.view?.tunnels.size, 0);
    assert.equal(store.view.remoteWorkloads.size, 0);
    assert.equal(store.view.ourRoute, undefined);
  });

  it("keeps incomplete routes, marked as such, so that a later update completes them", () => {
    const incomplete = route({ ...workloadsB, dstNodeIp: "" });
    assert.equal(isIncomplete(incomplete), true);
    assert.equal(isIncomplete(route(workloadsB)), false);
    assert.equal(isIncomplete(route({ ...tunnelB, dstNodeName: "" })), true);
    assert.equal(isIncomplete(route({ ...tunnelB, dstNodeIp: "" })), false, "a tunnel's address is its dst");
    const store = synced(update({ ...workloadsB, dstNodeIp: "" }));
    assert.equal(store.view?.remoteWorkloads.size, 1);
  });
});

describe("route store: when a view is published", () => {
  it("publishes nothing before the first InSync, then the complete view, even an empty one", () => {
    const store = new RouteStore(OUR_IP);
    store.newStream();
    assert.equal(store.apply(update(tunnelB)), false);
    const before = store.view;
    assert.equal(before, undefined);
    assert.equal(store.inSync, false);
    assert.equal(store.staged, 1);
    assert.equal(store.apply(inSync), true);
    assert.equal(store.view?.tunnels.size, 1);
    assert.equal(store.inSync, true);
    const empty = new RouteStore(OUR_IP);
    assert.equal(empty.apply(inSync), true);
    assert.equal(empty.view?.tunnels.size, 0);
  });

  it("publishes every change after InSync, and nothing for updates that change nothing", () => {
    const store = synced(update(tunnelB));
    const view = store.view;
    assert.equal(store.apply(update(tunnelB)), false, "same route again");
    assert.equal(store.apply(update({ dst: "10.96.0.0/12", types: [] })), false, "a route we do not keep");
    assert.equal(store.apply(remove("10.99.0.0/16")), false, "removal of an unknown dst");
    assert.equal(store.apply(inSync), false, "a repeated InSync");
    assert.equal(store.apply(update(workloadsB)), true);
    assert.equal(store.view, view, "the same view, changed in place: never a copy");
    assert.equal(view?.remoteWorkloads.size, 1);
    assert.equal(store.apply(remove(tunnelB.dst)), true);
    assert.equal(view.tunnels.size, 0);
  });

  it("says what changed since the dataplane last looked: all of a new view, then the dsts touched", () => {
    const store = synced(update(ourBlock), update(tunnelB), update(workloadsB));
    const { feed } = store;
    assert.deepEqual(feed.takeChanges(), { full: true, dsts: new Set() }, "InSync: a new view");
    assert.deepEqual(feed.takeChanges(), { full: false, dsts: new Set() }, "drained");
    store.apply(update(tunnelB));
    store.apply(update({ ...workloadsB, dstNodeIp: "192.0.2.99" }));
    store.apply(remove(tunnelB.dst));
    store.apply(update(workloadsC));
    store.apply(update({ ...ourBlock, poolType: "IPIP" }));
    assert.deepEqual(feed.takeChanges(), {
      full: false,
      dsts: new Set([workloadsB.dst, tunnelB.dst, workloadsC.dst]),
    });
    assert.equal(feed.view.ourRoute?.poolType, "IPIP", "our route is read from the view, not journaled");
    assert.equal(feed.view.remoteWorkloads.get(workloadsB.dst)?.dstNodeIp, "192.0.2.99");

    store.newStream();
    store.apply(update(workloadsB));
    assert.deepEqual(feed.takeChanges(), { full: false, dsts: new Set() }, "a replay is not the view yet");
    store.apply(inSync);
    assert.deepEqual(feed.takeChanges(), { full: true, dsts: new Set() }, "the replay replaced the view");
    assert.deepEqual([...feed.view.remoteWorkloads.keys()], [workloadsB.dst]);
  });

  it("says full once more dsts changed than a view may hold, so the list stays bounded", () => {
    const store = new RouteStore(OUR_IP, { maxRoutes: 3 });
    store.apply(inSync);
    store.feed.takeChanges();
    for (let i = 0; i < 4; i++) {
      const dst = `10.65.${10 + i}.0/26`;
      store.apply(update({ ...workloadsB, dst }));
      store.apply(remove(dst));
    }
    assert.deepEqual(store.feed.takeChanges(), { full: true, dsts: new Set() });
    assert.deepEqual(store.feed.takeChanges(), { full: false, dsts: new Set() });
  });

  it("counts incomplete routes as they come, are completed and go", () => {
    const store = synced(update({ ...workloadsB, dstNodeIp: "" }), update({ ...tunnelB, dstNodeName: "" }));
    assert.equal(store.counts.incomplete, 2);
    store.apply(update(workloadsB));
    assert.equal(store.counts.incomplete, 1);
    store.apply(update({ ...workloadsC, dstNodeName: "" }));
    store.apply(remove(tunnelB.dst));
    assert.equal(store.counts.incomplete, 1);
    store.apply(remove(workloadsC.dst));
    assert.equal(store.counts.incomplete, 0);
  });

  it("keeps the old view while a new stream replays, and replaces it at that stream's InSync", () => {
    const store = synced(update(ourBlock), update(tunnelB), update(workloadsB));
    const before = store.view;
    // The agent restarts; meanwhile node B's workloads went away and node C appeared.
    store.newStream();
    assert.equal(store.inSync, false);
    for (const event of [update(ourBlock), update(tunnelB), update(workloadsC)]) {
      assert.equal(store.apply(event), false, "nothing published while replaying");
    }
    assert.equal(store.view, before, "the dataplane still has the old view");
    store.apply(inSync);
    const after = store.view;
    assert.deepEqual([...(after?.remoteWorkloads.keys() ?? [])], ["10.65.2.0/26"], "B's routes are gone");
    assert.equal(after?.ourRoute?.dst, "10.65.0.0/26");
    assert.deepEqual([...(before?.remoteWorkloads.keys() ?? [])], ["10.65.1.0/26"]);
  });

  it("drops a replay that never reached InSync when yet another stream starts", () => {
    const store = synced(update(tunnelB));
    store.newStream();
    store.apply(update(workloadsB));
    store.newStream();
    store.apply(inSync);
    const view = store.view;
    assert.equal(view?.remoteWorkloads.size, 0);
    assert.equal(view?.tunnels.size, 0);
  });
});
