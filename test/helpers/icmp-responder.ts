// A scripted IPv4 echo responder for ICMP prober tests, for the answers a
// kernel never gives: a reply that comes late, or an unreachable that embeds
// a request to somebody else. Run it with `ip netns exec` in a namespace whose
// kernel ignores echo requests (net.ipv4.icmp_echo_ignore_all=1); it prints
// "ready" once listening and runs until killed.
//
// argv[2]: JSON object, destination address -> behaviour:
//   { "delayMs": n }     echo reply after n ms
//   { "claim": "a.b.c.d" } destination unreachable (host) embedding the request
//                        with its destination rewritten to that address
import { createRequire } from "node:module";

import { parseIpBytes } from "../../src/ip/address.js";

export type ResponderScript = Record<string, { delayMs: number } | { claim: string }>;

interface RawSocketModule {
  createSocket(options: { protocol: number }): {
    on(event: "message", listener: (packet: Buffer, source: string) => void): void;
    send(
      buffer: Buffer,
      offset: number,
      length: number,
      address: string,
      done: (error?: Error) => void,
    ): void;
  };
  createChecksum(buffer: Buffer): number;
  writeChecksum(buffer: Buffer, offset: number, checksum: number): Buffer;
}

const raw = createRequire(import.meta.url)("raw-socket") as RawSocketModule;
const script = JSON.parse(process.argv[2] ?? "{}") as ResponderScript;
const socket = raw.createSocket({ protocol: 1 });

function checksummed(icmp: Buffer): Buffer {
  icmp.writeUInt16BE(0, 2);
  raw.writeChecksum(icmp, 2, raw.createChecksum(icmp));
  return icmp;
}

function send(icmp: Buffer, to: string): void {
  socket.send(icmp, 0, icmp.length, to, (error) => {
    if (error) process.stderr.write(`responder: send to ${to}: ${error.message}\n`);
  });
}

socket.on("message", (packet, source) => {
  const headerLength = ((packet[0] ?? 0) & 0x0f) * 4;
  if (packet[headerLength] !== 8) return;
  const destination = [...packet.subarray(16, 20)].join(".");
  const behaviour = script[destination];
  if (behaviour === undefined) return;
  if ("delayMs" in behaviour) {
    const reply = checksummed(Buffer.from(packet.subarray(headerLength)).fill(0, 0, 1));
    setTimeout(() => send(reply, source), behaviour.delayMs);
    return;
  }
  const claimed = parseIpBytes(behaviour.claim) ?? new Uint8Array(4);
  const offending = Buffer.from(packet.subarray(0, headerLength + 8));
  offending.set(claimed, 16);
  send(checksummed(Buffer.concat([Buffer.from([3, 1, 0, 0, 0, 0, 0, 0]), offending])), source);
});

process.stdout.write("ready\n");
