// The desired return path (SPEC §5.1) as plain data:
// tunnel choice (WireGuard, pool type, cross-subnet), skipped routes, removals.
// Every example is computed from the whole view (desired.ts) and, built from
// the same view, by the incremental state the gateway keeps (incremental.ts).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { desiredState, type DesiredInput } from "../src/dataplane/desired.js";
import { changeCount, diff } from "../src/dataplane/diff.js";
import { IncrementalDesired } from "../src/dataplane/incremental.js";
import type { DesiredState } from "../src/dataplane/types.js";
import type { KeptRoute, PoolType, Route, RouteView, TunnelType } from "../src/sync/types.js";
import { NO_ROUTE_TYPES, routeOf } from "../lab/routes.js";
import { NODE_MAC } from "./helpers/node-macs.js";

const POD_GATEWAY = "169.254.1.1";
const VNI = 4097;

const route = routeOf;

const ourRoute = (fields: Partial<Route> = {}): KeptRoute =>
  route("198.51.100.64/26", {
    types: { ...NO_ROUTE_TYPES, localWorkload: true },
    dstNodeName: "gw-node",
    dstNodeIp: "198.18.0.2",
    localWorkload: true,
    ...fields,
  });

const workload = (dst: string, node: string, nodeIp: string, fields: Partial<Route> = {}): KeptRoute =>
  route(dst, {
    types: { ...NO_ROUTE_TYPES, remoteWorkload: true },
    dstNodeName: node,
    dstNodeIp: nodeIp,
    ...fields,
  });

const tunnel = (
  address: string,
  node: string,
  kind: keyof TunnelType,
  poolType: PoolType,
  fields: Partial<Route> = {},
): KeptRoute =>
  route(`${address}/32`, {
    types: { ...NO_ROUTE_TYPES, remoteTunnel: true },
    dstNodeName: node,
    poolType,
    tunnelType: { ipip: kind === "ipip", vxlan: kind === "vxlan", wireguard: kind === "wireguard" },
    ...fields,
  });

function snapshot(parts: { ours?: KeptRoute; tunnels?: KeptRoute[]; workloads?: KeptRoute[] }): RouteView {
  return {
    ourRoute: parts.ours,
    tunnels: new Map((parts.tunnels ?? []).map((r) => [r.dst, r])),
    remoteWorkloads: new Map((parts.workloads ?? []).map((r) => [r.dst, r])),
  };
}

const byText = <T>(items: Iterable<T>): string[] => [...items].map((i) => JSON.stringify(i)).sort();

/** The whole-view state, after checking that the incremental state built from the view has the same entries. */
function desired(snap: RouteView, input: Partial<DesiredInput> = {}): DesiredState {
  const state = desiredState({ view: snap, vni: VNI, podGateway: POD_GATEWAY, ...input });
  if (snap.ourRoute !== undefined) {
    const model = new IncrementalDesired(input.vni ?? VNI);
    model.update(snap.ourRoute, snap, { full: true, dsts: new Set() }, input.podGateway ?? POD_GATEWAY);
    assert.deepEqual(byText(model.routes.values()), byText(state.routes), "incremental routes");
    assert.deepEqual(byText(model.neighbours.values()), byText(state.neighbours), "incremental neighbours");
    assert.deepEqual(byText(model.fdb.values()), byText(state.fdb), "incremental FDB entries");
    assert.deepEqual(model.counts.skipped, state.skipped, "incremental skipped counts");
  }
  return state;
}

/** Where each node MAC's VXLAN packets go. */
const fdbOf = (state: DesiredState): Record<string, string> =>
  Object.fromEntries(state.fdb.map((f) => [f.mac, f.dst]));

