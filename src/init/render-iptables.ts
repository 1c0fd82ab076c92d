// iptables (nft or legacy flavour): chains we own, rewritten with one
// `iptables-restore --noflush` per family. Redeclaring a chain flushes it; every
// existing jump to it is deleted and exactly one inserted, in the same transaction.
import { jumpPositions } from "./iptables-save.js";
import { COUNTER_COMMENTS, describePorts, PORTED_PROTOCOLS, type RuleIntent } from "./rules.js";
import type { ChainExpectation, Family, IptablesFlavour, OwnedObject, SavedTables } from "./types.js";

interface OwnedChain {
  readonly table: string;
  readonly chain: string;
  /** The built-in chain that jumps to it. */
  readonly from: string;
}

/** Every chain this program has ever owned, in the order tables are written. */
export const OWNED_CHAINS: readonly OwnedChain[] = [
  { table: "nat", chain: "EGRESS-GW-POSTROUTING", from: "POSTROUTING" },
  { table: "mangle", chain: "EGRESS-GW-FORWARD", from: "FORWARD" },
  { table: "filter", chain: "EGRESS-GW-OUTPUT", from: "OUTPUT" },
];

interface Rule {
  readonly spec: string;
  readonly marker: string;
}

function desiredRules(family: Family, intent: RuleIntent): ReadonlyMap<string, readonly Rule[]> {
  const rules = new Map<string, readonly Rule[]>();
  const snat = intent.snat[family];
  if (snat !== undefined) {
    const match = `-o ${intent.egress} ! -s ${snat}${family === 4 ? "/32" : "/128"}`;
    const to = `${family === 4 ? snat : `[${snat}]`}:${describePorts(intent.snatPorts)}`;
    const comment = `-m comment --comment ${COUNTER_COMMENTS.snat(family)}`;
    rules.set("EGRESS-GW-POSTROUTING", [
      ...PORTED_PROTOCOLS.map((protocol) => {
        // In the order iptables-save prints it: protocol, then matches, then the target.
        const target = `-p ${protocol} ${comment} -j SNAT --to-source ${to} --random-fully`;
        return { spec: `${match} ${target}`, marker: target };
      }),
      {
        spec: `${match} ${comment} -j SNAT --to-source ${snat} --random-fully`,
        marker: `-j SNAT --to-source ${snat} --random-fully`,
      },
    ]);
    // Rules without a target only count; the MSS clamp after them sees every packet as before.
    const forwarded = COUNTER_COMMENTS.forwarded(family);
    const established = COUNTER_COMMENTS.snatEstablished(family);
    rules.set("EGRESS-GW-FORWARD", [
      { spec: `-m comment --comment ${forwarded}`, marker: forwarded },
      { spec: `-m conntrack --ctstate SNAT -m comment --comment ${established}`, marker: established },
    ]);
  }
  const mss = intent.mss[family];
  if (mss !== undefined) {
    rules.set("EGRESS-GW-FORWARD", [
      ...(rules.get("EGRESS-GW-FORWARD") ?? []),
      {
        spec:
          `-o ${intent.egress} -p tcp -m tcp --tcp-flags SYN,RST SYN ` +
          `-m tcpmss --mss ${mss + 1}:65535 -j TCPMSS --set-mss ${mss}`,
        marker: `--set-mss ${mss}`,
      },
    ]);
  }
  if (family === 6 && intent.dropIcmpv6Redirects) {
    rules.set("EGRESS-GW-OUTPUT", [
      { spec: "-p ipv6-icmp -m icmp6 --icmpv6-type 137 -j DROP", marker: "--icmpv6-type 137" },
    ]);
  }
  return rules;
}

export function restoreArgv(flavour: IptablesFlavour, family: Family): string[] {
  return [`${family === 4 ? "iptables" : "ip6tables"}-${flavour}-restore`, "-w", "5", "--noflush"];
}

export interface RenderedIptables {
  readonly input: string;
  readonly chains: readonly ChainExpectation[];
  /** Owned chains present in `saved` that the intent no longer needs: removed by the same input. */
  readonly removed: readonly OwnedObject[];
}

/**
 * The restore input for one family. `saved` is that family's current dump (for
 * the jumps to delete); without it (unprivileged dry run) no jumps are assumed.
 */
export function renderIptables(
  flavour: IptablesFlavour,
  family: Family,
  intent: RuleIntent,
  saved: SavedTables | undefined,
): RenderedIptables {
  const desired = desiredRules(family, intent);
  const blocks: string[] = [];
  const chains: ChainExpectation[] = [];
  const removed: OwnedObject[] = [];
  for (const table of tablesInOrder()) {
    const lines: string[] = [];
    for (const owned of OWNED_CHAINS.filter((c) => c.table === table)) {
      const rules = desired.get(owned.chain);
      const builtIn = saved?.get(table)?.get(owned.from) ?? [];
      const exists = saved?.get(table)?.has(owned.chain) ?? false;
      if (rules !== undefined) {
        lines.push(`:${owned.chain} - [0:0]`, ...deleteJumps(owned, builtIn));
        lines.push(
          `-I ${owned.from} 1 -j ${owned.chain}`,
          ...rules.map((r) => `-A ${owned.chain} ${r.spec}`),
        );
        chains.push({
          family,
          table,
          chain: owned.chain,
          markers: rules.map((r) => r.marker),
          jumpFrom: owned.from,
        });
      } else if (exists) {
        lines.push(...deleteJumps(owned, builtIn), `-F ${owned.chain}`, `-X ${owned.chain}`);
        removed.push({ kind: "iptables-chain", flavour, family, table, chain: owned.chain });
      }
    }
    if (lines.length > 0) blocks.push([`*${table}`, ...lines, "COMMIT"].join("\n"));
  }
  return { input: blocks.length > 0 ? `${blocks.join("\n")}\n` : "", chains, removed };
}

/** Input that removes every owned chain present in `saved` (a previous run with another dataplane). */
export function renderIptablesRemoval(
  flavour: IptablesFlavour,
  family: Family,
  saved: SavedTables,
): RenderedIptables {
  return renderIptables(
    flavour,
    family,
    { egress: "", snat: {}, snatPorts: { first: 1, last: 65_535 }, mss: {}, dropIcmpv6Redirects: false },
    saved,
  );
}

// Highest position first, so that each delete leaves the positions of the others as they were.
function deleteJumps(owned: OwnedChain, builtIn: readonly string[]): string[] {
  return jumpPositions(builtIn, owned.chain)
    .reverse()
    .flatMap((position) => [
      `# existing jump at ${owned.from} position ${position}: ${builtIn[position - 1] ?? ""}`,
      `-D ${owned.from} ${position}`,
    ]);
}

function tablesInOrder(): string[] {
  return [...new Set(OWNED_CHAINS.map((c) => c.table))];
}
