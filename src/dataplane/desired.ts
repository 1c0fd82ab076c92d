// The return path the pod should have (SPEC §5.1), computed from the route
// store's view alone: pure, so every rule below is pinned by plain-data tests.
//
// Choices where the contract is silent:
// * "Our node" is the dst_node_name of our LOCAL_WORKLOAD route; it has WireGuard
//   when any tunnel route with that node name has tunnel_type.wireguard.
// * Without our route (not sent yet, or none covers our IPv4: the route store
//   decides that, once, as routes arrive) nothing is
//   known about our node, pool type or cross-subnet mode, so no FDB entry can be
//   right: nothing is desired (ourRouteSeen false), and the reconciler leaves the
//   kernel as it is rather than apply that. A wrong FDB entry is worse than a
//   stale one: with learning on (as SPEC §3 creates vxlan0) the kernel drops
//   every packet whose outer source disagrees with the sender's permanent FDB
//   entry, so the chosen address must be the one the node really sends from.
// * Tunnel choice per remote node, first that yields a candidate: its WireGuard
//   tunnels when our node has WireGuard; else its non-WireGuard tunnels whose pool
//   type equals ours (never for pool type NONE), skipping same_subnet ones in
//   cross-subnet mode, those whose tunnel type matches the pool's encapsulation
//   first; else none (FDB to the node IP). The cross-subnet skip applies to the
//   encapsulation tunnels only: WireGuard encrypts within a subnet too. Several
//   candidates of equal rank: the lowest address wins, so the choice is stable.
// * vxlan0 is an IPv4 tunnel (`dev eth0`, IPv4 node MAC identity): IPv6 workload
//   routes, non-IPv4 node IPs and tunnel routes that are not a single IPv4 address
//   are left out and counted as unsupported.
// * A node's FDB entry without a tunnel uses the node IP of its first workload
//   route (by dst); a node IP claimed by two nodes keeps the first node's
//   neighbour, and the other node's routes are skipped as conflicting, as is a
//   workload route whose dst equals a tunnel's exit route.
import type { Ipv4Cidr } from "../ip/cidr.js";
import { formatIpv4 } from "../ip/ipv4.js";
import { POD_DEVICE, VXLAN_DEVICE } from "../pod-network/devices.js";
import { nodeMac } from "../pod-network/mac.js";
import type { KeptRoute, PoolType, RouteView } from "../sync/types.js";
import { type DesiredState, type FdbEntry, type Neighbour, type ProgrammedRoute } from "./types.js";

export interface DesiredInput {
  readonly view: RouteView;
  /** VNI of vxlan0 and of every FDB entry. */
  readonly vni: number;
  /** The pod's IPv4 default gateway: the next hop of exit routes (Calico: 169.254.1.1). */
  readonly podGateway: string;
}

interface Workload {
  readonly route: KeptRoute;
  readonly cidr: Ipv4Cidr;
  readonly nodeIp: number;
}

export interface Tunnel {
  readonly address: number;
  readonly route: KeptRoute;
}

const ENCAPSULATION: Partial<Record<PoolType, "ipip" | "vxlan">> = { IPIP: "ipip", VXLAN: "vxlan" };

/** Sorts by a numeric key computed once per item (10,000 routes: a comparator that parses costs 100+ ms). */
function sortBy<T>(items: readonly T[], key: (item: T) => number): T[] {
  return items
    .map((item) => ({ item, k: key(item) }))
    .sort((a, b) => a.k - b.k)
    .map((e) => e.item);
}

/** Address order, then prefix length. */
export const cidrKey = (c: Ipv4Cidr): number => c.network * 64 + c.length;

/** Dst order (see above): true when workload route `a` comes before `b`. */
export const comesBefore = (a: { order: number; dst: string }, b: { order: number; dst: string }): boolean =>
  a.order < b.order || (a.order === b.order && a.dst < b.dst);

