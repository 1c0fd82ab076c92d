// The routes the gateway keeps from the policy-sync stream (SPEC §5), and when
// a new view of them may replace the old one. Pure: events in, snapshots out.
//
// After a (re)connect the agent replays its whole state and then says InSync.
// Until then the replay is staged apart and the dataplane keeps the previous
// snapshot, so a restarting agent never makes the gateway unlearn its return
// paths; at InSync the complete new view replaces the old one, which also
// removes whatever disappeared during the outage.
import { ipv4CidrContains } from "../ip/cidr.js";
import { parseIpv4 } from "../ip/ipv4.js";
import { checkRoute, REJECT_REASONS, type RejectReason } from "./route-check.js";
import type { KeptRoute, Route, RouteSnapshot, RouteTypes, SyncEvent, TunnelType } from "./types.js";

/**
 * Routes one view keeps at most (distinct dsts). Far above what a node agent
 * sends (a 5,000-node cluster with a few blocks per node: tens of thousands),
 * low enough that a flooding agent cannot take more than about 100 MB.
 */
export const MAX_ROUTES = 200_000;

/** Sizes of a view, for state and metrics. */
export interface RouteCounts {
  readonly tunnels: number;
  readonly remoteWorkloads: number;
  readonly ourRoute: boolean;
  /** Kept routes that return-path programming skips for now (no node name or node IP yet). */
  readonly incomplete: number;
}

/** A host tunnel: REMOTE_TUNNEL or LOCAL_TUNNEL, with a tunnel type. */
export const isHostTunnel = (route: Route): boolean =>
  (route.types.remoteTunnel || route.types.localTunnel) && route.tunnelType !== undefined;

/**
 * A kept route that return-path programming cannot use yet: the agent has not
 * named its node, or (for a workload route) not given the node's IP.
 */
export const isIncomplete = (route: Route): boolean =>
  route.dstNodeName === "" || (route.types.remoteWorkload && route.dstNodeIp === "");

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

  has(dst: string): boolean {
    return this.map.has(dst);
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

  constructor(
    private readonly ourIPv4: number | undefined,
    private readonly maxRoutes: number,
    private readonly onReject: RejectionListener,
  ) {}

  /** Distinct dsts kept (a route can be a tunnel and a workload at once: counted twice, an upper bound). */
  get size(): number {
    return this.tunnels.size + this.remoteWorkloads.size + this.ours.size;
  }

  /**
   * Applies one update; true when the view changed. The addresses are checked
   * and parsed here, once. A rejected update changes nothing: its dst keeps
   * what it had, so one bad message cannot take away a good route (our own
   * block sent again as a remote workload must not unseat our route).
   */
  update(route: Route): boolean {
    const wanted = isHostTunnel(route) || route.types.remoteWorkload || route.types.localWorkload;
    if (!wanted) return this.remove(route.dst);
    const checked = checkRoute(route, this.ourIPv4);
    if (!checked.ok) {
      this.onReject(checked.reason, checked.detail);
      return false;
    }
    if (this.size >= this.maxRoutes && !this.has(route.dst)) {
      this.onReject("route_limit", `dst ${route.dst}: already ${this.maxRoutes} routes kept`);
      return false;
    }
    const kept = checked.route;
    // Decided here once; the dataplane trusts snapshot.ourRoute to cover our IPv4.
    const isOurs =
      kept.types.localWorkload &&
      this.ourIPv4 !== undefined &&
      kept.cidr.family === 4 &&
      ipv4CidrContains(kept.cidr, this.ourIPv4);
    const tunnels = this.tunnels.put(kept, isHostTunnel(kept));
    const workloads = this.remoteWorkloads.put(kept, kept.types.remoteWorkload);
    const ours = this.ours.put(kept, isOurs);
    return this.changed(tunnels || workloads || ours);
  }

  counts(published: boolean): RouteCounts {
    if (!published) return { tunnels: 0, remoteWorkloads: 0, ourRoute: false, incomplete: 0 };
    let incomplete = 0;
    for (const route of this.tunnels.values()) if (isIncomplete(route)) incomplete++;
    for (const route of this.remoteWorkloads.values()) if (isIncomplete(route)) incomplete++;
    return {
      tunnels: this.tunnels.size,
      remoteWorkloads: this.remoteWorkloads.size,
      ourRoute: this.ours.size > 0,
      incomplete,
    };
  }

  private has(dst: string): boolean {
    return this.tunnels.has(dst) || this.remoteWorkloads.has(dst) || this.ours.has(dst);
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
      const length = route.cidr.length;
      if (length > bestLength || (length === bestLength && best !== undefined && route.dst < best.dst)) {
        best = route;
        bestLength = length;
      }
    }
    return best;
  }
}

/** What the store does with a route it rejects; see route-check.ts. */
export type RejectionListener = (reason: RejectReason, detail: string) => void;

export class RouteStore {
  private readonly ourIPv4: number | undefined;
  private live: RouteSet;
  private staging: RouteSet;
  private synced = false;
  private everSynced = false;
  private readonly rejected = new Map<RejectReason, number>(REJECT_REASONS.map((r) => [r, 0]));

  /**
   * `ourIPv4`: the gateway's own address, to find the route of our node and to
   * reject routes that would take its traffic. `maxRoutes` bounds the routes
   * kept per view, so that a flooding agent cannot exhaust memory.
   */
  constructor(
    ourIPv4: string | undefined,
    private readonly options: { readonly onReject?: RejectionListener; readonly maxRoutes?: number } = {},
  ) {
    this.ourIPv4 = ourIPv4 === undefined ? undefined : parseIpv4(ourIPv4);
    this.live = this.newSet();
    this.staging = this.newSet();
  }

  /** True once the current stream's InSync has been applied. */
  get inSync(): boolean {
    return this.synced;
  }

  /**
   * The view for the dataplane; undefined before the first InSync. Built when
   * asked for and cached until the next change, so a burst of messages costs
   * one copy per reconcile pass that reads it, not one per message.
   */
  get snapshot(): RouteSnapshot | undefined {
    return this.everSynced ? this.live.snapshot() : undefined;
  }

  /** Counts of the view the dataplane gets, without building a snapshot. */
  get counts(): RouteCounts {
    return this.live.counts(this.everSynced);
  }

  /** Routes staged by the current stream's replay before its InSync. */
  get staged(): number {
    return this.synced ? 0 : this.staging.size;
  }

  /** Rejected route updates since start, by reason. */
  get rejections(): ReadonlyMap<RejectReason, number> {
    return this.rejected;
  }

  /** A new stream starts: its replay is staged apart until its InSync. */
  newStream(): void {
    this.staging = this.newSet();
    this.synced = false;
  }

  /**
   * Applies one event. True when the dataplane's view changed: at InSync
   * (always, even if empty or unchanged: it is the new complete view), and
   * after it on every change.
   */
  apply(event: SyncEvent): boolean {
    if (event.kind === "inSync") {
      if (this.synced) return false;
      this.live = this.staging;
      this.synced = true;
      this.everSynced = true;
      return true;
    }
    const target = this.synced ? this.live : this.staging;
    const changed = event.kind === "routeUpdate" ? target.update(event.route) : target.remove(event.dst);
    return changed && this.synced;
  }

  private newSet(): RouteSet {
    return new RouteSet(this.ourIPv4, this.options.maxRoutes ?? MAX_ROUTES, (reason, detail) => {
      this.rejected.set(reason, (this.rejected.get(reason) ?? 0) + 1);
      this.options.onReject?.(reason, detail);
    });
  }
}
