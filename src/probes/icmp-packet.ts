// ICMP answers to our echo requests, read from raw-socket buffers. Pure: the
// session feeds it every packet its socket sees and acts on what comes back.
//
// net-ping trusts identifier + sequence alone; we also need to know *who*
// answered. An echo reply must come from the target; an error (unreachable,
// time exceeded, parameter problem) must embed our own echo request to the
// target, which is the only proof that it is about this probe.
import { parseIpBytes, sameAddress, type IpFamily } from "../ip/address.js";

export type EchoErrorCode = "UNREACHABLE" | "TIME_EXCEEDED" | "PARAMETER_PROBLEM";

export interface EchoReply {
  readonly kind: "echo-reply";
  readonly sequence: number;
}

export interface EchoError {
  readonly kind: "error";
  readonly code: EchoErrorCode;
  readonly icmpType: number;
  readonly icmpCode: number;
  /** Sequence of the embedded echo request. */
  readonly sequence: number;
  /** Destination of the embedded echo request: a view into the packet, valid only while it is. */
  readonly destination: Uint8Array;
}

export type EchoAnswer = EchoReply | EchoError;

const ICMP4 = { echoReply: 0, unreachable: 3, echoRequest: 8, timeExceeded: 11, parameterProblem: 12 };
const ICMP6 = { unreachable: 1, timeExceeded: 3, parameterProblem: 4, echoRequest: 128, echoReply: 129 };
const IPPROTO_ICMP = 1;
const IPPROTO_ICMPV6 = 58;

const ERRORS4: ReadonlyMap<number, EchoErrorCode> = new Map([
  [ICMP4.unreachable, "UNREACHABLE"],
  [ICMP4.timeExceeded, "TIME_EXCEEDED"],
  [ICMP4.parameterProblem, "PARAMETER_PROBLEM"],
]);
const ERRORS6: ReadonlyMap<number, EchoErrorCode> = new Map([
  [ICMP6.unreachable, "UNREACHABLE"],
  [ICMP6.timeExceeded, "TIME_EXCEEDED"],
  [ICMP6.parameterProblem, "PARAMETER_PROBLEM"],
]);

/**
 * Reads one packet as a raw socket of `family` delivers it (IPv4 with its IP
 * header, ICMPv6 without) and returns it when it answers an echo request with
 * `identifier`. Everything else (other identifiers, other types, our own
 * requests looped back, truncated or malformed packets) is undefined, decided
 * before any allocation: most of what a raw socket sees is not ours.
 */
export function readEchoAnswer(
  packet: Uint8Array,
  family: IpFamily,
  identifier: number,
): EchoAnswer | undefined {
  return family === 4 ? readIcmp4(packet, identifier) : readIcmp6(packet, identifier);
}

function readIcmp4(p: Uint8Array, identifier: number): EchoAnswer | undefined {
  const icmp = ipv4HeaderLength(p, 0);
  if (icmp === 0 || p.length < icmp + 8) return undefined;
  const type = p[icmp] ?? -1;
  if (type === ICMP4.echoReply) {
    if (u16(p, icmp + 4) !== identifier) return undefined;
    return { kind: "echo-reply", sequence: u16(p, icmp + 6) };
  }
  const code = ERRORS4.get(type);
  if (code === undefined) return undefined;
  // RFC 792: the error carries the offending IP header and its first 8 bytes,
  // which for an echo request are type, code, checksum, identifier, sequence.
  const inner = icmp + 8;
  const innerLength = ipv4HeaderLength(p, inner);
  const echo = inner + innerLength;
  if (innerLength === 0 || p[inner + 9] !== IPPROTO_ICMP || p.length < echo + 8) return undefined;
  if ((u16(p, inner + 6) & 0x1fff) !== 0) return undefined; // a later fragment has no ICMP header
  if (p[echo] !== ICMP4.echoRequest || u16(p, echo + 4) !== identifier) return undefined;
  return {
    kind: "error",
    code,
    icmpType: type,
    icmpCode: p[icmp + 1] ?? 0,
    sequence: u16(p, echo + 6),
    destination: p.subarray(inner + 16, inner + 20),
  };
}

function readIcmp6(p: Uint8Array, identifier: number): EchoAnswer | undefined {
  if (p.length < 8) return undefined;
  const type = p[0] ?? -1;
  if (type === ICMP6.echoReply) {
    if (u16(p, 4) !== identifier) return undefined;
    return { kind: "echo-reply", sequence: u16(p, 6) };
  }
  const code = ERRORS6.get(type);
  if (code === undefined) return undefined;
  // RFC 4443: the error carries as much of the offending packet as fits. Our
  // requests have no extension headers, so the echo header follows the fixed
  // 40-byte IPv6 header directly (net-ping read it at the wrong offset).
  const inner = 8;
  const echo = inner + 40;
  if (p.length < echo + 8 || (p[inner] ?? 0) >> 4 !== 6 || p[inner + 6] !== IPPROTO_ICMPV6) return undefined;
  if (p[echo] !== ICMP6.echoRequest || u16(p, echo + 4) !== identifier) return undefined;
  return {
    kind: "error",
    code,
    icmpType: type,
    icmpCode: p[1] ?? 0,
    sequence: u16(p, echo + 6),
    destination: p.subarray(inner + 24, inner + 40),
  };
}

