// The one IP module (src/ip): addresses and CIDRs parsed the way node:net
// reads them, checked against node:net itself (isIP, BlockList) on random input.
import assert from "node:assert/strict";
import { BlockList, isIP, isIPv4 } from "node:net";
import { describe, it } from "node:test";

import fc from "fast-check";

import { formatIp, parseIpBytes, sameAddress } from "../src/ip/address.js";
import { cidrContains, parseCidr, parseIpv4Cidr } from "../src/ip/cidr.js";
import { formatIpv4, parseIpv4 } from "../src/ip/ipv4.js";
import { parseIpLiteral } from "../src/ip/literal.js";

const octet = fc.oneof(
  fc.integer({ min: 0, max: 300 }).map(String),
  fc.integer({ min: 0, max: 99 }).map((n) => `0${n}`), // zero-padded: refused, as node:net does
  fc.constantFrom("", "-1", "1e2", "0x1", " 1", "١"),
);
const dottedish = fc.array(octet, { minLength: 3, maxLength: 5 }).map((parts) => parts.join("."));
const bytes16 = fc
  .array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 })
  .map((groups) => Uint8Array.from(groups.flatMap((g) => [g >> 8, g & 0xff])));

describe("parseIpv4", () => {
  it("agrees with node:net isIPv4 on dotted strings and on anything at all", () => {
    fc.assert(
      fc.property(fc.oneof(dottedish, fc.string({ maxLength: 20 })), (text) => {
        assert.equal(parseIpv4(text) !== undefined, isIPv4(text), text);
      }),
      { numRuns: 20_000 },
    );
  });

  it("refuses a zero-padded octet, which iproute2 would read as octal", () => {
    assert.equal(parseIpv4("010.1.1.1"), undefined);
    assert.equal(parseIpv4("10.01.1.1"), undefined);
    assert.equal(parseIpv4("10.0.1.1"), (10 << 24) + 256 + 1);
  });

  it("reads back what it prints", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (n) => {
        assert.equal(parseIpv4(formatIpv4(n)), n);
      }),
    );
  });
});

describe("parseIpBytes", () => {
  it("parses the forms targets and kernels use", () => {
    assert.deepEqual([...(parseIpBytes("198.51.100.7") ?? [])], [198, 51, 100, 7]);
    assert.deepEqual(
      [...(parseIpBytes("2001:db8::1") ?? [])],
      [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    );
    assert.deepEqual([...(parseIpBytes("::") ?? [])], new Array<number>(16).fill(0));
    assert.deepEqual(
      [...(parseIpBytes("::ffff:198.51.100.7") ?? [])],
      [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 7],
    );
    assert.deepEqual(parseIpBytes("fe80::1%eth0"), parseIpBytes("fe80::1"));
  });

  it("refuses what is not an address", () => {
    for (const text of [
      "",
      "1.2.3",
      "1.2.3.4.5",
      "256.1.1.1",
      "01.2.3.4",
      "1.2.3.4%eth0",
      "1::2::3",
      ":1::",
      "1:2:3:4:5:6:7:8:9",
      "12345::",
      "g::1",
      "fe80::1%",
      "::1.2.3",
      "::ffff:010.1.1.1",
    ]) {
      assert.equal(parseIpBytes(text), undefined, text);
    }
  });

  it("agrees with node:net isIP on address-like strings", () => {
    const token = fc.constantFrom(
      "::",
      ":",
      ":",
      ".",
      "0",
      "1",
      "ab",
      "ffff",
      "fFfF",
      "10000",
      "255",
      "256",
      "01",
      "1.2.3.4",
      "%eth0",
      "%",
      "g",
    );
    fc.assert(
      fc.property(
        fc.oneof(
          fc.array(token, { maxLength: 14 }).map((tokens) => tokens.join("")),
          fc.string({ maxLength: 40 }),
        ),
        (text) => {
          const parsed = parseIpBytes(text);
          assert.equal(parsed === undefined ? 0 : parsed.length === 4 ? 4 : 6, isIP(text), text);
        },
      ),
      { numRuns: 20_000 },
    );
  });

  it("reads back any IPv6 address however it is printed", () => {
    fc.assert(
      fc.property(bytes16, (raw) => {
        const groups = Array.from({ length: 8 }, (_, i) => ((raw[2 * i] ?? 0) << 8) | (raw[2 * i + 1] ?? 0));
        const full = groups.map((g) => g.toString(16)).join(":");
        const compressed = new URL(`http://[${full}]/`).hostname.slice(1, -1);
        const dotted = `${groups
          .slice(0, 6)
          .map((g) => g.toString(16))
          .join(":")}:${[...raw.slice(12)].join(".")}`;
        for (const text of [full, compressed, dotted, full.toUpperCase()]) {
          assert.ok(sameAddress(parseIpBytes(text) ?? new Uint8Array(0), raw), text);
        }
      }),
    );
  });
});

describe("formatIp", () => {
  it("prints IPv6 as RFC 5952 does, the same text as the WHATWG URL serialiser", () => {
    fc.assert(
      fc.property(bytes16, (raw) => {
        const full = Array.from({ length: 8 }, (_, i) => ((raw[2 * i] ?? 0) << 8) | (raw[2 * i + 1] ?? 0))
          .map((g) => g.toString(16))
          .join(":");
        assert.equal(formatIp(raw), new URL(`http://[${full}]/`).hostname.slice(1, -1));
      }),
      { numRuns: 5_000 },
    );
    assert.equal(formatIp(parseIpBytes("2001:db8:0:1:0:0:0:1")!), "2001:db8:0:1::1");
    assert.equal(formatIp(parseIpBytes("2001:0:0:1:0:0:0:1")!), "2001:0:0:1::1");
  });
});

const problem = (text: string): string => {
  const literal = parseIpLiteral(text);
  return literal.ok ? "" : literal.problem;
};

describe("parseIpLiteral", () => {
  it("gives one canonical text per address and refuses zones and IPv4-mapped addresses", () => {
    assert.deepEqual(parseIpLiteral("2001:DB8:0::1"), {
      ok: true,
      family: 6,
      address: "2001:db8::1",
      unspecified: false,
    });
    assert.deepEqual(parseIpLiteral("0.0.0.0"), {
      ok: true,
      family: 4,
      address: "0.0.0.0",
      unspecified: true,
    });
    assert.deepEqual(parseIpLiteral("::"), { ok: true, family: 6, address: "::", unspecified: true });
    assert.match(problem("fe80::1%eth0"), /zone index/);
    assert.match(problem("::ffff:198.51.100.1"), /IPv4-mapped/);
    assert.match(problem("010.1.1.1"), /not an IP address/);
  });
});

/** A prefix text: usually valid, sometimes not, so that both answers are exercised. */
const prefixText = fc.oneof(
  fc
    .tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 34 }))
    .map(([n, length]) => `${formatIpv4(n)}/${length}`),
  fc.tuple(bytes16, fc.integer({ min: 0, max: 130 })).map(([raw, length]) => `${formatIp(raw)}/${length}`),
  fc.tuple(dottedish, fc.constantFrom("/8", "/08", "/", "/-1", "", "/1/2", "/32")).map(([a, l]) => a + l),
  fc.string({ maxLength: 24 }),
  fc.constantFrom("::", "::1", "198.51.100.1", "::ffff:198.51.100.1/120", "fe80::1%eth0/64"),
);