export function desiredState(input: DesiredInput): DesiredState {
  const ours = input.view.ourRoute;
  const skipped = { incomplete: 0, unsupported: 0, ownNode: 0, conflicting: 0 };
  if (ours === undefined)
    return { neighbours: [], fdb: [], routes: [], skipped, ourRouteSeen: false, nodes: 0 };

  const candidates: Workload[] = [];
  for (const route of input.view.remoteWorkloads.values()) {
    if (route.dstNodeName === "" || route.dstNodeIp === "") {
      skipped.incomplete++;
    } else if (route.dstNodeName === ours.dstNodeName) {
      skipped.ownNode++;
    } else {
      const { cidr, nodeIpv4: nodeIp } = route;
      if (cidr.family !== 4 || nodeIp === undefined) skipped.unsupported++;
      else candidates.push({ route, cidr, nodeIp });
    }
  }

  // In dst order, each node IP belongs to the first node that names it.
  const workloads: Workload[] = [];
  const neighbourOwner = new Map<number, string>();
  const nodeIps = new Map<string, number>();
  const ordered = candidates
    .map((w) => ({ w, order: cidrKey(w.cidr), dst: w.route.dst }))
    .sort((a, b) => (comesBefore(a, b) ? -1 : comesBefore(b, a) ? 1 : 0))
    .map((e) => e.w);
  for (const w of ordered) {
    const node = w.route.dstNodeName;
    const owner = neighbourOwner.get(w.nodeIp) ?? node;
    if (owner !== node) {
      skipped.conflicting++;
      continue;
    }
    neighbourOwner.set(w.nodeIp, node);
    if (!nodeIps.has(node)) nodeIps.set(node, w.nodeIp);
    workloads.push(w);
  }

  const tunnelsByNode = groupTunnels(input.view.tunnels);
  const ourWireguard = (tunnelsByNode.get(ours.dstNodeName) ?? []).some((t) => t.route.tunnelType?.wireguard);

  const macs = new Map<string, string>();
  const fdb: FdbEntry[] = [];
  const exitRoutes = new Map<number, ProgrammedRoute>();
  for (const [node, nodeIp] of nodeIps) {
    const mac = nodeMac(node);
    macs.set(node, mac);
    const tunnel = chooseTunnel(tunnelsByNode.get(node) ?? [], ours, ourWireguard);
    fdb.push({ mac, dst: formatIpv4(tunnel?.address ?? nodeIp), vni: input.vni });
    if (tunnel !== undefined) {
      const dst = `${formatIpv4(tunnel.address)}/32`;
      exitRoutes.set(tunnel.address, { dst, via: input.podGateway, dev: POD_DEVICE });
    }
  }
  const exitDsts = new Set([...exitRoutes.values()].map((r) => r.dst));

  const routes: ProgrammedRoute[] = [];
  const routed = new Set<string>();
  const neighbours = new Map<number, Neighbour>();
  for (const w of workloads) {
    const dst = w.cidr.text;
    if (exitDsts.has(dst) || routed.has(dst)) {
      skipped.conflicting++;
      continue;
    }
    routed.add(dst);
    // parseIpv4 accepted it, so it is already the canonical dotted quad.
    const via = w.route.dstNodeIp;
    routes.push({ dst, via, dev: VXLAN_DEVICE });
    if (!neighbours.has(w.nodeIp)) neighbours.set(w.nodeIp, { ip: via, mac: macs.get(w.route.dstNodeName)! });
  }

  return {
    neighbours: sortBy([...neighbours], ([ip]) => ip).map(([, n]) => n),
    fdb: fdb.sort((a, b) => (a.mac < b.mac ? -1 : a.mac > b.mac ? 1 : 0)),
    routes: [...routes, ...sortBy([...exitRoutes], ([address]) => address).map(([, r]) => r)],
    skipped,
    ourRouteSeen: true,
    nodes: fdb.length,
  };
}

/** Tunnel routes with a single IPv4 address, by node name. */
function groupTunnels(tunnels: ReadonlyMap<string, KeptRoute>): Map<string, Tunnel[]> {
  const byNode = new Map<string, Tunnel[]>();
  for (const route of tunnels.values()) {
    const { cidr } = route;
    if (cidr.family !== 4 || cidr.length !== 32 || route.tunnelType === undefined) continue;
    const list = byNode.get(route.dstNodeName) ?? [];
    list.push({ address: cidr.network, route });
    byNode.set(route.dstNodeName, list);
  }
  return byNode;
}

/** The tunnel a remote node sends from, given our route and whether our node has WireGuard (see above). */
export function chooseTunnel(
  tunnels: readonly Tunnel[],
  ours: KeptRoute,
  ourWireguard: boolean,
): Tunnel | undefined {
  const lowest = (list: readonly Tunnel[]): Tunnel | undefined => sortBy(list, (t) => t.address)[0];
  if (ourWireguard) {
    const wireguard = lowest(tunnels.filter((t) => t.route.tunnelType?.wireguard));
    if (wireguard !== undefined) return wireguard;
  }
  if (ours.poolType === "NONE") return undefined;
  const eligible = tunnels.filter(
    (t) =>
      !t.route.tunnelType?.wireguard &&
      t.route.poolType === ours.poolType &&
      !(ours.sameSubnet && t.route.sameSubnet),
  );
  const encapsulation = ENCAPSULATION[ours.poolType];
  const matching =
    encapsulation === undefined ? [] : eligible.filter((t) => t.route.tunnelType?.[encapsulation]);
  return lowest(matching) ?? lowest(eligible);
}
