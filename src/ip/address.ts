// IP addresses of either family as bytes, so that two spellings of one host
// ("2001:db8::1", "2001:DB8:0:0::1") compare equal and print the same.
import { parseIpv4, writeIpv4 } from "./ipv4.js";

export type IpFamily = 4 | 6;

const ZONE = /^[0-9a-zA-Z.:-]+$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/**
 * The 4 (IPv4) or 16 (IPv6) bytes of an address, or undefined when `text` is
 * not one. Accepts exactly what node:net isIP accepts (test/ip.test.ts checks
 * it on random input), without its large regular expression. An IPv6 zone
 * index ("fe80::1%eth0") is accepted and ignored, as isIP does.
 */
export function parseIpBytes(text: string): Uint8Array | undefined {
  const zone = text.indexOf("%");
  if (zone !== -1) return ZONE.test(text.slice(zone + 1)) ? parseIpv6(text.slice(0, zone)) : undefined;
  if (text.includes(":")) return parseIpv6(text);
  const n = parseIpv4(text);
  return n === undefined ? undefined : writeIpv4(n, new Uint8Array(4), 0);
}

export const familyOf = (bytes: Uint8Array): IpFamily => (bytes.length === 4 ? 4 : 6);

export function sameAddress(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
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
  if (dotted) {
    const v4 = parseIpv4(last.pop() ?? "");
    if (v4 === undefined) return undefined;
    writeIpv4(v4, bytes, 12);
  }
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

/** Canonical text: dotted quad, or RFC 5952 IPv6 (lower case, longest run of zero groups as "::", all hex). */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  const groups = Array.from({ length: 8 }, (_, i) => ((bytes[2 * i] ?? 0) << 8) | (bytes[2 * i + 1] ?? 0));
  let bestAt = -1;
  let bestLength = 1; // a single zero group is not compressed (RFC 5952 4.2.2)
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) [bestAt, bestLength] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = (list: number[]): string => list.map((g) => g.toString(16)).join(":");
  if (bestAt < 0) return hex(groups);
  return `${hex(groups.slice(0, bestAt))}::${hex(groups.slice(bestAt + bestLength))}`;
}

/** ::ffff:a.b.c.d */
export function isIpv4Mapped(bytes: Uint8Array): boolean {
  if (bytes.length !== 16 || bytes[10] !== 0xff || bytes[11] !== 0xff) return false;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return true;
}

export const isUnspecified = (bytes: Uint8Array): boolean => bytes.every((b) => b === 0);
