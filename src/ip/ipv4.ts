// IPv4 addresses as 32-bit unsigned numbers: one parser for configuration,
// probes, policy-sync routes and the kernel's own output.
//
// Dotted-quad decimal only, exactly what node:net's isIPv4 accepts. A
// zero-padded octet ("010") is refused: node:net refuses it, inet_pton refuses
// it, but iproute2 reads it as octal (`ip route add 010.1.1.0/24` installs
// 8.1.1.0/24), so the same text means two different networks to two readers.
// Refusing it is the only reading that cannot program the wrong route.

const DOT = 46;
const ZERO = 48;
const NINE = 57;

/** The address as a number, undefined when `text` is not dotted-quad IPv4. By hand: a pass parses 30,000 of these. */
export function parseIpv4(text: string): number | undefined {
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

export function formatIpv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** The 4 bytes of an IPv4 number, written at `at` (IPv4-mapped IPv6 tails use 12). */
export function writeIpv4(n: number, into: Uint8Array, at: number): Uint8Array {
  into[at] = n >>> 24;
  into[at + 1] = (n >>> 16) & 255;
  into[at + 2] = (n >>> 8) & 255;
  into[at + 3] = n & 255;
  return into;
}
