// Which routes from the node agent the gateway may act on. Pure. A buggy or
// hostile agent must not be able to take the gateway's traffic with one
// message: a remote workload of 0.0.0.0/0 would become a default route into
// vxlan0, one covering our own address a route away from ourselves, and a
// multicast or loopback node IP a neighbour entry that sends nothing anywhere.
// Such a route is rejected as a whole (counted by reason, never programmed).
import { familyOf, parseIpBytes } from "../ip/address.js";
import { ipv4CidrContains, parseCidr } from "../ip/cidr.js";
import { parseIpv4 } from "../ip/ipv4.js";
import type { KeptRoute, Route } from "./types.js";

/** Why a route was rejected; a closed set, so that it can label a metric. */
export const REJECT_REASONS = [
  "invalid_dst",
  "default_route",
  "covers_gateway",
  "invalid_node_ip",
  "invalid_node_name",
  "route_limit",
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

export type RouteCheck =
  | { readonly ok: true; readonly route: KeptRoute }
  | { readonly ok: false; readonly reason: RejectReason; readonly detail: string };

/** Kubernetes node names are DNS subdomains: at most 253 characters (RFC 1123). */
export const MAX_NODE_NAME = 253;
// Letters of either case and "_" go beyond RFC 1123: Calico outside Kubernetes names nodes by hostname.
const NODE_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/;

/** Route text in a log line or readiness detail: at most this many characters of it. */
const SHOWN = 64;

/** `text` for a log line: JSON-quoted, cut to a readable length (a 10 KiB node name stays out of logs). */
export function shown(text: string): string {
  return text.length <= SHOWN
    ? JSON.stringify(text)
    : `${JSON.stringify(text.slice(0, SHOWN))}… (${text.length} chars)`;
}

const reject = (reason: RejectReason, detail: string): RouteCheck => ({ ok: false, reason, detail });

/**
 * An IPv4 address a node can have on the underlay: not 0.0.0.0/8 ("this
 * network"), 127.0.0.0/8 (loopback), 224.0.0.0/4 (multicast) or 240.0.0.0/4
 * (reserved, with the limited broadcast), and not our own address.
 */
export function isNodeIpv4(n: number, ourIPv4: number | undefined): boolean {
  const first = n >>> 24;
  return first !== 0 && first !== 127 && first < 224 && n !== ourIPv4;
}

function nodeIpProblem(text: string, ourIPv4: number | undefined): string | undefined {
  const bytes = parseIpBytes(text);
  if (bytes === undefined || text.includes("%")) return `node IP ${shown(text)} is not an IP address`;
  if (familyOf(bytes) === 4) {
    const n = parseIpv4(text)!;
    if (n === ourIPv4) return `node IP ${text} is the gateway's own address`;
    return isNodeIpv4(n, ourIPv4) ? undefined : `node IP ${text} is not a unicast address`;
  }
  const unicast = bytes[0] !== 0xff && !bytes.slice(0, 15).every((b) => b === 0);
  return unicast ? undefined : `node IP ${text} is not a unicast address`;
}

/**
 * Checks a route the store would keep (a host tunnel, a remote workload, a
 * local workload) and parses its addresses, once. `ourIPv4` is the gateway's
 * own address as a number. Empty node name or node IP are not errors: the
 * agent sends such incomplete routes and completes them later (SPEC §5.1).
 */
export function checkRoute(route: Route, ourIPv4: number | undefined): RouteCheck {
  const cidr = parseCidr(route.dst);
  if (cidr === undefined) return reject("invalid_dst", `dst ${shown(route.dst)} is not a CIDR`);
  if (cidr.length === 0) return reject("default_route", `dst ${route.dst} would be a default route`);
  const remote = route.types.remoteWorkload || route.types.remoteTunnel || route.types.localTunnel;
  if (remote && cidr.family === 4 && ourIPv4 !== undefined && ipv4CidrContains(cidr, ourIPv4)) {
    return reject("covers_gateway", `dst ${route.dst} covers the gateway's own address`);
  }
  if (cidr.family === 4 && (route.types.remoteTunnel || route.types.localTunnel) && cidr.length === 32) {
    if (!isNodeIpv4(cidr.network, ourIPv4)) {
      return reject("invalid_dst", `tunnel address ${route.dst} is not a unicast address`);
    }
  }
  const name = route.dstNodeName;
  if (name !== "" && (name.length > MAX_NODE_NAME || !NODE_NAME.test(name))) {
    return reject(
      "invalid_node_name",
      `node name ${shown(name)} is not a DNS name of at most ${MAX_NODE_NAME} characters`,
    );
  }
  if (route.dstNodeIp !== "") {
    const problem = nodeIpProblem(route.dstNodeIp, ourIPv4);
    if (problem !== undefined) return reject("invalid_node_ip", problem);
  }
  return { ok: true, route: { ...route, cidr, nodeIpv4: parseIpv4(route.dstNodeIp) } };
}
