// The desired return path kept up to date change by change: the rules of
// desired.ts (which computes the whole view at once and is what this is tested
// against), with indexes so that a pass costs in proportion to what changed.
// During a burst of 30,000 messages a pass that recomputed the whole view and
// diffed it took hundreds of milliseconds of event loop per pass.
//
// What depends on what, and so what a changed dst makes dirty:
// * a node IP's owner is the node of the first workload (dst order) naming it;
// * a workload is routed when its node owns its node IP, no exit route sits on
//   its kernel dst and no earlier workload has that kernel dst;
// * a node has an FDB entry when it has a workload whose node IP it owns: to
//   its chosen tunnel, else to the node IP of the first such workload; a chosen
//   tunnel also gives an exit route;
// * a node IP has a neighbour entry when a routed workload names it.
// A changed workload dirties its node IP, its node and its kernel dst; a
// changed tunnel its node; a new owner every workload of that node IP; a moved
// exit route the kernel dsts it leaves and takes. Our route, the pod gateway or
// a new complete view (InSync) change everything: rebuilt from the whole view.
import { formatIpv4 } from "../ip/ipv4.js";
import { POD_DEVICE, VXLAN_DEVICE } from "../pod-network/devices.js";
import { nodeMac } from "../pod-network/mac.js";
import type { KeptRoute, RouteChanges, RouteView } from "../sync/types.js";
import { chooseTunnel, cidrKey, comesBefore, type Tunnel } from "./desired.js";
import { addTo, Index, removeFrom } from "./index-map.js";
import type {
  DesiredCounts,
  FdbEntry,
  KeyedEntries,
  Neighbour,
  ProgrammedRoute,
  SkipReason,
  TouchedKeys,
} from "./types.js";

/** A remote workload route that may be programmed: complete, IPv4, on another node. */
interface Candidate {
  readonly route: KeptRoute;
  /** The store's key (as the agent wrote it). */
  readonly dst: string;
  /** The kernel's key: the normalised CIDR. */
  readonly key: string;
  /** cidrKey of the CIDR: with dst, the dst order. */
  readonly order: number;
  readonly node: string;
  readonly nodeIp: number;
  routed: boolean;
}

interface NodeEntry {
  readonly mac: string;
  /** Kernel dst of its exit route, when it sends from a tunnel. */
  readonly exitKey: string | undefined;
}

interface Touched {
  readonly routes: Set<string>;
  readonly neighbours: Set<string>;
  readonly fdb: Set<string>;
}

interface Dirty {
  readonly nodeIps: Set<number>;
  readonly nodes: Set<string>;
  readonly keys: Set<string>;
}

const first = (
  candidates: Iterable<Candidate>,
  eligible: (c: Candidate) => boolean,
): Candidate | undefined => {
  let best: Candidate | undefined;
  for (const c of candidates) if (eligible(c) && (best === undefined || comesBefore(c, best))) best = c;
  return best;
};

const usableTunnel = (route: KeptRoute | undefined): route is KeptRoute =>
  route !== undefined &&
  route.cidr.family === 4 &&
  route.cidr.length === 32 &&
  route.tunnelType !== undefined;

export class IncrementalDesired implements KeyedEntries {
  readonly routes = new Map<string, ProgrammedRoute>();
  readonly neighbours = new Map<string, Neighbour>();
  readonly fdb = new Map<string, FdbEntry>();

  private ours: KeptRoute | undefined;
  private podGateway = "";
  private ourWireguard = false;
  /** Every remote workload absorbed, by the store's dst. */
  private readonly workloads = new Map<string, KeptRoute>();
  private readonly candidates = new Map<string, Candidate>();
  private readonly byNodeIp = new Index<number, Candidate>();
  private readonly byNode = new Index<string, Candidate>();
  private readonly byKey = new Index<string, Candidate>();
  /** Usable tunnels (an IPv4 /32 with a tunnel type), by the store's dst. */
  private readonly tunnels = new Map<string, Tunnel>();
  private readonly tunnelsByNode = new Index<string, Tunnel>();
  private readonly owners = new Map<number, string>();
  /** Nodes with an FDB entry. */
  private readonly nodes = new Map<string, NodeEntry>();
  /** Exit route dsts, with the nodes whose chosen tunnel it is. */
  private readonly exits = new Map<string, Set<string>>();
  private readonly skipped = { incomplete: 0, unsupported: 0, ownNode: 0 };
  private routed = 0;

  constructor(private readonly vni: number) {}