describe("desired return path", () => {
  it("VXLAN pool: FDB to the node's VXLAN tunnel plus an exit route; neighbour and route per workload", () => {
    const state = desired(
      snapshot({
        ours: ourRoute(),
        tunnels: [tunnel("198.51.100.1", "node1", "vxlan", "VXLAN")],
        workloads: [
          workload("198.51.100.0/26", "node1", "198.18.0.1"),
          workload("198.51.100.200/32", "node1", "198.18.0.1", { borrowed: true }),
        ],
      }),
    );
    assert.deepEqual(state.neighbours, [{ ip: "198.18.0.1", mac: NODE_MAC.node1 }]);
    assert.deepEqual(state.fdb, [{ mac: NODE_MAC.node1, dst: "198.51.100.1", vni: VNI }]);
    assert.deepEqual(state.routes, [
      { dst: "198.51.100.0/26", via: "198.18.0.1", dev: "vxlan0" },
      { dst: "198.51.100.200/32", via: "198.18.0.1", dev: "vxlan0" },
      { dst: "198.51.100.1/32", via: POD_GATEWAY, dev: "eth0" },
    ]);
    assert.equal(state.ourRouteSeen, true);
    assert.equal(state.nodes, 1);
  });

  it("a node without a tunnel of our pool type gets its FDB entry to the node IP, no exit route", () => {
    const state = desired(
      snapshot({
        ours: ourRoute({ poolType: "IPIP" }),
        tunnels: [tunnel("198.51.100.1", "node1", "vxlan", "VXLAN")],
        workloads: [workload("198.51.100.0/26", "node1", "198.18.0.1")],
      }),
    );
    assert.deepEqual(fdbOf(state), { [NODE_MAC.node1]: "198.18.0.1" });
    assert.deepEqual(
      state.routes.map((r) => r.dev),
      ["vxlan0"],
    );
  });

  it("IPIP pool: the node's IPIP tunnel, not its VXLAN one", () => {
    const state = desired(
      snapshot({
        ours: ourRoute({ poolType: "IPIP" }),
        tunnels: [
          tunnel("198.51.100.1", "node1", "vxlan", "VXLAN"),
          tunnel("198.51.100.2", "node1", "ipip", "IPIP"),
        ],
        workloads: [workload("198.51.100.0/26", "node1", "198.18.0.1")],
      }),
    );
    assert.deepEqual(fdbOf(state), { [NODE_MAC.node1]: "198.51.100.2" });
    assert.deepEqual(state.routes.at(-1), { dst: "198.51.100.2/32", via: POD_GATEWAY, dev: "eth0" });
  });

  it("WireGuard on our node: the remote node's WireGuard address wins, else its pool-type tunnel", () => {
    const state = desired(
      snapshot({
        ours: ourRoute(),
        tunnels: [
          tunnel("198.51.100.70", "gw-node", "wireguard", "VXLAN", {
            types: { ...NO_ROUTE_TYPES, localTunnel: true },
          }),
          tunnel("198.51.100.1", "node1", "vxlan", "VXLAN"),
          tunnel("198.51.100.3", "node1", "wireguard", "VXLAN"),
          tunnel("198.51.100.129", "node-a", "vxlan", "VXLAN"),
        ],
        workloads: [
          workload("198.51.100.0/26", "node1", "198.18.0.1"),
          workload("198.51.100.128/26", "node-a", "198.18.0.3"),
        ],
      }),
    );
    assert.deepEqual(fdbOf(state), {
      [NODE_MAC.node1]: "198.51.100.3",
      [NODE_MAC["node-a"]]: "198.51.100.129",
    });
  });

  it("without WireGuard on our node, a remote WireGuard tunnel is not used even in our pool", () => {
    const state = desired(
      snapshot({
        ours: ourRoute(),
        tunnels: [tunnel("198.51.100.3", "node1", "wireguard", "VXLAN")],
        workloads: [workload("198.51.100.0/26", "node1", "198.18.0.1")],
      }),
    );
    assert.deepEqual(fdbOf(state), { [NODE_MAC.node1]: "198.18.0.1" });
  });

  it("cross-subnet: same-subnet tunnels are skipped, other subnets keep theirs", () => {
    const snap = snapshot({
      ours: ourRoute({ sameSubnet: true }),
      tunnels: [
        tunnel("198.51.100.1", "node1", "vxlan", "VXLAN", { sameSubnet: true }),
        tunnel("198.51.100.129", "node-a", "vxlan", "VXLAN"),
      ],
      workloads: [
        workload("198.51.100.0/26", "node1", "198.18.0.1"),
        workload("198.51.100.128/26", "node-a", "203.0.113.3"),
      ],
    });
    assert.deepEqual(fdbOf(desired(snap)), {
      [NODE_MAC.node1]: "198.18.0.1",
      [NODE_MAC["node-a"]]: "198.51.100.129",
    });
    // Not in cross-subnet mode, the same-subnet tunnel is used.
    const plain = desired({ ...snap, ourRoute: ourRoute() });
    assert.deepEqual(fdbOf(plain), {
      [NODE_MAC.node1]: "198.51.100.1",
      [NODE_MAC["node-a"]]: "198.51.100.129",
    });
  });

  it("several tunnels of one kind: the lowest IPv4 address; IPv6 and non-/32 tunnels are ignored", () => {
    const state = desired(
      snapshot({
        ours: ourRoute(),
        tunnels: [
          tunnel("198.51.100.9", "node1", "vxlan", "VXLAN"),
          tunnel("198.51.100.4", "node1", "vxlan", "VXLAN"),
          tunnel("2001:db8::4", "node1", "vxlan", "VXLAN"),
          route("198.51.100.0/30", {
            dstNodeName: "node1",
            tunnelType: { ipip: false, vxlan: true, wireguard: false },
          }),
        ],
        workloads: [workload("198.51.100.0/26", "node1", "198.18.0.1")],
      }),
    );
    assert.deepEqual(fdbOf(state), { [NODE_MAC.node1]: "198.51.100.4" });
  });

  it("incomplete routes are skipped and counted; a node with only those gets nothing", () => {
    const state = desired(
      snapshot({
        ours: ourRoute(),
        tunnels: [tunnel("198.51.100.129", "node-a", "vxlan", "VXLAN")],
        workloads: [
          workload("198.51.100.0/26", "node1", "198.18.0.1"),
          workload("198.51.100.128/26", "node-a", ""),
          workload("198.51.100.192/26", "", "198.18.0.4"),
        ],
      }),
    );
    assert.equal(state.skipped.incomplete, 2);
    assert.deepEqual(Object.keys(fdbOf(state)), [NODE_MAC.node1]);
    assert.deepEqual(
      state.routes.map((r) => r.dst),
      ["198.51.100.0/26"],
    );
  });

  it("workloads on our own node get nothing", () => {
    const state = desired(
      snapshot({
        ours: ourRoute(),
        workloads: [workload("198.51.100.64/27", "gw-node", "198.18.0.2")],
      }),
    );
    assert.deepEqual([state.neighbours, state.fdb, state.routes], [[], [], []]);
    assert.equal(state.skipped.ownNode, 1);
  });

  it("IPv6 workload routes and non-IPv4 node addresses are unsupported on vxlan0", () => {
    const state = desired(
      snapshot({
        ours: ourRoute(),
        workloads: [
          workload("2001:db8:1::/122", "node1", "2001:db8::1"),
          workload("198.51.100.0/26", "node1", "2001:db8::1"),
        ],
      }),
    );
    assert.equal(state.skipped.unsupported, 2);
    assert.deepEqual(state.routes, []);
  });

  it("two nodes claiming one node IP: the first (by dst) keeps the neighbour, the other's routes are skipped", () => {
    const state = desired(
      snapshot({
        ours: ourRoute(),
        workloads: [
          workload("198.51.100.128/26", "node-a", "198.18.0.1"),
          workload("198.51.100.0/26", "node1", "198.18.0.1"),
        ],
      }),
    );
    assert.deepEqual(state.neighbours, [{ ip: "198.18.0.1", mac: NODE_MAC.node1 }]);
    assert.equal(state.skipped.conflicting, 1);
  });

  // Whether a route covers our IP is the route store's decision (sync-route-store.test.ts).
  it("without our route nothing is desired: no FDB entry could be right", () => {
    const state = desired(
      snapshot({
        tunnels: [tunnel("198.51.100.1", "node1", "vxlan", "VXLAN")],
        workloads: [workload("198.51.100.0/26", "node1", "198.18.0.1")],
      }),
    );
    assert.equal(state.ourRouteSeen, false);
    assert.deepEqual([state.neighbours, state.fdb, state.routes], [[], [], []]);
  });

  it("one kernel route written two ways: the first in dst order gets it, the other is conflicting", () => {
    const state = desired(
      snapshot({
        ours: ourRoute(),
        workloads: [
          workload("198.51.100.5/26", "node-a", "198.18.0.3"),
          workload("198.51.100.0/26", "node1", "198.18.0.1"),
        ],
      }),
    );
    assert.deepEqual(state.routes, [{ dst: "198.51.100.0/26", via: "198.18.0.1", dev: "vxlan0" }]);
    assert.deepEqual(state.neighbours, [{ ip: "198.18.0.1", mac: NODE_MAC.node1 }]);
    assert.equal(state.skipped.conflicting, 1);
    assert.equal(state.nodes, 2, "node-a still has its FDB entry: its node IP is its own");
  });

  it("CIDRs are normalised the way the kernel stores them", () => {
    const state = desired(
      snapshot({ ours: ourRoute(), workloads: [workload("198.51.100.5/26", "node1", "198.18.0.1")] }),
    );
    assert.equal(state.routes[0]?.dst, "198.51.100.0/26");
  });

  it("output is sorted and independent of input order and of how the route types were encoded", () => {
    const tunnels = [
      tunnel("198.51.100.129", "node-a", "vxlan", "VXLAN"),
      tunnel("198.51.100.1", "node1", "vxlan", "VXLAN"),
    ];
    const workloads = [
      workload("198.51.100.128/26", "node-a", "198.18.0.3"),
      workload("198.51.100.0/26", "node1", "198.18.0.1"),
      workload("198.51.100.32/27", "client-node", "198.18.0.10"),
    ];
    const a = desired(snapshot({ ours: ourRoute(), tunnels, workloads }));
    // A bitmap sender may set several type bits; the store has already classified the route.
    const bitmap = workloads.map((w) => ({ ...w, types: { ...w.types, remoteHost: true } }));
    const b = desired(
      snapshot({ ours: ourRoute(), tunnels: tunnels.reverse(), workloads: bitmap.reverse() }),
    );
    assert.deepEqual(a, b);
    assert.deepEqual(
      a.neighbours.map((n) => n.ip),
      ["198.18.0.1", "198.18.0.3", "198.18.0.10"],
    );
  });
});

