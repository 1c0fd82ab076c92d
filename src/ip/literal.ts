// IP literals as the configuration accepts them: one canonical text per address,
// so that de-duplication, comparison and the VXLAN MAC all see the same string.
import { familyOf, formatIp, isIpv4Mapped, isUnspecified, parseIpBytes, type IpFamily } from "./address.js";

export type IpLiteral =
  | { readonly ok: true; readonly family: IpFamily; readonly address: string; readonly unspecified: boolean }
  | { readonly ok: false; readonly problem: string };

/**
 * Parses one IPv4 or IPv6 literal into canonical text (see formatIp). Zone
 * indexes and IPv4-mapped IPv6 addresses are refused: neither can be a pod
 * address or a probe target that means what was meant. `problem` is a
 * predicate phrase ("is not an IP address") for error messages.
 */
export function parseIpLiteral(text: string): IpLiteral {
  if (text.includes("%")) return { ok: false, problem: "has a zone index, which is not supported" };
  const bytes = parseIpBytes(text);
  if (bytes === undefined) return { ok: false, problem: "is not an IP address" };
  if (isIpv4Mapped(bytes)) {
    return { ok: false, problem: "is an IPv4-mapped IPv6 address (write the IPv4 address itself)" };
  }
  return { ok: true, family: familyOf(bytes), address: formatIp(bytes), unspecified: isUnspecified(bytes) };
}