  get counts(): DesiredCounts {
    return {
      neighbours: this.neighbours.size,
      fdb: this.fdb.size,
      routes: this.routes.size - this.exits.size,
      exitRoutes: this.exits.size,
      nodes: this.nodes.size,
      skipped: { ...this.skipped, conflicting: this.candidates.size - this.routed },
    };
  }

  /**
   * Brings the desired entries up to date with `view`, whose route of ours is
   * `ours`, given what changed since the last update; says which keys may have
   * changed, or "all" after a rebuild.
   */
  update(ours: KeptRoute, view: RouteView, changes: RouteChanges, podGateway: string): TouchedKeys | "all" {
    if (changes.full || ours !== this.ours || podGateway !== this.podGateway) {
      this.rebuild(view, ours, podGateway);
      return "all";
    }
    const dirty: Dirty = { nodeIps: new Set(), nodes: new Set(), keys: new Set() };
    for (const dst of changes.dsts) {
      this.absorbWorkload(dst, view.remoteWorkloads.get(dst), dirty);
      this.absorbTunnel(dst, view.tunnels.get(dst), dirty);
    }
    const touched: Touched = { routes: new Set(), neighbours: new Set(), fdb: new Set() };
    this.settle(dirty, touched);
    return touched;
  }

  /** Without our route nothing is known (desired.ts): the next update rebuilds from the whole view. */
  forget(): void {
    this.ours = undefined;
  }

  private rebuild(view: RouteView, ours: KeptRoute, podGateway: string): void {
    for (const map of [this.routes, this.neighbours, this.fdb, this.workloads, this.candidates]) map.clear();
    for (const map of [this.byNodeIp, this.byNode, this.byKey, this.tunnels, this.tunnelsByNode]) map.clear();
    for (const map of [this.owners, this.nodes, this.exits]) map.clear();
    Object.assign(this.skipped, { incomplete: 0, unsupported: 0, ownNode: 0 });
    this.routed = 0;
    this.ourWireguard = false;
    this.ours = ours;
    this.podGateway = podGateway;
    const dirty: Dirty = { nodeIps: new Set(), nodes: new Set(), keys: new Set() };
    for (const [dst, route] of view.remoteWorkloads) this.absorbWorkload(dst, route, dirty);
    for (const [dst, route] of view.tunnels) this.absorbTunnel(dst, route, dirty);
    this.settle(dirty, undefined);
  }

  /** A candidate, or why the route is left out (desired.ts has the same order of checks). */
  private classify(dst: string, route: KeptRoute): Candidate | Exclude<SkipReason, "conflicting"> {
    if (route.dstNodeName === "" || route.dstNodeIp === "") return "incomplete";
    if (route.dstNodeName === this.ours?.dstNodeName) return "ownNode";
    const { cidr, nodeIpv4 } = route;
    if (cidr.family !== 4 || nodeIpv4 === undefined) return "unsupported";
    const node = route.dstNodeName;
    return { route, dst, key: cidr.text, order: cidrKey(cidr), node, nodeIp: nodeIpv4, routed: false };
  }

  private absorbWorkload(dst: string, route: KeptRoute | undefined, dirty: Dirty): void {
    const old = this.workloads.get(dst);
    // The store replaces a route's object when, and only when, the route changes.
    if (old === route) return;
    if (old !== undefined) {
      this.workloads.delete(dst);
      const c = this.candidates.get(dst);
      if (c === undefined) {
        // Not a candidate: with our route unchanged, classify gives the reason it was counted under.
        this.skipped[this.classify(dst, old) as Exclude<SkipReason, "conflicting">]--;
      } else {
        this.candidates.delete(dst);
        this.byNodeIp.delete(c.nodeIp, c);
        this.byNode.delete(c.node, c);
        this.byKey.delete(c.key, c);
        if (c.routed) this.routed--;
        dirty.nodeIps.add(c.nodeIp);
        dirty.nodes.add(c.node);
        dirty.keys.add(c.key);
      }
    }
    if (route === undefined) return;
    this.workloads.set(dst, route);
    const c = this.classify(dst, route);
    if (typeof c === "string") {
      this.skipped[c]++;
      return;
    }
    this.candidates.set(dst, c);
    this.byNodeIp.add(c.nodeIp, c);
    this.byNode.add(c.node, c);
    this.byKey.add(c.key, c);
    dirty.nodeIps.add(c.nodeIp);
    dirty.nodes.add(c.node);
    dirty.keys.add(c.key);
  }

