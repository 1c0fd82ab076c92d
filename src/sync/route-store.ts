// The routes the gateway keeps from the policy-sync stream (SPEC §5), and when
// a new view of them may replace the old one. Pure: events in, a live view and
// the dsts changed since the dataplane last looked out.
//
// After a (re)connect the agent replays its whole state and then says InSync.
// Until then the replay is staged apart and the dataplane keeps the previous
// view, so a restarting agent never makes the gateway unlearn its return
// paths; at InSync the complete new view replaces the old one, which also
// removes whatever disappeared during the outage (the dataplane's next look
// at the changes says "full" then).
import { ipv4CidrContains } from "../ip/cidr.js";
import { parseIpv4 } from "../ip/ipv4.js";
import { checkRoute, REJECT_REASONS, type RejectReason } from "./route-check.js";
import type {
  KeptRoute,
  Route,
  RouteChanges,
  RouteFeed,
  RouteTypes,
  RouteView,
  SyncEvent,
  TunnelType,
} from "./types.js";

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

const NO_DSTS: ReadonlySet<string> = new Set();

/**
 * One complete or partial view of the kept routes, changed in place (the
 * dataplane reads it live), with a journal of the dsts changed since the
 * dataplane last took them: a burst of messages costs the dataplane what it
 * touched, never a copy of the view.
 */
class RouteSet implements RouteView {
  readonly tunnels = new Map<string, KeptRoute>();
  readonly remoteWorkloads = new Map<string, KeptRoute>();
  /** LOCAL_WORKLOAD routes containing our IPv4; usually one (our block), sometimes also a narrower one. */
  private readonly ours = new Map<string, KeptRoute>();
  /** null: to be chosen again (ours changed). */
  private best: KeptRoute | undefined | null = null;
  /** Kept tunnel and workload routes that are incomplete (see isIncomplete). */
  private incomplete = 0;
  /** Nothing taken yet, or the journal overflowed: the next taker gets the whole view. */
  private full = true;
  private changed = new Set<string>();

  constructor(
    private readonly ourIPv4: number | undefined,
    private readonly maxRoutes: number,
    private readonly onReject: RejectionListener,
  ) {}

  /** Distinct dsts kept (a route can be a tunnel and a workload at once: counted twice, an upper bound). */
  get size(): number {
    return this.tunnels.size + this.remoteWorkloads.size + this.ours.size;
  }

  get ourRoute(): KeptRoute | undefined {
    if (this.best === null) this.best = this.chooseOurs();
    return this.best;
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
    // Decided here once; the dataplane trusts view.ourRoute to cover our IPv4.
    const isOurs =
      kept.types.localWorkload &&
      this.ourIPv4 !== undefined &&
      kept.cidr.family === 4 &&
      ipv4CidrContains(kept.cidr, this.ourIPv4);
    const tunnels = this.put(this.tunnels, kept, isHostTunnel(kept));
    const workloads = this.put(this.remoteWorkloads, kept, kept.types.remoteWorkload);
    const ours = this.putOurs(kept, isOurs);
    return tunnels || workloads || ours;
  }

  remove(dst: string): boolean {
    const tunnels = this.drop(this.tunnels, dst);
    const workloads = this.drop(this.remoteWorkloads, dst);
    const ours = this.ours.delete(dst);
    if (ours) this.best = null;
    return tunnels || workloads || ours;
  }

  counts(published: boolean): RouteCounts {
    if (!published) return { tunnels: 0, remoteWorkloads: 0, ourRoute: false, incomplete: 0 };
    return {
      tunnels: this.tunnels.size,
      remoteWorkloads: this.remoteWorkloads.size,
      ourRoute: this.ours.size > 0,
      incomplete: this.incomplete,
    };
  }

  takeChanges(): RouteChanges {
    const changes = { full: this.full, dsts: this.full ? NO_DSTS : this.changed };
    this.full = false;
    this.changed = new Set();
    return changes;
  }

  private has(dst: string): boolean {
    return this.tunnels.has(dst) || this.remoteWorkloads.has(dst) || this.ours.has(dst);
  }

  /** Puts `route` under its dst in `map` when `keep`, removes that dst otherwise; true when the map changed. */
  private put(map: Map<string, KeptRoute>, route: KeptRoute, keep: boolean): boolean {
    if (!keep) return this.drop(map, route.dst);
    const old = map.get(route.dst);
    if (old !== undefined && sameRoute(old, route)) return false;
    if (old !== undefined && isIncomplete(old)) this.incomplete--;
    if (isIncomplete(route)) this.incomplete++;
    map.set(route.dst, route);
    this.note(route.dst);
    return true;
  }

  private drop(map: Map<string, KeptRoute>, dst: string): boolean {
    const old = map.get(dst);
    if (old === undefined) return false;
    if (isIncomplete(old)) this.incomplete--;
    map.delete(dst);
    this.note(dst);
    return true;
  }

  private putOurs(route: KeptRoute, keep: boolean): boolean {
    const old = this.ours.get(route.dst);
    if (!keep) {
      if (old === undefined) return false;
      this.ours.delete(route.dst);
    } else {
      if (old !== undefined && sameRoute(old, route)) return false;
      this.ours.set(route.dst, route);
    }
    this.best = null;
    return true;
  }

  /** Journals a changed dst; past maxRoutes of them the whole view is cheaper to take than the list. */
  private note(dst: string): void {
    if (this.full) return;
    this.changed.add(dst);
    if (this.changed.size > this.maxRoutes) {
      this.full = true;
      this.changed = new Set();
    }
  }

  // The most specific route wins, so that a /32 for our own pod does not lose
  // to its block; ties go to the lowest dst, so the choice does not depend on
  // arrival order.
  private chooseOurs(): KeptRoute | undefined {
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

/** The published view, whichever set that is since the last InSync. */
class LiveFeed implements RouteFeed {
  constructor(private readonly live: () => RouteSet) {}

  get view(): RouteView {
    return this.live();
  }

  takeChanges(): RouteChanges {
    return this.live().takeChanges();
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

  /** The view the dataplane gets, live; undefined before the first InSync. */
  get view(): RouteView | undefined {
    return this.everSynced ? this.live : undefined;
  }

  /**
   * The dataplane's feed: the published view and its changes. Only read once
   * the first InSync has been applied (apply() returned true).
   */
  readonly feed: RouteFeed = new LiveFeed(() => this.live);

  /** Counts of the view the dataplane gets. */
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
