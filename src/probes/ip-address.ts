// Textual IP addresses as bytes, so that a probe target and the addresses in an
// answer compare by value: "2001:db8::1" and "2001:DB8:0:0::1" are one host,
// and the embedded destination of an ICMP error has no text at all.

/**
 * The 4 (IPv4) or 16 (IPv6) bytes of an address, or undefined when `text` is
 * not one. Accepts what node:net isIP accepts, without its large regular
 * expression. An IPv6 zone index ("fe80::1%eth0") is ignored: answers carry none.
 */
export function parseIpAddress(text: string): Uint8Array | undefined {
  const zone = text.indexOf("%");
  if (zone === -1) return text.includes(":") ? parseIpv6(text) : parseIpv4(text, new Uint8Array(4), 0);
  if (!ZONE.test(text.slice(zone + 1))) return undefined;
  return parseIpv6(text.slice(0, zone));
}

export function sameAddress(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const ZONE = /^[0-9a-zA-Z.:-]+$/;
const DECIMAL_OCTET = /^(?:0|[1-9][0-9]{0,2})$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

function parseIpv4(text: string, into: Uint8Array, at: number): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  for (let i = 0; i < 4; i++) {
    const part = parts[i] ?? "";
    if (!DECIMAL_OCTET.test(part)) return undefined;
    const value = Number(part);
    if (value > 255) return undefined;
    into[at + i] = value;
  }
  return into;
}

function parseIpv6(text: string): Uint8Array | undefined {
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves[1] ? halves[1].split(":") : [];
  const compressed = halves.length === 2;

  const bytes = new Uint8Array(16);
  const last = compressed ? tail : head;
  // A dotted IPv4 tail ("::ffff:198.51.100.1") fills the last 4 bytes.
  const dotted = last.length > 0 && (last[last.length - 1] ?? "").includes(".");
  if (dotted && parseIpv4(last.pop() ?? "", bytes, 12) === undefined) return undefined;
  const groups = head.length + tail.length + (dotted ? 2 : 0);
  if (compressed ? groups > 7 : groups !== 8) return undefined;

  if (!writeGroups(head, bytes, 0)) return undefined;
  const tailStart = 16 - (dotted ? 4 : 0) - tail.length * 2;
  return writeGroups(tail, bytes, tailStart) ? bytes : undefined;
}

function writeGroups(groups: readonly string[], into: Uint8Array, at: number): boolean {
  for (const [i, group] of groups.entries()) {
    if (!HEX_GROUP.test(group)) return false;
    const value = parseInt(group, 16);
    into[at + i * 2] = value >> 8;
    into[at + i * 2 + 1] = value & 0xff;
  }
  return true;
}
