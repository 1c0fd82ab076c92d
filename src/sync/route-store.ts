// The routes the gateway keeps from the policy-sync stream (SPEC §5), and when
// a new view of them may replace the old one. Pure: events in, snapshots out.
//
// After a (re)connect the agent replays its whole state and then says InSync.
// Until then the replay is staged apart and the dataplane keeps the previous
// snapshot, so a restarting agent never makes the gateway unlearn its return
// paths; at InSync the complete new view replaces the old one, which also
// removes whatever disappeared during the outage.
import { ipv4CidrContains, parseCidr } from "../ip/cidr.js";
import { parseIpv4 } from "../ip/ipv4.js";
import type { KeptRoute, Route, RouteSnapshot, RouteTypes, SyncEvent, TunnelType } from "./types.js";

/** A host tunnel: REMOTE_TUNNEL or LOCAL_TUNNEL, with a tunnel type. */
export const isHostTunnel = (route: Route): boolean =>
  (route.types.remoteTunnel || route.types.localTunnel) && route.tunnelType !== undefined;

/**
 * A kept route that return-path programming cannot use yet: the agent has not
 * named its node, or (for a workload route) not given the node's IP.
 */
export const isIncomplete = (route: Route): boolean =>
  route.dstNodeName === "" || (route.types.remoteWorkload && route.dstNodeIp === "");

/** Parses a route's addresses, once, as it arrives: nothing downstream parses route text again. */
export const keepRoute = (route: Route): KeptRoute => ({
  ...route,
  cidr: parseCidr(route.dst),
  nodeIpv4: parseIpv4(route.dstNodeIp),
});

const TYPE_KEYS: readonly (keyof RouteTypes)[] = [
  "remoteWorkload",
  "remoteHost",
  "localWorkload",
  "localHost",
  "remoteTunnel",
  "localTunnel",
];

function sameTunnel(a: TunnelType | undefined, b: TunnelType | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.ipip === b.ipip && a.vxlan === b.vxlan && a.wireguard === b.wireguard;
}

export function sameRoute(a: Route, b: Route): boolean {
  return (
    a.dst === b.dst &&
    TYPE_KEYS.every((key) => a.types[key] === b.types[key]) &&
    a.poolType === b.poolType &&
    a.dstNodeName === b.dstNodeName &&
    a.dstNodeIp === b.dstNodeIp &&
    a.sameSubnet === b.sameSubnet &&
    a.natOutgoing === b.natOutgoing &&
    a.localWorkload === b.localWorkload &&
    sameTunnel(a.tunnelType, b.tunnelType) &&
    a.borrowed === b.borrowed
  );
}

// Copy on write: a map handed out in a snapshot is never mutated, yet a burst
// of changes between two snapshots copies it at most once.
class RouteMap {
  private map = new Map<string, KeptRoute>();
  private shared = false;

  /** Puts `route` under its dst when `keep`, removes that dst otherwise; true when the map changed. */
  put(route: KeptRoute, keep: boolean): boolean {
    if (!keep) return this.delete(route.dst);
    const old = this.map.get(route.dst);
    if (old !== undefined && sameRoute(old, route)) return false;
    this.own().set(route.dst, route);
    return true;
  }

  delete(dst: string): boolean {
    return this.map.has(dst) && this.own().delete(dst);
  }

  get size(): number {
    return this.map.size;
  }

  values(): IterableIterator<KeptRoute> {
    return this.map.values();
  }

  freeze(): ReadonlyMap<string, KeptRoute> {
    this.shared = true;
    return this.map;
  }

  private own(): Map<string, KeptRoute> {
    if (this.shared) {
      this.map = new Map(this.map);
      this.shared = false;
    }
    return this.map;
  }
}

/** One complete or partial view of the kept routes. */
class RouteSet {
  private readonly tunnels = new RouteMap();
  private readonly remoteWorkloads = new RouteMap();
  /** LOCAL_WORKLOAD routes containing our IPv4; usually one (our block), sometimes also a narrower one. */
  private readonly ours = new RouteMap();
  private cached: RouteSnapshot | undefined;

  constructor(private readonly ourIPv4: number | undefined) {}

  /** Applies one update; true when the view changed. */
  update(route: KeptRoute): boolean {
    // Decided here once; the dataplane trusts snapshot.ourRoute to cover our IPv4.
    const isOurs =
      route.types.localWorkload &&
      this.ourIPv4 !== undefined &&
      route.cidr?.family === 4 &&
      ipv4CidrContains(route.cidr, this.ourIPv4);
    const tunnels = this.tunnels.put(route, isHostTunnel(route));
    const workloads = this.remoteWorkloads.put(route, route.types.remoteWorkload);
    const ours = this.ours.put(route, isOurs);
    return this.changed(tunnels || workloads || ours);
  }

  remove(dst: string): boolean {
    const tunnels = this.tunnels.delete(dst);
    const workloads = this.remoteWorkloads.delete(dst);
    const ours = this.ours.delete(dst);
    return this.changed(tunnels || workloads || ours);
  }

  snapshot(): RouteSnapshot {
    this.cached ??= {
      ourRoute: this.ourRoute(),
      tunnels: this.tunnels.freeze(),
      remoteWorkloads: this.remoteWorkloads.freeze(),
    };
    return this.cached;
  }

  private changed(changed: boolean): boolean {
    if (changed) this.cached = undefined;
    return changed;
  }

  // The most specific route wins, so that a /32 for our own pod does not lose
  // to its block; ties go to the lowest dst, so the choice does not depend on
  // arrival order.
  private ourRoute(): KeptRoute | undefined {
    let best: KeptRoute | undefined;
    let bestLength = -1;
    for (const route of this.ours.values()) {
      const length = route.cidr?.length ?? -1;
      if (length > bestLength || (length === bestLength && best !== undefined && route.dst < best.dst)) {
        best = route;
        bestLength = length;
      }
    }
    return best;
  }
}

export class RouteStore {
  private readonly ourIPv4: number | undefined;
  private live: RouteSet;
  private staging: RouteSet;
  private synced = false;
  private published: RouteSnapshot | undefined;

  /** `ourIPv4`: the gateway's own address, to find the route of our node. */
  constructor(ourIPv4: string | undefined) {
    this.ourIPv4 = ourIPv4 === undefined ? undefined : parseIpv4(ourIPv4);
    this.live = new RouteSet(this.ourIPv4);
    this.staging = new RouteSet(this.ourIPv4);
  }

  /** True once the current stream's InSync has been applied. */
  get inSync(): boolean {
    return this.synced;
  }

  /** The view last handed to the dataplane; undefined before the first InSync. */
  get snapshot(): RouteSnapshot | undefined {
    return this.published;
  }

  /** A new stream starts: its replay is staged apart until its InSync. */
  newStream(): void {
    this.staging = new RouteSet(this.ourIPv4);
    this.synced = false;
  }

  /**
   * Applies one event. Returns the snapshot to hand to the dataplane when the
   * published view changed: at InSync (always, even if empty or unchanged: it
   * is the new complete view), and after it on every change.
   */
  apply(event: SyncEvent): RouteSnapshot | undefined {
    if (event.kind === "inSync") {
      if (this.synced) return undefined;
      this.live = this.staging;
      this.synced = true;
      return this.publish();
    }
    const target = this.synced ? this.live : this.staging;
    const changed =
      event.kind === "routeUpdate" ? target.update(keepRoute(event.route)) : target.remove(event.dst);
    return changed && this.synced ? this.publish() : undefined;
  }

  private publish(): RouteSnapshot {
    this.published = this.live.snapshot();
    return this.published;
  }
}
