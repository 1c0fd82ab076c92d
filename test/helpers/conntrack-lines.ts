// Random conntrack table lines in the kernel's format, and a reference tally
// that reads them the plain way (split on spaces, strings throughout), for
// checking the byte-level parser against it.
import type { ConntrackSummary } from "../../src/telemetry/conntrack-tally.js";
import { topOf } from "../../src/telemetry/conntrack-tally.js";
import { formatIp, parseIpBytes } from "../../src/ip/address.js";

/** A deterministic uniform [0, 1) source (mulberry32), so that a failing seed repeats. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const GATEWAY = { ipv4: "198.51.100.2", ipv6: "2001:0db8:0100:0000:0000:0000:0000:0002" };
const CLIENTS = {
  ipv4: ["198.51.100.10", "198.51.100.11", "0.0.0.0", "255.255.255.255", "10.0.0.1"],
  ipv6: ["2001:0db8:0100:0000:0000:0000:0000:0010", "2001:0db8:0100:0000:0000:0000:0000:0011"],
};
const PEERS = {
  ipv4: ["203.0.113.10", "203.0.113.53", "198.18.0.1", "255.255.255.255"],
  ipv6: ["2001:0db8:0113:0000:0000:0000:0000:0010", "2001:0db8:0113:0000:0000:0000:0000:0053"],
};

/** Protocol name and number as /proc writes them, its states, and whether its tuples carry ports. */
const PROTOCOLS = [
  {
    name: "tcp",
    number: 6,
    states: ["ESTABLISHED", "SYN_SENT", "SYN_SENT2", "TIME_WAIT", "CLOSE", "FIN_WAIT"],
    ports: true,
  },
  { name: "udp", number: 17, states: [], ports: true },
  { name: "udplite", number: 136, states: [], ports: true },
  { name: "sctp", number: 132, states: ["ESTABLISHED", "COOKIE_WAIT", "CLOSED"], ports: true },
  { name: "dccp", number: 33, states: ["OPEN", "CLOSING", "TIMEWAIT"], ports: true },
  { name: "icmp", number: 1, states: [], ports: false },
  { name: "icmpv6", number: 58, states: [], ports: false },
  { name: "gre", number: 47, states: [], ports: false },
  { name: "unknown", number: 99, states: [], ports: false },
] as const;

/** One table line: any family, protocol and state, with or without SNAT, flags, accounting, zones and marks. */
export function randomLine(random: () => number): string {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const family = random() < 0.75 ? "ipv4" : "ipv6";
  const protocol = pick(PROTOCOLS);
  const client = pick(CLIENTS[family]);
  const peer = pick(PEERS[family]);
  // SNATed (the reply goes to the gateway), or the gateway's own connection.
  const snat = random() < 0.8;
  const source = snat ? client : GATEWAY[family];
  const port = (): number => pick([0, 53, 443, 1024, 40000, 65535, Math.floor(random() * 65536)]);
  const [sport, dport, snatPort] = [port(), port(), port()];
  const l4 = (from: number, to: number): string =>
    protocol.ports
      ? `sport=${from} dport=${to} `
      : protocol.name === "gre"
        ? `srckey=0x0 dstkey=0x0 `
        : protocol.number === 99
          ? ""
          : `type=8 code=0 id=${from} `;
  const accounting = random() < 0.3;
  const counted = (): string =>
    accounting ? `packets=${Math.floor(random() * 100)} bytes=${Math.floor(random() * 1e6)} ` : "";
  const zone = (direction: string): string =>
    random() < 0.1 ? `zone-${direction}=${Math.floor(random() * 5)} ` : "";
  const state = protocol.states.length > 0 ? `${pick(protocol.states)} ` : "";
  return (
    `${family.padEnd(8)} ${family === "ipv4" ? 2 : 10} ${protocol.name.padEnd(8)} ${protocol.number} ${Math.floor(random() * 432000)} ` +
    state +
    `src=${source} dst=${peer} ${l4(sport, dport)}${counted()}${zone("orig")}` +
    (random() < 0.3 ? "[UNREPLIED] " : "") +
    `src=${peer} dst=${snat ? GATEWAY[family] : source} ${l4(dport, snat ? snatPort : sport)}${counted()}${zone("reply")}` +
    (random() < 0.5 ? "[ASSURED] " : "") +
    (random() < 0.1 ? "[OFFLOAD] " : "") +
    `mark=${random() < 0.8 ? 0 : Math.floor(random() * 4096)} ` +
    (random() < 0.2 ? `delta-time=${Math.floor(random() * 1000)} ` : "") +
    `zone=${random() < 0.9 ? 0 : Math.floor(random() * 5)} use=2`
  );
}

const PORTED = new Set(["tcp", "udp", "sctp", "dccp", "udplite"]);
const canonical = (address: string): string => {
  const bytes = address.includes(":") ? parseIpBytes(address) : undefined;
  return bytes === undefined ? address : formatIp(bytes);
};

/** What the table says, read the plain way: one string per field. */
export function referenceTally(text: string, topN: number): ConntrackSummary {
  let entries = 0;
  let snat = 0;
  let live = 0;
  const perDestination = new Map<string, number>();
  const perClient = new Map<string, number>();
  const add = (counts: Map<string, number>, key: string): void => {
    counts.set(key, (counts.get(key) ?? 0) + 1);
  };
  for (const line of text.split("\n")) {
    if (!line.startsWith("ipv4 ") && !line.startsWith("ipv6 ")) continue;
    const fields = line.split(" ").filter((field) => field !== "");
    const protocol = fields[2] ?? "";
    let at = 5;
    const state = fields[at]?.startsWith("src=") ? undefined : fields[at++];
    if (!fields[at]?.startsWith("src=") || !fields[at + 1]?.startsWith("dst=")) continue;
    const client = fields[at]!.slice(4);
    let reply = at + 2;
    while (reply < fields.length && !fields[reply]!.startsWith("src=")) reply++;
    if (!fields[reply + 1]?.startsWith("dst=")) continue;
    entries++;
    if (fields[reply + 1]!.slice(4) === client) continue;
    snat++;
    if (protocol !== "tcp" || (state !== "TIME_WAIT" && state !== "CLOSE")) {
      live++;
      add(perClient, client);
    }
    const port = fields[reply + 2]?.startsWith("sport=") ? fields[reply + 2]!.slice(6) : "";
    if (!PORTED.has(protocol) || !/^\d{1,5}$/.test(port) || Number(port) > 65535) continue;
    add(perDestination, `${protocol} ${fields[reply]!.slice(4)} ${Number(port)}`);
  }
  return {
    entries,
    snatConnections: snat,
    liveForwarded: live,
    destinations: topOf(perDestination, topN).map(([key, portsInUse]) => {
      const [protocol = "", address = "", port = ""] = key.split(" ");
      return { address: canonical(address), port: Number(port), protocol, portsInUse };
    }),
    talkers: topOf(perClient, topN).map(([client, connections]) => ({
      client: canonical(client),
      connections,
    })),
  };
}
