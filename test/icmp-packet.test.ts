// The pure half of the ICMP prober: which packets answer our echo requests,
// and whether they are about the target. Packets are built by hand, byte by
// byte, as a raw socket delivers them (IPv4 with its header, ICMPv6 without).
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import fc from "fast-check";

import {
  answersTarget,
  describeEchoError,
  icmpTypeFilter,
  readEchoAnswer,
  type EchoAnswer,
} from "../src/probes/icmp-packet.js";
import { parseIpBytes } from "../src/ip/address.js";

const ID = 0x4d2e;
const ME4 = "198.18.0.2";
const TARGET4 = "198.51.100.10";
const ROUTER4 = "198.18.0.1";
const ME6 = "2001:db8:0:1::2";
const TARGET6 = "2001:db8:1::10";

const bytes = (address: string): number[] => [...(parseIpBytes(address) ?? assert.fail(address))];

function ipv4(
  src: string,
  dst: string,
  payload: number[],
  options: { protocol?: number; ihl?: number; fragment?: number } = {},
): number[] {
  const ihl = options.ihl ?? 5;
  const total = ihl * 4 + payload.length;
  const fragment = options.fragment ?? 0;
  const header = [
    0x40 | ihl,
    0,
    total >> 8,
    total & 0xff,
    0,
    1,
    fragment >> 8,
    fragment & 0xff,
    64,
    options.protocol ?? 1,
    0,
    0,
  ];
  return [...header, ...bytes(src), ...bytes(dst), ...new Array<number>((ihl - 5) * 4).fill(1), ...payload];
}

function ipv6(src: string, dst: string, payload: number[], nextHeader = 58): number[] {
  const length = payload.length;
  return [
    0x60,
    0,
    0,
    0,
    length >> 8,
    length & 0xff,
    nextHeader,
    64,
    ...bytes(src),
    ...bytes(dst),
    ...payload,
  ];
}

/** An ICMP echo header (checksum left 0: the kernel checks it, not us) plus payload. */
function echo(type: number, id: number, seq: number, payload: number[] = []): number[] {
  return [type, 0, 0, 0, id >> 8, id & 0xff, seq >> 8, seq & 0xff, ...payload];
}

/** An ICMP error header (type, code, checksum, 4 unused bytes) followed by the offending packet. */
function error(type: number, code: number, offending: number[]): number[] {
  return [type, code, 0, 0, 0, 0, 0, 0, ...offending];
}

const read = (packet: number[], family: 4 | 6, id = ID): EchoAnswer | undefined =>
  readEchoAnswer(Uint8Array.from(packet), family, id);

