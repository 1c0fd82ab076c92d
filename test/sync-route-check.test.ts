// Route validation (src/sync/route-check.ts): a route the node agent should
// never send never becomes a kernel entry. Checked by example for each reason,
// and on random routes through the route store and the desired state, which is
// exactly what a reconcile pass writes to the kernel.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import fc from "fast-check";

import { plainRoute } from "../lab/routes.js";
import { desiredState } from "../src/dataplane/desired.js";
import { cidrContains, parseIpv4Cidr } from "../src/ip/cidr.js";
import { formatIpv4, parseIpv4 } from "../src/ip/ipv4.js";
import { isNodeMac } from "../src/pod-network/mac.js";
import { POD_DEVICE, VXLAN_DEVICE } from "../src/pod-network/devices.js";
import { checkRoute, isNodeIpv4, type RejectReason } from "../src/sync/route-check.js";
import { RouteStore } from "../src/sync/route-store.js";
import { NO_ROUTE_TYPES, type Route, type SyncEvent } from "../src/sync/types.js";

const OUR_IP = "198.51.100.66";
const OUR = parseIpv4(OUR_IP)!;
const POD_GATEWAY = "169.254.1.1";

const base = (fields: Partial<Route>): Route =>
  plainRoute("198.19.0.0/26", {
    types: { ...NO_ROUTE_TYPES, remoteWorkload: true },
    dstNodeName: "node-b",
    dstNodeIp: "198.18.0.2",
    ...fields,
  });
const tunnel = (dst: string, fields: Partial<Route> = {}): Route =>
  base({
    dst,
    types: { ...NO_ROUTE_TYPES, remoteTunnel: true },
    tunnelType: { ipip: false, vxlan: true, wireguard: false },
    ...fields,
  });
const ours = base({
  dst: "198.51.100.64/26",
  types: { ...NO_ROUTE_TYPES, localWorkload: true },
  dstNodeName: "gw-node",
});

const reasonOf = (route: Route): RejectReason | "ok" => {
  const checked = checkRoute(route, OUR);
  return checked.ok ? "ok" : checked.reason;
};

describe("route check: what a node agent must never get into the kernel", () => {
  it("rejects each kind of bad route with its reason", () => {
    const cases: [Route, RejectReason | "ok"][] = [
      [base({}), "ok"],
      [base({ dst: "300.1.1.0/26" }), "invalid_dst"],
      [base({ dst: "198.19.0.0/33" }), "invalid_dst"],
      [base({ dst: "garbage" }), "invalid_dst"],
      [base({ dst: "010.1.1.0/24" }), "invalid_dst"],
      [base({ dst: "0.0.0.0/0" }), "default_route"],
      [base({ dst: "::/0" }), "default_route"],
      [base({ dst: `${OUR_IP}/32` }), "covers_gateway"],
      [base({ dst: "198.51.100.0/24" }), "covers_gateway"],
      [tunnel(`${OUR_IP}/32`), "covers_gateway"],
      [tunnel("224.0.0.1/32"), "invalid_dst"],
      [base({ dstNodeIp: "198.18.0.300" }), "invalid_node_ip"],
      [base({ dstNodeIp: "224.0.0.5" }), "invalid_node_ip"],
      [base({ dstNodeIp: "127.0.0.1" }), "invalid_node_ip"],
      [base({ dstNodeIp: "0.0.0.0" }), "invalid_node_ip"],
      [base({ dstNodeIp: "255.255.255.255" }), "invalid_node_ip"],
      [base({ dstNodeIp: OUR_IP }), "invalid_node_ip"],
      [base({ dstNodeIp: "ff02::1" }), "invalid_node_ip"],
      [base({ dstNodeName: "n".repeat(10 * 1024) }), "invalid_node_name"],
      [base({ dstNodeName: "node b" }), "invalid_node_name"],
      [base({ dstNodeName: "", dstNodeIp: "" }), "ok"], // incomplete: kept, completed later
      [ours, "ok"], // our own block, as a local workload, is what tells the gateway its node
      [base({ dst: "2001:db8::/64", dstNodeIp: "2001:db8::1" }), "ok"],
    ];
    for (const [route, want] of cases)
      assert.equal(
        reasonOf(route),
        want,
        `${route.dst.slice(0, 20)} ${route.dstNodeIp} ${route.dstNodeName.slice(0, 20)}`,
      );
  });

  it("keeps a 10 KiB node name out of the detail it logs", () => {
    const checked = checkRoute(base({ dstNodeName: "n".repeat(10 * 1024) }), OUR);
    assert.ok(!checked.ok && checked.detail.length < 200, checked.ok ? "" : checked.detail);
  });

  it("counts rejections by reason, and a rejected update leaves what its dst had", () => {
    const store = new RouteStore(OUR_IP);
    const update = (route: Route): SyncEvent => ({ kind: "routeUpdate", sequence: 0n, route });
    store.apply(update(ours));
    store.apply(update(base({})));
    store.apply({ kind: "inSync", sequence: 0n });
    assert.equal(store.apply(update(base({ dstNodeIp: "224.0.0.5" }))), false);
    assert.equal(store.apply(update({ ...ours, types: { ...NO_ROUTE_TYPES, remoteWorkload: true } })), false);
    assert.equal(store.view?.remoteWorkloads.get("198.19.0.0/26")?.dstNodeIp, "198.18.0.2");
    assert.equal(store.view?.ourRoute?.dst, ours.dst, "a bad update cannot take our route away");
    assert.equal(store.rejections.get("invalid_node_ip"), 1);
    assert.equal(store.rejections.get("covers_gateway"), 1);
  });

  it("stops keeping new routes at the limit, and says so", () => {
    const store = new RouteStore(OUR_IP, { maxRoutes: 3 });
    for (let i = 0; i < 5; i++) {
      store.apply({ kind: "routeUpdate", sequence: 0n, route: base({ dst: `198.19.${i}.0/26` }) });
    }
    store.apply({ kind: "inSync", sequence: 0n });
    assert.equal(store.view?.remoteWorkloads.size, 3);
    assert.equal(store.rejections.get("route_limit"), 2);
  });
});

