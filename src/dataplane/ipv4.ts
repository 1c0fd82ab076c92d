// Just enough IPv4 to normalise CIDRs the way the kernel stores them and to sort
// them by address. Node IPs and CIDRs come from the node agent as text.

const DOT = 46;
const ZERO = 48;
const NINE = 57;

/**
 * The address as a 32-bit unsigned number, undefined when it is not dotted-quad
 * IPv4 (no leading zeros). By hand: a pass parses 20,000 of these.
 */
export function ipv4ToNumber(text: string): number | undefined {
  let n = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === DOT) {
      if (digits === 0 || dots === 3) return undefined;
      n = n * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= ZERO && c <= NINE) {
      if (digits > 0 && octet === 0) return undefined;
      octet = octet * 10 + (c - ZERO);
      digits++;
      if (octet > 255) return undefined;
    } else {
      return undefined;
    }
  }
  return dots === 3 && digits > 0 ? n * 256 + octet : undefined;
}

export function numberToIpv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

export interface Cidr4 {
  /** Network address as a number (host bits cleared). */
  readonly network: number;
  readonly prefix: number;
  /** The kernel's form: network address and prefix length, `/32` kept so that keys compare equal. */
  readonly text: string;
}

const prefixMask = (prefix: number): number => (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);

/** `a.b.c.d/n` or a bare address (/32); undefined for anything else, IPv6 included. */
export function parseCidr4(text: string): Cidr4 | undefined {
  const slash = text.indexOf("/");
  const n = ipv4ToNumber(slash < 0 ? text : text.slice(0, slash));
  if (n === undefined) return undefined;
  let prefix = 32;
  if (slash >= 0) {
    const length = text.length - slash - 1;
    const tens = length === 2 ? text.charCodeAt(slash + 1) - ZERO : 0;
    const ones = text.charCodeAt(text.length - 1) - ZERO;
    if (length < 1 || length > 2 || tens < 0 || tens > 9 || ones < 0 || ones > 9) return undefined;
    prefix = tens * 10 + ones;
    if (prefix > 32) return undefined;
  }
  const network = (n & prefixMask(prefix)) >>> 0;
  // Most CIDRs arrive in the kernel's form already: keep the string rather than build 10,000 new ones.
  const canonical = slash >= 0 && network === n;
  return { network, prefix, text: canonical ? text : `${numberToIpv4(network)}/${prefix}` };
}

export function cidrContains(c: Cidr4, address: number): boolean {
  return (address & prefixMask(c.prefix)) >>> 0 === c.network;
}