describe("readEchoAnswer, IPv4 (raw sockets deliver the IP header)", () => {
  const reply = ipv4(TARGET4, ME4, echo(0, ID, 7, [0, 0, 0, 0, 0, 0, 0, 0]));
  const unreachable = ipv4(ROUTER4, ME4, error(3, 1, ipv4(ME4, TARGET4, echo(8, ID, 9))));

  it("reads an echo reply with our identifier", () => {
    assert.deepEqual(read(reply, 4), { kind: "echo-reply", sequence: 7 });
  });

  it("skips IP options (header longer than 20 bytes)", () => {
    assert.deepEqual(read(ipv4(TARGET4, ME4, echo(0, ID, 8), { ihl: 7 }), 4), {
      kind: "echo-reply",
      sequence: 8,
    });
  });

  it("ignores replies to another identifier (another prober in this namespace)", () => {
    assert.equal(read(reply, 4, ID + 1), undefined);
  });

  it("ignores our own echo request looped back, redirects and other types", () => {
    assert.equal(read(ipv4(ME4, TARGET4, echo(8, ID, 7)), 4), undefined);
    assert.equal(read(ipv4(ROUTER4, ME4, error(5, 1, ipv4(ME4, TARGET4, echo(8, ID, 9)))), 4), undefined);
    assert.equal(read(ipv4(ROUTER4, ME4, error(4, 0, ipv4(ME4, TARGET4, echo(8, ID, 9)))), 4), undefined);
  });

  it("reads a destination unreachable that embeds our echo request, with its destination", () => {
    const answer = read(unreachable, 4);
    assert.ok(answer?.kind === "error");
    assert.equal(answer.code, "UNREACHABLE");
    assert.equal(answer.icmpType, 3);
    assert.equal(answer.icmpCode, 1);
    assert.equal(answer.sequence, 9);
    assert.deepEqual([...answer.destination], bytes(TARGET4));
  });

  it("reads time exceeded and parameter problem", () => {
    const inner = ipv4(ME4, TARGET4, echo(8, ID, 3));
    assert.equal(
      (read(ipv4(ROUTER4, ME4, error(11, 0, inner)), 4) as { code: string }).code,
      "TIME_EXCEEDED",
    );
    assert.equal(
      (read(ipv4(ROUTER4, ME4, error(12, 0, inner)), 4) as { code: string }).code,
      "PARAMETER_PROBLEM",
    );
  });

  it("ignores errors about anything but our echo requests", () => {
    const about = (inner: number[]): EchoAnswer | undefined =>
      read(ipv4(ROUTER4, ME4, error(3, 1, inner)), 4);
    assert.equal(about(ipv4(ME4, TARGET4, echo(8, ID + 1, 9))), undefined, "another identifier");
    assert.equal(about(ipv4(ME4, TARGET4, echo(0, ID, 9))), undefined, "an echo reply");
    assert.equal(about(ipv4(ME4, TARGET4, echo(8, ID, 9), { protocol: 17 })), undefined, "UDP");
    assert.equal(
      about(ipv4(ME4, TARGET4, echo(8, ID, 9), { fragment: 0x0010 })),
      undefined,
      "a later fragment",
    );
  });

  it("returns undefined for every truncation, never throws", () => {
    for (const packet of [reply.slice(0, 28), unreachable]) {
      for (let length = 0; length < packet.length; length++) {
        assert.equal(read(packet.slice(0, length), 4), undefined, `length ${length}`);
      }
    }
  });

  it("rejects a header that claims to be IPv6 or shorter than 20 bytes", () => {
    assert.equal(read([0x60, ...reply.slice(1)], 4), undefined);
    assert.equal(read([0x44, ...reply.slice(1)], 4), undefined);
  });
});

describe("readEchoAnswer, ICMPv6 (raw sockets deliver no IPv6 header)", () => {
  const reply = echo(129, ID, 5, [0, 0, 0, 0, 0, 0, 0, 0]);
  const unreachable = error(1, 3, ipv6(ME6, TARGET6, echo(128, ID, 6, [0, 0, 0, 0, 0, 0, 0, 0])));

  it("reads an echo reply with our identifier", () => {
    assert.deepEqual(read(reply, 6), { kind: "echo-reply", sequence: 5 });
    assert.equal(read(reply, 6, ID + 1), undefined);
  });

  it("reads a destination unreachable that embeds our echo request (net-ping never matched these)", () => {
    const answer = read(unreachable, 6);
    assert.ok(answer?.kind === "error");
    assert.equal(answer.code, "UNREACHABLE");
    assert.equal(answer.icmpCode, 3);
    assert.equal(answer.sequence, 6);
    assert.deepEqual([...answer.destination], bytes(TARGET6));
  });

  it("reads time exceeded and parameter problem", () => {
    const inner = ipv6(ME6, TARGET6, echo(128, ID, 1));
    assert.equal((read(error(3, 0, inner), 6) as { code: string }).code, "TIME_EXCEEDED");
    assert.equal((read(error(4, 0, inner), 6) as { code: string }).code, "PARAMETER_PROBLEM");
  });

  it("ignores our own requests, neighbour discovery, packet too big and foreign errors", () => {
    assert.equal(read(echo(128, ID, 5), 6), undefined);
    assert.equal(read([135, 0, 0, 0, 0, 0, 0, 0, ...bytes(TARGET6)], 6), undefined);
    assert.equal(read(error(2, 0, ipv6(ME6, TARGET6, echo(128, ID, 6))), 6), undefined);
    assert.equal(read(error(1, 3, ipv6(ME6, TARGET6, echo(128, ID + 1, 6))), 6), undefined);
    assert.equal(read(error(1, 3, ipv6(ME6, TARGET6, echo(128, ID, 6), 17)), 6), undefined, "UDP");
  });

  it("returns undefined for every truncation", () => {
    for (const packet of [reply.slice(0, 8), unreachable.slice(0, 56)]) {
      for (let length = 0; length < packet.length; length++) {
        assert.equal(read(packet.slice(0, length), 6), undefined, `length ${length}`);
      }
    }
  });
});