// Random routes: addresses anywhere (our own, our block, multicast, loopback,
// broadcast, zero-padded, out of range), prefixes 0..40, names of any length.
const octet = fc.oneof(fc.integer({ min: 0, max: 260 }).map(String), fc.constantFrom("010", "00", "1x"));
const ipv4Text = fc.oneof(
  fc.constantFrom(
    OUR_IP,
    "0.0.0.0",
    "127.0.0.1",
    "224.0.0.5",
    "255.255.255.255",
    "198.51.100.65",
    "198.18.0.2",
    "198.18.0.3",
  ),
  fc.integer({ min: 0, max: 0xffffffff }).map(formatIpv4),
  fc.tuple(octet, octet, octet, octet).map((parts) => parts.join(".")),
);
const dstText = fc.oneof(
  fc.tuple(ipv4Text, fc.integer({ min: 0, max: 40 })).map(([a, l]) => `${a}/${l}`),
  ipv4Text,
  fc.constantFrom("::/0", "2001:db8::/64", "198.51.100.64/26", "198.51.100.0/24", "garbage", ""),
  fc.string({ maxLength: 20 }),
);
const nodeName = fc.oneof(
  fc.constantFrom("gw-node", "node-b", "node-c", ""),
  fc.string({ maxLength: 12 }),
  fc.integer({ min: 200, max: 12_000 }).map((n) => "n".repeat(n)),
);
const typeSet = fc.record({
  remoteWorkload: fc.boolean(),
  remoteHost: fc.boolean(),
  localWorkload: fc.boolean(),
  localHost: fc.boolean(),
  remoteTunnel: fc.boolean(),
  localTunnel: fc.boolean(),
});
const randomRoute = fc.record({
  dst: dstText,
  types: typeSet,
  poolType: fc.constantFrom("NONE", "NO_ENCAP", "VXLAN", "IPIP" as const),
  dstNodeName: nodeName,
  dstNodeIp: fc.oneof(ipv4Text, fc.constantFrom("", "2001:db8::1", "ff02::1", "not-an-ip")),
  sameSubnet: fc.boolean(),
  natOutgoing: fc.boolean(),
  localWorkload: fc.boolean(),
  tunnelType: fc.option(fc.record({ ipip: fc.boolean(), vxlan: fc.boolean(), wireguard: fc.boolean() }), {
    nil: undefined,
  }),
  borrowed: fc.boolean(),
});
const event = fc.oneof(
  {
    weight: 6,
    arbitrary: randomRoute.map((route): SyncEvent => ({
      kind: "routeUpdate",
      sequence: 0n,
      route: route,
    })),
  },
  { weight: 1, arbitrary: dstText.map((dst): SyncEvent => ({ kind: "routeRemove", sequence: 0n, dst })) },
);

/** A unicast IPv4 a node may have: what a neighbour, an FDB entry or a next hop may name. */
const nodeAddress = (text: string): boolean => {
  const n = parseIpv4(text);
  return n !== undefined && formatIpv4(n) === text && isNodeIpv4(n, OUR);
};

describe("route check on random routes", () => {
  it("never yields a kernel entry outside the allowed set", () => {
    fc.assert(
      fc.property(fc.array(event, { maxLength: 30 }), (events) => {
        const store = new RouteStore(OUR_IP);
        // Our block always arrives, so that the desired state is not held back.
        for (const e of [{ kind: "routeUpdate", sequence: 0n, route: ours } as SyncEvent, ...events])
          store.apply(e);
        store.apply({ kind: "inSync", sequence: 0n });
        const desired = desiredState({ view: store.view!, vni: 4097, podGateway: POD_GATEWAY });
        const ourBytes = Uint8Array.of(198, 51, 100, 66);
        for (const route of desired.routes) {
          const cidr = parseIpv4Cidr(route.dst);
          assert.ok(cidr && cidr.text === route.dst && cidr.length > 0, `route dst ${route.dst}`);
          assert.ok(!cidrContains(cidr, ourBytes), `route ${route.dst} covers the gateway`);
          if (route.dev === VXLAN_DEVICE) assert.ok(nodeAddress(route.via), `route via ${route.via}`);
          else assert.deepEqual([route.dev, route.via, cidr.length], [POD_DEVICE, POD_GATEWAY, 32]);
        }
        for (const n of desired.neighbours)
          assert.ok(nodeAddress(n.ip) && isNodeMac(n.mac), `neighbour ${n.ip}`);
        for (const f of desired.fdb) assert.ok(nodeAddress(f.dst) && isNodeMac(f.mac), `fdb ${f.dst}`);
      }),
      { numRuns: 3_000 },
    );
  });
});
