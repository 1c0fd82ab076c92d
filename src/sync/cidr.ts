// IPv4 CIDR containment, for finding the route that covers our own address.
// IPv6 routes never contain the gateway's IPv4 identity, so they simply do not match.

function ipv4ToNumber(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!/^[0-9]{1,3}$/.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value;
}

/** The prefix length of an IPv4 CIDR (a bare address is a /32), or undefined when `cidr` is not IPv4. */
export function ipv4PrefixLength(cidr: string): number | undefined {
  const [address = "", length = "32", extra] = cidr.split("/");
  if (extra !== undefined || !/^[0-9]{1,2}$/.test(length) || ipv4ToNumber(address) === undefined) {
    return undefined;
  }
  const bits = Number(length);
  return bits <= 32 ? bits : undefined;
}

/** Whether the IPv4 `cidr` (a bare address counts as /32) contains the IPv4 `address`. */
export function ipv4CidrContains(cidr: string, address: string): boolean {
  const bits = ipv4PrefixLength(cidr);
  const network = ipv4ToNumber(cidr.split("/")[0] ?? "");
  const ip = ipv4ToNumber(address);
  if (bits === undefined || network === undefined || ip === undefined) return false;
  const size = 2 ** (32 - bits);
  return Math.floor(network / size) === Math.floor(ip / size);
}
