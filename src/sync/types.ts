// What the gateway keeps from the node agent's policy-sync stream (SPEC §5),
// decoded from the wire into plain data. The route store and the desired-state
// function work on these types only, never on protobuf objects.
import type { Cidr } from "../ip/cidr.js";

/** IP pool encapsulation of a route's pool (wire enum IPPoolType). */
export type PoolType = "NONE" | "NO_ENCAP" | "VXLAN" | "IPIP";

/** Route types as a set, whichever wire encoding (enum field 1 or bitmap field 12) carried them. */
export interface RouteTypes {
  readonly remoteWorkload: boolean;
  readonly remoteHost: boolean;
  readonly localWorkload: boolean;
  readonly localHost: boolean;
  readonly remoteTunnel: boolean;
  readonly localTunnel: boolean;
}

/** The empty set of route types: what a route without a (known) type has. */
export const NO_ROUTE_TYPES: RouteTypes = Object.freeze({
  remoteWorkload: false,
  remoteHost: false,
  localWorkload: false,
  localHost: false,
  remoteTunnel: false,
  localTunnel: false,
});

export interface TunnelType {
  readonly ipip: boolean;
  readonly vxlan: boolean;
  readonly wireguard: boolean;
}

export interface Route {
  /** CIDR, the key of the route. */
  readonly dst: string;
  readonly types: RouteTypes;
  readonly poolType: PoolType;
  readonly dstNodeName: string;
  /** Empty when the agent does not know the node's IP yet (an incomplete route). */
  readonly dstNodeIp: string;
  readonly sameSubnet: boolean;
  readonly natOutgoing: boolean;
  readonly localWorkload: boolean;
  /** undefined when the message had no tunnel_type, or one with no flag set. */
  readonly tunnelType: TunnelType | undefined;
  readonly borrowed: boolean;
}

/** A route as the store keeps it: checked, its addresses parsed once, on arrival (route-check.ts). */
export interface KeptRoute extends Route {
  readonly cidr: Cidr;
  /** `dstNodeIp` as an IPv4 number; undefined when empty or not IPv4. */
  readonly nodeIpv4: number | undefined;
}

/** One decoded ToDataplane payload we care about; everything else is ignored on decode. */
export type SyncEvent =
  | { readonly kind: "inSync"; readonly sequence: bigint }
  | { readonly kind: "routeUpdate"; readonly sequence: bigint; readonly route: Route }
  | { readonly kind: "routeRemove"; readonly sequence: bigint; readonly dst: string };

/**
 * The routes the store keeps, live: the store changes these maps as messages
 * arrive, so a consumer reads what it needs without awaiting in between.
 */
export interface RouteView {
  /** The LOCAL_WORKLOAD route whose dst contains our own IPv4: our node, pool type and same_subnet. */
  readonly ourRoute: KeptRoute | undefined;
  /** Host tunnel routes (REMOTE_TUNNEL or LOCAL_TUNNEL with a tunnel type), keyed by dst. */
  readonly tunnels: ReadonlyMap<string, KeptRoute>;
  /** REMOTE_WORKLOAD routes, keyed by dst. */
  readonly remoteWorkloads: ReadonlyMap<string, KeptRoute>;
}

/** What changed in a view since its consumer last asked. */
export interface RouteChanges {
  /** Anything may have changed (a new complete view at InSync, or more changes than worth listing). */
  readonly full: boolean;
  /** The dsts whose tunnel or remote-workload entry changed (added, replaced, removed); empty when full. */
  readonly dsts: ReadonlySet<string>;
}

/**
 * The dataplane's way to the routes: the current view and what changed in it,
 * so that a reconcile pass costs in proportion to the change, not the view.
 */
export interface RouteFeed {
  readonly view: RouteView;
  /** Drains: what changed since the previous call. The first call on a new view (InSync) says full. */
  takeChanges(): RouteChanges;
}
