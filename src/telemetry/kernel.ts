// The thin readers of kernel state, all in the process's own network namespace
// (the pod's): our rules' counters through the backend init used, and the
// conntrack table's size, limit and statistics from /proc.
import { readFile } from "node:fs/promises";
import { runCommand } from "../exec/run-command.js";
import { NFT_TABLE } from "../init/render-nft.js";
import { parseConntrackStats, type ConntrackStats } from "./conntrack-stats.js";
import { TelemetryNoRulesError, TelemetryReadError } from "./errors.js";
import { parseIptablesCounters, parseNftCounters, type RuleCounters } from "./rule-counters.js";

export type RulesBackend = "nftables" | "iptables-nft" | "iptables-legacy";

const BACKENDS: readonly RulesBackend[] = ["nftables", "iptables-nft", "iptables-legacy"];

async function readBackend(backend: RulesBackend): Promise<RuleCounters> {
  if (backend === "nftables") {
    const listed = await runCommand(["nft", "-j", "list", "table", "inet", NFT_TABLE]);
    if (!listed.ok) throw new TelemetryReadError(`nft: ${listed.stderr.trim()}`);
    return parseNftCounters(listed.stdout);
  }
  const flavour = backend === "iptables-nft" ? "nft" : "legacy";
  const saved = await Promise.all(
    ([4, 6] as const).map(async (family) => {
      const tool = family === 4 ? "iptables" : "ip6tables";
      const result = await runCommand([`${tool}-${flavour}-save`, "-c"]);
      return result.ok ? parseOr(result.stdout, family) : undefined;
    }),
  );
  // A family the pod does not have has no rules; one family is enough.
  const counters: RuleCounters = { ...saved[0], ...saved[1] };
  if (Object.keys(counters).length === 0) {
    throw new TelemetryNoRulesError(`iptables-${flavour} holds none of our counting rules`);
  }
  return counters;
}

function parseOr(text: string, family: 4 | 6): RuleCounters | undefined {
  try {
    return parseIptablesCounters(text, family);
  } catch {
    return undefined;
  }
}

/**
 * Reads our rules' counters from whichever backend holds them. The backend that
 * answered last time is asked first; the others only when it stops answering
 * (init ran again with another DATAPLANE).
 */
export function ruleCounterReader(): () => Promise<RuleCounters> {
  let known: RulesBackend | undefined;
  return async () => {
    const order = known ? [known, ...BACKENDS.filter((b) => b !== known)] : BACKENDS;
    const problems: string[] = [];
    for (const backend of order) {
      try {
        const counters = await readBackend(backend);
        known = backend;
        return counters;
      } catch (error) {
        problems.push(`${backend}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    known = undefined;
    throw new TelemetryNoRulesError(
      `no backend holds the counting rules of init-gateway.sh (${problems.join("; ")})`,
    );
  };
}

export interface ConntrackUsage {
  readonly entries: number;
  /** nf_conntrack_max: host-wide, the same in every namespace. */
  readonly limit: number;
}

const NETFILTER = "/proc/sys/net/netfilter";

export async function readConntrackUsage(): Promise<ConntrackUsage> {
  const [entries, limit] = await Promise.all(
    ["nf_conntrack_count", "nf_conntrack_max"].map(async (name) => {
      const text = await readFile(`${NETFILTER}/${name}`, "utf8");
      const value = Number(text.trim());
      if (!Number.isSafeInteger(value)) {
        throw new TelemetryReadError(`${NETFILTER}/${name} holds "${text.trim()}"`);
      }
      return value;
    }),
  );
  return { entries: entries ?? 0, limit: limit ?? 0 };
}

export async function readConntrackStats(): Promise<ConntrackStats> {
  return parseConntrackStats(await readFile("/proc/net/stat/nf_conntrack", "utf8"));
}