/**
 * True when `answer` is about `target`: a reply must come from the target
 * itself, an error must embed a request that was sent to the target.
 */
export function answersTarget(
  answer: EchoAnswer,
  source: string,
  target: string,
  targetBytes: Uint8Array,
): boolean {
  if (answer.kind === "error") return sameAddress(answer.destination, targetBytes);
  if (source === target) return true;
  const from = parseIpBytes(source);
  return from !== undefined && sameAddress(from, targetBytes);
}

/** "host unreachable", "hop limit exceeded in transit": the ICMP type and code in words. */
export function describeEchoError(family: IpFamily, icmpType: number, icmpCode: number): string {
  const names = family === 4 ? NAMES4 : NAMES6;
  return (
    names.get(icmpType * 256 + icmpCode) ??
    `${ERROR_KINDS[family].get(icmpType) ?? `ICMP type ${icmpType}`} (code ${icmpCode})`
  );
}

const ERROR_KINDS = {
  4: new Map([
    [ICMP4.unreachable, "destination unreachable"],
    [ICMP4.timeExceeded, "time exceeded"],
    [ICMP4.parameterProblem, "parameter problem"],
  ]),
  6: new Map([
    [ICMP6.unreachable, "destination unreachable"],
    [ICMP6.timeExceeded, "time exceeded"],
    [ICMP6.parameterProblem, "parameter problem"],
  ]),
} as const;

const named = (entries: readonly [number, number, string][]): ReadonlyMap<number, string> =>
  new Map(entries.map(([type, code, name]) => [type * 256 + code, name]));

const NAMES4 = named([
  [ICMP4.unreachable, 0, "network unreachable"],
  [ICMP4.unreachable, 1, "host unreachable"],
  [ICMP4.unreachable, 2, "protocol unreachable"],
  [ICMP4.unreachable, 3, "port unreachable"],
  [ICMP4.unreachable, 4, "fragmentation needed"],
  [ICMP4.unreachable, 6, "destination network unknown"],
  [ICMP4.unreachable, 7, "destination host unknown"],
  [ICMP4.unreachable, 9, "network administratively prohibited"],
  [ICMP4.unreachable, 10, "host administratively prohibited"],
  [ICMP4.unreachable, 13, "communication administratively prohibited"],
  [ICMP4.timeExceeded, 0, "TTL exceeded in transit"],
  [ICMP4.timeExceeded, 1, "fragment reassembly time exceeded"],
]);

const NAMES6 = named([
  [ICMP6.unreachable, 0, "no route to destination"],
  [ICMP6.unreachable, 1, "communication administratively prohibited"],
  [ICMP6.unreachable, 2, "beyond scope of source address"],
  [ICMP6.unreachable, 3, "address unreachable"],
  [ICMP6.unreachable, 4, "port unreachable"],
  [ICMP6.unreachable, 5, "source address failed ingress/egress policy"],
  [ICMP6.unreachable, 6, "reject route to destination"],
  [ICMP6.timeExceeded, 0, "hop limit exceeded in transit"],
  [ICMP6.timeExceeded, 1, "fragment reassembly time exceeded"],
]);

/**
 * Kernel-side type filters for the raw sockets (ICMP_FILTER, ICMP6_FILTER):
 * only echo replies and the three error types reach us, so neighbour
 * discovery, router advertisements and pings *to* the pod cost no wake-up.
 * A set bit blocks that type; the words are in host byte order.
 */
export function icmpTypeFilter(family: IpFamily): { level: number; option: number; value: Buffer } {
  const pass =
    family === 4
      ? [ICMP4.echoReply, ICMP4.unreachable, ICMP4.timeExceeded, ICMP4.parameterProblem]
      : [ICMP6.echoReply, ICMP6.unreachable, ICMP6.timeExceeded, ICMP6.parameterProblem];
  const words = new Uint32Array(family === 4 ? 1 : 8).fill(0xffffffff);
  for (const type of pass) words[type >> 5] = (words[type >> 5] ?? 0) & ~(1 << (type & 31));
  const SOL_RAW = 255;
  return family === 4
    ? { level: SOL_RAW, option: 1, value: Buffer.from(words.buffer) }
    : { level: IPPROTO_ICMPV6, option: 1, value: Buffer.from(words.buffer) };
}

function ipv4HeaderLength(p: Uint8Array, at: number): number {
  const first = p[at] ?? 0;
  const length = (first & 0x0f) * 4;
  if (first >> 4 !== 4 || length < 20 || p.length < at + length) return 0;
  return length;
}

function u16(p: Uint8Array, at: number): number {
  return ((p[at] ?? 0) << 8) | (p[at + 1] ?? 0);
}
