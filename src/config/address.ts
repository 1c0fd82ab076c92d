// IP literals as the configuration accepts them: one canonical text per address,
// so that de-duplication, comparison and the VXLAN MAC all see the same string.
import { isIP } from "node:net";

export type IpFamily = 4 | 6;

export type IpLiteral =
  | { readonly ok: true; readonly family: IpFamily; readonly address: string; readonly unspecified: boolean }
  | { readonly ok: false; readonly problem: string };

// ::ffff:a.b.c.d after canonicalisation (the URL parser prints the IPv4 part in hex).
const IPV4_MAPPED = /^::ffff:[0-9a-f]{1,4}:[0-9a-f]{1,4}$/;

/**
 * Parses one IPv4 or IPv6 literal into canonical text (RFC 5952 lower case,
 * zeros compressed). Zone indexes and IPv4-mapped IPv6 addresses are refused:
 * neither can be a pod address or a probe target that means what was meant.
 * `problem` is a predicate phrase ("is not an IP address") for error messages.
 */
export function parseIpLiteral(text: string): IpLiteral {
  if (text.includes("%")) return { ok: false, problem: "has a zone index, which is not supported" };
  const family = isIP(text);
  if (family === 4) return { ok: true, family, address: text, unspecified: text === "0.0.0.0" };
  if (family !== 6) return { ok: false, problem: "is not an IP address" };
  const address = canonicalIPv6(text);
  if (address === undefined) return { ok: false, problem: "is not an IP address" };
  if (IPV4_MAPPED.test(address)) {
    return { ok: false, problem: "is an IPv4-mapped IPv6 address (write the IPv4 address itself)" };
  }
  return { ok: true, family, address, unspecified: address === "::" };
}

// The WHATWG URL parser implements RFC 5952 serialisation; node:net has no such function.
function canonicalIPv6(text: string): string | undefined {
  const probe = `http://[${text}]/`;
  if (!URL.canParse(probe)) return undefined;
  return new URL(probe).hostname.slice(1, -1);
}
