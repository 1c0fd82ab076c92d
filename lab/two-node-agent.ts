// The node agent's side of the two-node lab: the routes Felix on the gateway's
// node sends the gateway (SPEC §5), written as fake-agent routes, in either
// encoding of the route type (field 1 enum or field 12 bitmap). Two more remote
// nodes (node-c, node-d) exist only as routes: the end-to-end test and the demo
// send one from one agent stream and the other from the next, to show that a
// resync removes what the restarted agent no longer sends and adds what is new.
import { setTimeout as sleep } from "node:timers/promises";
import { isDeepStrictEqual } from "node:util";
import { nodeMac } from "../src/pod-network/mac.js";
import type { AgentStream, FakeRoute } from "./fake-agent.js";
import { TWO_NODE, type ProgrammedEntries, type TwoNodeLab } from "./two-node-lab.js";

export type RouteEncoding = "bitmap" | "enum";

/** Remote nodes that exist only in the agent's routes (nothing sends from them). */
export const ROUTE_ONLY_NODES = {
  nodeC: { name: "node-c", ip: "198.18.0.3", block: "198.51.100.128/26" },
  nodeD: { name: "node-d", ip: "198.18.0.4", block: "198.51.100.192/26" },
} as const;

export interface TwoNodeRoutes {
  /** LOCAL_WORKLOAD: the gateway pod's block on the gateway node (tells the gateway its node and pool type). */
  readonly ours: FakeRoute;
  /** REMOTE_TUNNEL: the client node's VXLAN tunnel address, where its VXLAN packets come from. */
  readonly clientTunnel: FakeRoute;
  /** REMOTE_WORKLOAD: the client pod's block on the client node. */
  readonly clientPod: FakeRoute;
  readonly nodeC: FakeRoute;
  readonly nodeD: FakeRoute;
}

/** The lab's routes as the node agent sends them, every one in `encoding`. */
export function twoNodeRoutes(encoding: RouteEncoding = "bitmap"): TwoNodeRoutes {
  const { clientNode, gatewayNode } = TWO_NODE;
  const common = { encoding, poolType: "VXLAN", natOutgoing: true } as const;
  const remoteWorkload = (dst: string, node: { name: string; ip: string }): FakeRoute => ({
    ...common,
    dst,
    types: ["remoteWorkload"],
    dstNodeName: node.name,
    dstNodeIp: node.ip,
  });
  return {
    ours: {
      ...common,
      dst: TWO_NODE.gatewayPod.block,
      types: ["localWorkload"],
      dstNodeName: gatewayNode.name,
      dstNodeIp: gatewayNode.underlay,
      localWorkload: true,
    },
    clientTunnel: {
      ...common,
      dst: `${clientNode.tunnel}/32`,
      types: ["remoteTunnel"],
      dstNodeName: clientNode.name,
      dstNodeIp: clientNode.underlay,
      tunnelType: { vxlan: true },
    },
    clientPod: remoteWorkload(TWO_NODE.clientPod.block, { name: clientNode.name, ip: clientNode.underlay }),
    nodeC: remoteWorkload(ROUTE_ONLY_NODES.nodeC.block, ROUTE_ONLY_NODES.nodeC),
    nodeD: remoteWorkload(ROUTE_ONLY_NODES.nodeD.block, ROUTE_ONLY_NODES.nodeD),
  };
}

/** Sends `routes` on `stream`, then InSync unless told to hold it back. */
export function sendRoutes(
  stream: AgentStream,
  routes: readonly FakeRoute[],
  options: { readonly inSync?: boolean } = {},
): void {
  for (const route of routes) stream.route(route);
  if (options.inSync ?? true) stream.inSync();
}

/** One line per route, as a person reads it: `remoteWorkload 198.51.100.0/26 on client-node (198.18.0.1)`. */
export function describeRoute(route: FakeRoute): string {
  const node = route.dstNodeName ? ` on ${route.dstNodeName} (${route.dstNodeIp ?? ""})` : "";
  return `${route.types.join("+")} ${route.dst}${node}`;
}

/** Which remote workload routes the agent's current view holds. */
export interface RemoteWorkloads {
  readonly clientPod: boolean;
  readonly nodeC?: boolean;
  readonly nodeD?: boolean;
}

/**
 * What the gateway pod's kernel should hold for that view (SPEC §5.1), each list
 * sorted, lines as `ip`/`bridge` print them: per remote node a permanent
 * neighbour entry for its node IP, one FDB entry for its node MAC and a route
 * per workload block via the node IP on vxlan0. The client node has a VXLAN
 * tunnel of the gateway's pool type, so its FDB entry names the tunnel address
 * and an exit route keeps that address out of vxlan0; node-c and node-d have
 * none, so theirs name the node IP.
 */
export function expectedProgrammed(view: RemoteWorkloads): ProgrammedEntries {
  const { clientNode } = TWO_NODE;
  const nodes = [
    ...(view.clientPod
      ? [{ ...clientNode, ip: clientNode.underlay, block: TWO_NODE.clientPod.block, fdb: clientNode.tunnel }]
      : []),
    ...(view.nodeC ? [{ ...ROUTE_ONLY_NODES.nodeC, fdb: ROUTE_ONLY_NODES.nodeC.ip }] : []),
    ...(view.nodeD ? [{ ...ROUTE_ONLY_NODES.nodeD, fdb: ROUTE_ONLY_NODES.nodeD.ip }] : []),
  ];
  const exitRoutes = view.clientPod
    ? [`${clientNode.tunnel} via ${TWO_NODE.podGateway} dev eth0 onlink`]
    : [];
  // `ip route show proto 0x45` leaves out the protocol it was asked for.
  return {
    routes: [...nodes.map((n) => `${n.block} via ${n.ip} dev vxlan0 onlink`), ...exitRoutes].sort(),
    neighbours: nodes.map((n) => `${n.ip} lladdr ${nodeMac(n.name)} PERMANENT`).sort(),
    fdb: nodes.map((n) => `${nodeMac(n.name)} dst ${n.fdb} self permanent`).sort(),
  };
}

/**
 * Polls the gateway pod's kernel until its return path is `want` (a reconcile
 * pass follows each change); resolves with the last read, whether it matched
 * and when it did.
 */
export async function awaitProgrammed(
  lab: Pick<TwoNodeLab, "programmed">,
  want: ProgrammedEntries,
  timeoutMs = 3_000,
): Promise<{ readonly entries: ProgrammedEntries; readonly matched: boolean; readonly at: number }> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    const entries = lab.programmed();
    const matched = isDeepStrictEqual(entries, want);
    if (matched || performance.now() > until) return { entries, matched, at: performance.now() };
    await sleep(20);
  }
}