describe("readEchoAnswer on garbage", () => {
  it("never throws and only reports 16-bit sequences", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), fc.constantFrom<4 | 6>(4, 6), (packet, family) => {
        const answer = readEchoAnswer(packet, family, ID);
        if (answer !== undefined) assert.ok(answer.sequence >= 0 && answer.sequence <= 0xffff);
      }),
      { numRuns: 5_000 },
    );
  });
});

describe("answersTarget", () => {
  const target6 = bytes(TARGET6);
  it("accepts an echo reply only from the target itself, however it is written", () => {
    const reply = read(echo(129, ID, 5), 6) ?? assert.fail();
    assert.equal(answersTarget(reply, TARGET6, TARGET6, Uint8Array.from(target6)), true);
    assert.equal(answersTarget(reply, "2001:db8:1:0:0:0:0:10", TARGET6, Uint8Array.from(target6)), true);
    assert.equal(answersTarget(reply, "2001:db8:1::11", TARGET6, Uint8Array.from(target6)), false);
    assert.equal(answersTarget(reply, "not an address", TARGET6, Uint8Array.from(target6)), false);
  });

  it("accepts an error from anyone when it embeds a request to the target, and no other", () => {
    const unreachable =
      read(ipv4(ROUTER4, ME4, error(3, 1, ipv4(ME4, TARGET4, echo(8, ID, 9)))), 4) ?? assert.fail();
    const target = Uint8Array.from(bytes(TARGET4));
    assert.equal(answersTarget(unreachable, ROUTER4, TARGET4, target), true);
    assert.equal(
      answersTarget(unreachable, ROUTER4, "198.51.100.11", Uint8Array.from(bytes("198.51.100.11"))),
      false,
    );
  });
});

describe("describeEchoError", () => {
  it("names the common codes and falls back to type and code", () => {
    assert.equal(describeEchoError(4, 3, 1), "host unreachable");
    assert.equal(describeEchoError(4, 3, 13), "communication administratively prohibited");
    assert.equal(describeEchoError(4, 11, 0), "TTL exceeded in transit");
    assert.equal(describeEchoError(6, 1, 0), "no route to destination");
    assert.equal(describeEchoError(6, 3, 0), "hop limit exceeded in transit");
    assert.equal(describeEchoError(4, 3, 15), "destination unreachable (code 15)");
  });
});

describe("icmpTypeFilter", () => {
  const passes = (words: Uint32Array, type: number): boolean =>
    (((words[type >> 5] ?? 0) >>> (type & 31)) & 1) === 0;
  const wordsOf = (value: Buffer): Uint32Array => new Uint32Array(Uint8Array.from(value).buffer);

  it("lets through echo replies and the three error types only (IPv4, SOL_RAW/ICMP_FILTER)", () => {
    const filter = icmpTypeFilter(4);
    assert.deepEqual([filter.level, filter.option, filter.value.length], [255, 1, 4]);
    const words = wordsOf(filter.value);
    const passed = Array.from({ length: 32 }, (_, type) => type).filter((type) => passes(words, type));
    assert.deepEqual(passed, [0, 3, 11, 12]);
  });

  it("lets through echo replies and the three error types only (IPv6, ICMP6_FILTER)", () => {
    const filter = icmpTypeFilter(6);
    assert.deepEqual([filter.level, filter.option, filter.value.length], [58, 1, 32]);
    const words = wordsOf(filter.value);
    const passed = Array.from({ length: 256 }, (_, type) => type).filter((type) => passes(words, type));
    assert.deepEqual(passed, [1, 3, 4, 129]);
  });
});
