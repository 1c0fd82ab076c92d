// Packet and byte counters of our own rules, as each backend lists them:
// `nft -j list table inet egress_gateway`, or `iptables-save -c` (nft or
// legacy flavour). Rules are found by the comments init gives them
// (COUNTER_COMMENTS), so foreign rules never count. Pure.
import { COUNTER_COMMENTS, FAMILIES, nfFamily } from "../init/rules.js";
import type { Family } from "../init/types.js";
import { TelemetryNoRulesError } from "./errors.js";

export interface Counter {
  readonly packets: number;
  readonly bytes: number;
}

export interface FamilyCounters {
  /** Every packet the pod forwarded, both directions. */
  readonly forwarded: Counter;
  /** Every packet of SNATed connections, both directions. */
  readonly snat: Counter;
  /** SNATed connections (the SNAT rule sees only each connection's first packet). */
  readonly snatConnections: number;
  /** Ports the SNAT rule allocates from: its explicit range, else the kernel's 1024-65535. */
  readonly snatPorts: number;
}

export type RuleCounters = Partial<Record<"ipv4" | "ipv6", FamilyCounters>>;

/** Source ports the kernel picks from for a connection from an unprivileged port when the rule names no range. */
export const KERNEL_PORT_RANGE = { first: 1024, last: 65535 } as const;

interface Found {
  readonly counter: Counter;
  readonly ports?: { readonly first: number; readonly last: number };
}

/**
 * Several rules may carry one comment (one SNAT rule for TCP and UDP with the
 * port range, one for the other protocols): their counters add up, and the
 * port range is the one a rule names.
 */
function add(found: Map<string, Found>, comment: string, rule: Found): void {
  const seen = found.get(comment);
  found.set(
    comment,
    seen === undefined
      ? rule
      : {
          counter: {
            packets: seen.counter.packets + rule.counter.packets,
            bytes: seen.counter.bytes + rule.counter.bytes,
          },
          ports: seen.ports ?? rule.ports,
        },
  );
}

function assemble(found: ReadonlyMap<string, Found>, source: string): RuleCounters {
  const out: { -readonly [K in keyof RuleCounters]: FamilyCounters } = {};
  for (const family of FAMILIES) {
    const snat = found.get(COUNTER_COMMENTS.snat(family));
    const forwarded = found.get(COUNTER_COMMENTS.forwarded(family));
    const established = found.get(COUNTER_COMMENTS.snatEstablished(family));
    if (snat === undefined || forwarded === undefined || established === undefined) continue;
    const ports = snat.ports ?? KERNEL_PORT_RANGE;
    out[nfFamily(family)] = {
      forwarded: forwarded.counter,
      snat: {
        packets: snat.counter.packets + established.counter.packets,
        bytes: snat.counter.bytes + established.counter.bytes,
      },
      snatConnections: snat.counter.packets,
      snatPorts: ports.last - ports.first + 1,
    };
  }
  if (Object.keys(out).length === 0) {
    throw new TelemetryNoRulesError(`${source} holds none of our counting rules`);
  }
  return out;
}

interface NftJsonRule {
  readonly comment?: string;
  readonly expr?: readonly Record<string, unknown>[];
}

/** `nft -j list table inet egress_gateway` output. */
export function parseNftCounters(json: string): RuleCounters {
  const doc = JSON.parse(json) as { nftables?: readonly { rule?: NftJsonRule }[] };
  const found = new Map<string, Found>();
  for (const { rule } of doc.nftables ?? []) {
    if (rule?.comment === undefined) continue;
    let counter: Counter | undefined;
    let ports: Found["ports"];
    for (const expr of rule.expr ?? []) {
      if ("counter" in expr) counter = expr.counter as Counter;
      if ("snat" in expr) ports = nftPorts((expr.snat as { port?: unknown }).port);
    }
    if (counter !== undefined) add(found, rule.comment, { counter, ports });
  }
  return assemble(found, "table inet egress_gateway");
}

/** nft JSON writes a port as a number and a range as {"range": [first, last]}. */
function nftPorts(port: unknown): Found["ports"] {
  if (typeof port === "number") return { first: port, last: port };
  const range = (port as { range?: unknown } | undefined)?.range;
  if (Array.isArray(range) && typeof range[0] === "number" && typeof range[1] === "number") {
    return { first: range[0], last: range[1] };
  }
  return undefined;
}

const SAVED_RULE = /^\[(\d+):(\d+)\] -A \S+ .*--comment "?(egw-[a-z0-9-]+)"?/;
// IPv4 a.b.c.d:first-last, IPv6 [addr]:first-last; without ports the address alone.
const TO_SOURCE_PORTS = /--to-source (?:\[[0-9a-f:]+\]|[0-9.]+):(\d+)(?:-(\d+))?/i;

/** `iptables-save -c` (or ip6tables-save -c) output of one family. */
export function parseIptablesCounters(text: string, family: Family): RuleCounters {
  const found = new Map<string, Found>();
  for (const line of text.split("\n")) {
    const match = SAVED_RULE.exec(line);
    if (!match) continue;
    const ports = TO_SOURCE_PORTS.exec(line);
    const first = Number(ports?.[1]);
    add(found, match[3] ?? "", {
      counter: { packets: Number(match[1]), bytes: Number(match[2]) },
      ports: ports ? { first, last: ports[2] === undefined ? first : Number(ports[2]) } : undefined,
    });
  }
  return assemble(found, `the ${family === 4 ? "iptables" : "ip6tables"} rules`);
}