  private absorbTunnel(dst: string, route: KeptRoute | undefined, dirty: Dirty): void {
    const old = this.tunnels.get(dst);
    if (old !== undefined && old.route === route) return;
    const usable = usableTunnel(route);
    if (old === undefined && !usable) return;
    if (old !== undefined) {
      this.tunnels.delete(dst);
      this.tunnelsByNode.delete(old.route.dstNodeName, old);
      dirty.nodes.add(old.route.dstNodeName);
    }
    if (usable && route.cidr.family === 4) {
      const tunnel: Tunnel = { address: route.cidr.network, route };
      this.tunnels.set(dst, tunnel);
      this.tunnelsByNode.add(route.dstNodeName, tunnel);
      dirty.nodes.add(route.dstNodeName);
    }
  }

  /**
   * Recomputes what the dirty node IPs, nodes and kernel dsts decide, in
   * dependency order, noting the keys it recomputed in `touched` (none after a
   * rebuild: every key is).
   */
  private settle(dirty: Dirty, touched: Touched | undefined): void {
    const ours = this.ours!;
    const neighbourIps = new Set(dirty.nodeIps);

    for (const ip of dirty.nodeIps) {
      const owner = first(this.byNodeIp.get(ip), () => true)?.node;
      if (owner === this.owners.get(ip)) continue;
      if (owner === undefined) this.owners.delete(ip);
      else this.owners.set(ip, owner);
      for (const c of this.byNodeIp.get(ip)) {
        dirty.nodes.add(c.node);
        dirty.keys.add(c.key);
      }
    }

    if (dirty.nodes.has(ours.dstNodeName)) {
      const wireguard = [...this.tunnelsByNode.get(ours.dstNodeName)].some(
        (t) => t.route.tunnelType?.wireguard,
      );
      if (wireguard !== this.ourWireguard) {
        this.ourWireguard = wireguard;
        for (const node of this.byNode.keys()) dirty.nodes.add(node);
      }
    }

    for (const node of dirty.nodes) this.settleNode(node, dirty, touched);

    for (const key of dirty.keys) {
      const exit = this.exits.has(key);
      const group = this.byKey.get(key);
      const winner = exit ? undefined : first(group, (c) => this.owners.get(c.nodeIp) === c.node);
      for (const c of group) {
        if (c.routed === (c === winner)) continue;
        c.routed = c === winner;
        this.routed += c.routed ? 1 : -1;
        neighbourIps.add(c.nodeIp);
      }
      const via = exit ? this.podGateway : winner?.route.dstNodeIp;
      const dev = exit ? POD_DEVICE : VXLAN_DEVICE;
      const current = this.routes.get(key);
      if (via === undefined) this.routes.delete(key);
      else if (current?.via !== via || current.dev !== dev) this.routes.set(key, { dst: key, via, dev });
      touched?.routes.add(key);
    }

    for (const nodeIp of neighbourIps) {
      const ip = formatIpv4(nodeIp);
      const owner = this.owners.get(nodeIp);
      const used = first(this.byNodeIp.get(nodeIp), (c) => c.routed) !== undefined;
      if (owner === undefined || !used) this.neighbours.delete(ip);
      else if (this.neighbours.get(ip)?.mac !== nodeMac(owner))
        this.neighbours.set(ip, { ip, mac: nodeMac(owner) });
      touched?.neighbours.add(ip);
    }
  }

  private settleNode(node: string, dirty: Dirty, touched: Touched | undefined): void {
    const entry = this.nodes.get(node);
    const firstOwned = first(this.byNode.get(node), (c) => this.owners.get(c.nodeIp) === node);
    let exitKey: string | undefined;
    if (firstOwned === undefined) {
      if (entry !== undefined) {
        this.nodes.delete(node);
        this.fdb.delete(entry.mac);
        touched?.fdb.add(entry.mac);
      }
    } else {
      const mac = entry?.mac ?? nodeMac(node);
      const tunnel = chooseTunnel([...this.tunnelsByNode.get(node)], this.ours!, this.ourWireguard);
      const dst = tunnel === undefined ? firstOwned.route.dstNodeIp : formatIpv4(tunnel.address);
      if (this.fdb.get(mac)?.dst !== dst) this.fdb.set(mac, { mac, dst, vni: this.vni });
      touched?.fdb.add(mac);
      exitKey = tunnel === undefined ? undefined : `${dst}/32`;
      if (entry === undefined || entry.exitKey !== exitKey) this.nodes.set(node, { mac, exitKey });
    }
    const oldExit = entry?.exitKey;
    if (oldExit === exitKey) return;
    if (oldExit !== undefined) {
      removeFrom(this.exits, oldExit, node);
      dirty.keys.add(oldExit);
    }
    if (exitKey !== undefined) {
      addTo(this.exits, exitKey, node);
      dirty.keys.add(exitKey);
    }
  }
}
