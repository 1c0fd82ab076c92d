// The return path as plain data (SPEC §5.1): what the pod's kernel should hold
// on vxlan0 and eth0, what it holds of ours, and the changes between the two.
import type { POD_DEVICE, VXLAN_DEVICE } from "../pod-network/devices.js";

/**
 * Routing protocol id that marks every route we program (`proto 0x45`, 69: not
 * registered in iproute2's rt_protos). A route without it is never touched.
 */
export const RETURN_PATH_PROTO = 0x45;

/** Permanent neighbour on vxlan0: a node's IP to its node MAC. */
export interface Neighbour {
  readonly ip: string;
  readonly mac: string;
}

/** Permanent FDB entry on vxlan0: a node MAC to the underlay address its VXLAN packets go to. */
export interface FdbEntry {
  readonly mac: string;
  readonly dst: string;
  readonly vni: number;
}

/** `<dst> via <via> dev <dev> onlink proto 0x45` in the main table. */
export interface ProgrammedRoute {
  /** Normalised IPv4 CIDR, always with a prefix length (`198.51.100.1/32`). */
  readonly dst: string;
  readonly via: string;
  readonly dev: typeof VXLAN_DEVICE | typeof POD_DEVICE;
}

/**
 * Why a route-store entry is left out of the desired state:
 * - incomplete: no node IP or no node name yet (the node agent sends these at times);
 * - unsupported: an IPv6 destination or a non-IPv4 node address (vxlan0 is an IPv4 tunnel);
 * - ownNode: a remote-workload route that names our own node;
 * - conflicting: a workload route whose dst is also a tunnel's exit route, or whose node IP another node claims.
 */
export type SkipReason = "incomplete" | "unsupported" | "ownNode" | "conflicting";

/** Route-store entries left out of the desired state, counted by reason. */
export type Skipped = Readonly<Record<SkipReason, number>>;

export interface DesiredState {
  /** Sorted by IP. */
  readonly neighbours: readonly Neighbour[];
  /** Sorted by MAC; one entry per MAC (the kernel keeps one remote per unicast MAC). */
  readonly fdb: readonly FdbEntry[];
  /** vxlan0 routes then eth0 exit routes, each sorted by address; one per dst. */
  readonly routes: readonly ProgrammedRoute[];
  readonly skipped: Skipped;
  /** A local-workload route covering our own IPv4 was in the view. */
  readonly ourRouteSeen: boolean;
  /** Remote nodes that got an FDB entry. */
  readonly nodes: number;
}

/** Desired entries by the key the kernel keeps them under (see diff.ts). */
export interface KeyedEntries {
  /** By dst. */
  readonly routes: ReadonlyMap<string, ProgrammedRoute>;
  /** By IP. */
  readonly neighbours: ReadonlyMap<string, Neighbour>;
  /** By MAC. */
  readonly fdb: ReadonlyMap<string, FdbEntry>;
}

/** Keys whose desired entry may have changed in an update. */
export interface TouchedKeys {
  readonly routes: ReadonlySet<string>;
  readonly neighbours: ReadonlySet<string>;
  readonly fdb: ReadonlySet<string>;
}

export interface DesiredCounts {
  readonly neighbours: number;
  readonly fdb: number;
  /** vxlan0 routes (workloads). */
  readonly routes: number;
  /** eth0 routes (tunnel addresses). */
  readonly exitRoutes: number;
  /** Remote nodes that got an FDB entry. */
  readonly nodes: number;
  readonly skipped: Skipped;
}

/** What the kernel holds of ours (see kernel.ts for what "ours" means per table). */
export interface OwnedState {
  readonly neighbours: readonly Neighbour[];
  readonly fdb: readonly FdbEntry[];
  readonly routes: readonly ProgrammedRoute[];
}

export interface Changes {
  readonly fdb: { readonly replace: readonly FdbEntry[]; readonly remove: readonly FdbEntry[] };
  readonly neighbours: { readonly replace: readonly Neighbour[]; readonly remove: readonly Neighbour[] };
  readonly routes: {
    readonly replace: readonly ProgrammedRoute[];
    readonly remove: readonly ProgrammedRoute[];
  };
}
