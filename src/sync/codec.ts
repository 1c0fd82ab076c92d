// Decoding of policy-sync messages into plain data (SPEC §5). Pure: it takes
// the objects proto-loader deserializes (or the same shape written by hand) and
// never sees a socket.
import type { RouteRemoveMessage, RouteUpdateMessage, ToDataplaneMessage, WireEnum } from "./proto.js";
import {
  NO_ROUTE_TYPES,
  type PoolType,
  type Route,
  type RouteTypes,
  type SyncEvent,
  type TunnelType,
} from "./types.js";

/** Newer senders: field 12, one bit per type. */
export function routeTypesFromBitmap(bits: number): RouteTypes {
  return {
    remoteWorkload: (bits & 1) !== 0,
    remoteHost: (bits & 2) !== 0,
    localWorkload: (bits & 4) !== 0,
    localHost: (bits & 8) !== 0,
    remoteTunnel: (bits & 16) !== 0,
    localTunnel: (bits & 32) !== 0,
  };
}

const ROUTE_TYPE_NAMES: readonly string[] = [
  "CIDR_INFO",
  "REMOTE_WORKLOAD",
  "REMOTE_HOST",
  "LOCAL_WORKLOAD",
  "LOCAL_HOST",
  "REMOTE_TUNNEL",
  "LOCAL_TUNNEL",
];

/** Older senders: field 1, one type per route. CIDR_INFO (0) and unknown values carry no type. */
export function routeTypesFromEnum(type: WireEnum): RouteTypes {
  const value = typeof type === "number" ? type : ROUTE_TYPE_NAMES.indexOf(type);
  switch (value) {
    case 1:
      return { ...NO_ROUTE_TYPES, remoteWorkload: true };
    case 2:
      return { ...NO_ROUTE_TYPES, remoteHost: true };
    case 3:
      return { ...NO_ROUTE_TYPES, localWorkload: true };
    case 4:
      return { ...NO_ROUTE_TYPES, localHost: true };
    case 5:
      return { ...NO_ROUTE_TYPES, remoteTunnel: true };
    case 6:
      return { ...NO_ROUTE_TYPES, localTunnel: true };
    default:
      return NO_ROUTE_TYPES;
  }
}

const POOL_TYPES: readonly PoolType[] = ["NONE", "NO_ENCAP", "VXLAN", "IPIP"];

function poolType(value: WireEnum | null | undefined): PoolType {
  if (typeof value === "string") return POOL_TYPES.includes(value as PoolType) ? (value as PoolType) : "NONE";
  return POOL_TYPES[value ?? 0] ?? "NONE";
}

function tunnelType(message: RouteUpdateMessage["tunnelType"]): TunnelType | undefined {
  if (!message) return undefined;
  const tunnel = { ipip: !!message.ipip, vxlan: !!message.vxlan, wireguard: !!message.wireguard };
  return tunnel.ipip || tunnel.vxlan || tunnel.wireguard ? tunnel : undefined;
}

/**
 * A message carries the bitmap or the enum: a non-zero bitmap wins, otherwise
 * the enum (whose zero, CIDR_INFO, means no type at all).
 */
export function routeTypes(message: Pick<RouteUpdateMessage, "type" | "types">): RouteTypes {
  const bits = message.types ?? 0;
  return bits !== 0 ? routeTypesFromBitmap(bits) : routeTypesFromEnum(message.type ?? 0);
}

/** The route of a RouteUpdate, or undefined when it has no dst (nothing to key it by). */
export function decodeRoute(message: RouteUpdateMessage): Route | undefined {
  const dst = message.dst ?? "";
  if (dst === "") return undefined;
  return {
    dst,
    types: routeTypes(message),
    poolType: poolType(message.ipPoolType),
    dstNodeName: message.dstNodeName ?? "",
    dstNodeIp: message.dstNodeIp ?? "",
    sameSubnet: !!message.sameSubnet,
    natOutgoing: !!message.natOutgoing,
    localWorkload: !!message.localWorkload,
    tunnelType: tunnelType(message.tunnelType),
    borrowed: !!message.borrowed,
  };
}

function sequence(value: ToDataplaneMessage["sequenceNumber"]): bigint {
  if (typeof value === "bigint") return value;
  if (typeof value === "number") return Number.isSafeInteger(value) && value >= 0 ? BigInt(value) : 0n;
  if (typeof value === "string" && /^[0-9]+$/.test(value)) return BigInt(value);
  return 0n;
}

function removedDst(message: RouteRemoveMessage): string | undefined {
  const dst = message.dst ?? "";
  return dst === "" ? undefined : dst;
}

/**
 * The event a ToDataplane message carries, or undefined for everything the
 * gateway ignores: other payloads, and route messages without a dst.
 */
export function decodeToDataplane(message: ToDataplaneMessage): SyncEvent | undefined {
  const seq = sequence(message.sequenceNumber);
  if (message.inSync) return { kind: "inSync", sequence: seq };
  if (message.routeUpdate) {
    const route = decodeRoute(message.routeUpdate);
    return route && { kind: "routeUpdate", sequence: seq, route };
  }
  if (message.routeRemove) {
    const dst = removedDst(message.routeRemove);
    return dst === undefined ? undefined : { kind: "routeRemove", sequence: seq, dst };
  }
  return undefined;
}
