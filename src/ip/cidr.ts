// CIDR prefixes of either family, parsed once and kept as numbers/bytes: the
// route store keeps these, so a reconcile pass never parses route text again.
import { formatIp, parseIpBytes } from "./address.js";
import { formatIpv4, parseIpv4 } from "./ipv4.js";

const ZERO = 48;

export interface Ipv4Cidr {
  readonly family: 4;
  /** Network address as a number (host bits cleared). */
  readonly network: number;
  readonly length: number;
  /** The kernel's form: network address and prefix length, `/32` kept so that keys compare equal. */
  readonly text: string;
}

export interface Ipv6Cidr {
  readonly family: 6;
  /** Network address (host bits cleared). */
  readonly network: Uint8Array;
  readonly length: number;
  /** Canonical network address and prefix length. */
  readonly text: string;
}

export type Cidr = Ipv4Cidr | Ipv6Cidr;

const ipv4Mask = (length: number): number => (length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0);

/** The digits after the slash: 0..max, no sign, no leading zero; undefined otherwise. */
function prefixLength(text: string, max: number): number | undefined {
  if (text.length < 1 || text.length > 3 || (text.length > 1 && text.charCodeAt(0) === ZERO))
    return undefined;
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const d = text.charCodeAt(i) - ZERO;
    if (d < 0 || d > 9) return undefined;
    n = n * 10 + d;
  }
  return n <= max ? n : undefined;
}

/** `a.b.c.d/n` or a bare address (/32); host bits are cleared; undefined for anything else, IPv6 included. */
export function parseIpv4Cidr(text: string): Ipv4Cidr | undefined {
  const slash = text.indexOf("/");
  const n = parseIpv4(slash < 0 ? text : text.slice(0, slash));
  if (n === undefined) return undefined;
  const length = slash < 0 ? 32 : prefixLength(text.slice(slash + 1), 32);
  if (length === undefined) return undefined;
  const network = (n & ipv4Mask(length)) >>> 0;
  // Most CIDRs arrive in the kernel's form already: keep the string rather than build 30,000 new ones.
  const canonical = slash >= 0 && network === n;
  return { family: 4, network, length, text: canonical ? text : `${formatIpv4(network)}/${length}` };
}

/** An IPv4 or IPv6 CIDR, or a bare address (a host prefix). A zone index is not part of a prefix. */
export function parseCidr(text: string): Cidr | undefined {
  if (!text.includes(":")) return parseIpv4Cidr(text);
  if (text.includes("%")) return undefined;
  const slash = text.indexOf("/");
  const bytes = parseIpBytes(slash < 0 ? text : text.slice(0, slash));
  if (bytes === undefined || bytes.length !== 16) return undefined;
  const length = slash < 0 ? 128 : prefixLength(text.slice(slash + 1), 128);
  if (length === undefined) return undefined;
  for (let bit = length; bit < 128; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return { family: 6, network: bytes, length, text: `${formatIp(bytes)}/${length}` };
}

export function ipv4CidrContains(cidr: Ipv4Cidr, address: number): boolean {
  return (address & ipv4Mask(cidr.length)) >>> 0 === cidr.network;
}

/** Whether `address` (4 or 16 bytes) lies in `cidr`; never across families. */
export function cidrContains(cidr: Cidr, address: Uint8Array): boolean {
  if (cidr.family === 4) {
    if (address.length !== 4) return false;
    const n =
      (((address[0] ?? 0) << 24) |
        ((address[1] ?? 0) << 16) |
        ((address[2] ?? 0) << 8) |
        (address[3] ?? 0)) >>>
      0;
    return ipv4CidrContains(cidr, n);
  }
  if (address.length !== 16) return false;
  for (let bit = 0; bit < cidr.length; bit += 8) {
    const mask = cidr.length - bit >= 8 ? 0xff : (0xff00 >> (cidr.length - bit)) & 0xff;
    if (((address[bit >> 3] ?? 0) & mask) !== cidr.network[bit >> 3]) return false;
  }
  return true;
}
