// What the rules must do, independent of how they are written: the intent both
// renderers (native nftables, iptables) turn into text, so all backends behave alike.
import type { PortRange } from "../config/types.js";
import type { Family } from "./types.js";

export interface RuleIntent {
  /** Forwarded traffic leaves through this device. */
  readonly egress: string;
  /** Per family the pod has: SNAT forwarded packets leaving `egress` to this address. */
  readonly snat: Readonly<Partial<Record<Family, string>>>;
  /**
   * Source ports for translated TCP and UDP, chosen fully at random in this range
   * (other protocols keep the kernel's range, also fully random). Sequential
   * allocation lets two CPUs pick the same port for two new flows at once; the
   * loser's conntrack insert fails and its SYN is dropped.
   */
  readonly snatPorts: PortRange;
  /** Per family: clamp the MSS of forwarded SYNs leaving `egress` down to this value (never up). */
  readonly mss: Readonly<Partial<Record<Family, number>>>;
  /** Drop the ICMPv6 redirects this host would send (IPv6 has no send_redirects sysctl). */
  readonly dropIcmpv6Redirects: boolean;
}

export const FAMILIES: readonly Family[] = [4, 6];

export function familyName(family: Family): string {
  return family === 4 ? "IPv4" : "IPv6";
}

/** TCP/IP header bytes below the MTU: MSS = MTU - 40 (IPv4), MTU - 60 (IPv6, its header is 20 bytes longer). */
export const MSS_HEADROOM: Readonly<Record<Family, number>> = { 4: 40, 6: 60 };

/** Protocols SNAT gives a port from `RuleIntent.snatPorts`. */
export const PORTED_PROTOCOLS = ["tcp", "udp"] as const;

export function describePorts(ports: PortRange): string {
  return `${ports.first}-${ports.last}`;
}

/**
 * Comments that name the counting rules, so that the gateway's telemetry finds
 * their counters in any backend's listing. Per family ("ipv4", "ipv6"):
 * `snat` is the SNAT rule itself (NAT rules see only a connection's first
 * packet), `snatEstablished` the later packets of SNATed connections, both
 * directions, and `forwarded` every forwarded packet.
 */
export const COUNTER_COMMENTS = {
  snat: (family: Family): string => `egw-snat-${nfFamily(family)}`,
  snatEstablished: (family: Family): string => `egw-snat-established-${nfFamily(family)}`,
  forwarded: (family: Family): string => `egw-forwarded-${nfFamily(family)}`,
} as const;

/** nftables' name of an address family: "ipv4" or "ipv6". */
export function nfFamily(family: Family): "ipv4" | "ipv6" {
  return family === 4 ? "ipv4" : "ipv6";
}