describe("diff against what the kernel holds of ours", () => {
  const two = snapshot({
    ours: ourRoute(),
    tunnels: [
      tunnel("198.51.100.1", "node1", "vxlan", "VXLAN"),
      tunnel("198.51.100.129", "node-a", "vxlan", "VXLAN"),
    ],
    workloads: [
      workload("198.51.100.0/26", "node1", "198.18.0.1"),
      workload("198.51.100.128/26", "node-a", "198.18.0.3"),
    ],
  });

  it("converged state: no changes", () => {
    const state = desired(two);
    assert.equal(changeCount(diff(state, state)), 0);
  });

  it("a node that leaves: its neighbour, FDB entry, route and exit route are removed, nothing else", () => {
    const before = desired(two);
    const after = desired({ ...two, remoteWorkloads: new Map([...two.remoteWorkloads].slice(0, 1)) });
    const changes = diff(after, before);
    assert.deepEqual(changes.neighbours, {
      replace: [],
      remove: [{ ip: "198.18.0.3", mac: NODE_MAC["node-a"] }],
    });
    assert.deepEqual(changes.fdb, {
      replace: [],
      remove: [{ mac: NODE_MAC["node-a"], dst: "198.51.100.129", vni: VNI }],
    });
    assert.deepEqual(
      changes.routes.remove.map((r) => r.dst),
      ["198.51.100.128/26", "198.51.100.129/32"],
    );
    assert.deepEqual(changes.routes.replace, []);
  });

  it("a changed tunnel address replaces the FDB entry and swaps the exit route", () => {
    const before = desired(two);
    const moved = new Map(two.tunnels);
    moved.delete("198.51.100.1/32");
    moved.set("198.51.100.2/32", tunnel("198.51.100.2", "node1", "vxlan", "VXLAN"));
    const changes = diff(desired({ ...two, tunnels: moved }), before);
    assert.deepEqual(changes.fdb.replace, [{ mac: NODE_MAC.node1, dst: "198.51.100.2", vni: VNI }]);
    assert.deepEqual(
      changes.routes.replace.map((r) => r.dst),
      ["198.51.100.2/32"],
    );
    assert.deepEqual(
      changes.routes.remove.map((r) => r.dst),
      ["198.51.100.1/32"],
    );
  });
});