/** The same text as a node:net BlockList subnet; undefined when node:net refuses it. */
function nodeSubnet(text: string): BlockList | undefined {
  const [address = "", length, extra] = text.split("/");
  const family = isIP(address);
  if (family === 0 || extra !== undefined || address.includes("%")) return undefined;
  if (length !== undefined && !/^(?:0|[1-9][0-9]*)$/.test(length)) return undefined;
  const list = new BlockList();
  try {
    list.addSubnet(
      address,
      length === undefined ? (family === 4 ? 32 : 128) : Number(length),
      family === 4 ? "ipv4" : "ipv6",
    );
  } catch {
    return undefined;
  }
  return list;
}

describe("parseCidr and cidrContains", () => {
  it("accept exactly the prefixes node:net BlockList accepts, and contain what it contains", () => {
    fc.assert(
      fc.property(
        prefixText,
        fc.integer({ min: 0, max: 0xffffffff }),
        bytes16,
        fc.integer({ min: 0, max: 32 }),
        (text, random4, random6, keep) => {
          const cidr = parseCidr(text);
          const list = nodeSubnet(text);
          assert.equal(cidr !== undefined, list !== undefined, text);
          if (cidr === undefined || list === undefined) return;
          const family = cidr.family === 4 ? "ipv4" : "ipv6";
          // Addresses near the prefix too, or containment would almost never be true.
          const candidates =
            cidr.family === 4
              ? [random4, (cidr.network | (random4 >>> keep)) >>> 0, cidr.network].map(formatIpv4)
              : [random6, cidr.network].map(formatIp);
          for (const address of candidates) {
            assert.equal(
              cidrContains(cidr, parseIpBytes(address)!),
              list.check(address, family),
              `${text} contains ${address}`,
            );
          }
        },
      ),
      { numRuns: 20_000 },
    );
  });

  it("clears host bits the way the kernel stores a route, and keeps /32", () => {
    assert.equal(parseIpv4Cidr("198.51.100.5/26")?.text, "198.51.100.0/26");
    assert.equal(parseIpv4Cidr("198.51.100.5")?.text, "198.51.100.5/32");
    assert.equal(parseCidr("2001:DB8::1/32")?.text, "2001:db8::/32");
    assert.equal(parseCidr("::/0")?.length, 0);
    assert.equal(parseIpv4Cidr("2001:db8::/32"), undefined);
    for (const text of ["300.1.1.0/26", "10.0.0.0/33", "10.0.0.0/08", "010.0.0.0/8", "::/129", "garbage"]) {
      assert.equal(parseCidr(text), undefined, text);
    }
  });
});
