// Reads back what the plan promised (sysctls, vxlan0, rules) and reports every
// difference. The comparisons are pure functions over the tools' output; only
// `verifyPlan` reads the kernel.
import { oneLine, VerifyFailedError } from "./errors.js";
import { runCommand } from "../exec/run-command.js";
import { jumpPositions, parseIptablesSave } from "./iptables-save.js";
import { parseLinks } from "./links.js";
import { NFT_TABLE } from "./render-nft.js";
import { readSysctl } from "./sysctl.js";
import type {
  ChainExpectation,
  Family,
  InitPlan,
  IptablesFlavour,
  LinkInfo,
  SavedTables,
  VxlanPlan,
} from "./types.js";

export async function verifyPlan(plan: InitPlan): Promise<void> {
  const checks = await Promise.all([verifySysctls(plan), verifyLink(plan), verifyRules(plan)]);
  const problems = checks.flat();
  if (problems.length > 0) {
    throw new VerifyFailedError(`read-back differs from the plan: ${problems.join("; ")}`);
  }
}

async function verifySysctls(plan: InitPlan): Promise<string[]> {
  const found = await Promise.all(
    plan.expect.sysctls.map(async (w) => ({ ...w, got: await readSysctl(w.key).catch(() => "unreadable") })),
  );
  return found.filter((w) => w.got !== w.value).map((w) => `${w.key} is ${w.got}, expected ${w.value}`);
}

async function verifyLink(plan: InitPlan): Promise<string[]> {
  if (plan.vxlan === undefined) return [];
  const result = await runCommand(["ip", "-d", "-j", "link", "show", "dev", plan.vxlan.name]);
  if (!result.ok) return [`${plan.vxlan.name}: ${oneLine(result.stderr)}`];
  return checkVxlan(parseLinks(result.stdout)[0], plan.vxlan);
}

export function checkVxlan(link: LinkInfo | undefined, want: VxlanPlan): string[] {
  if (link === undefined) return [`${want.name} is missing`];
  const found = [
    ["VNI", link.vxlan?.vni, want.vni],
    ["port", link.vxlan?.port, want.port],
    ["dev", link.vxlan?.dev, want.dev],
    ["MAC", link.mac, want.mac],
    ["MTU (the MSS clamp assumes it)", link.mtu, want.mtu],
    ["state", link.up ? "up" : "down", "up"],
  ] as const;
  return found
    .filter(([, got, expected]) => got !== expected)
    .map(([what, got, expected]) => `${want.name} ${what} is ${got}, expected ${expected}`);
}

async function verifyRules(plan: InitPlan): Promise<string[]> {
  const checks = await Promise.all([
    verifyNft(plan),
    ...iptablesDumps(plan).map((d) => verifyIptables(plan, d)),
  ]);
  return checks.flat();
}

async function verifyNft(plan: InitPlan): Promise<string[]> {
  if (plan.dataplane.kind === "nftables") {
    const table = await runCommand(["nft", "list", "table", "inet", NFT_TABLE]);
    if (!table.ok) return [`table inet ${NFT_TABLE}: ${oneLine(table.stderr)}`];
    return checkNftTable(table.stdout, plan.expect.chains);
  }
  if (!plan.expect.removed.some((owned) => owned.kind === "nft-table")) return [];
  const listed = await runCommand(["nft", "list", "tables"]);
  const present = listed.stdout.split("\n").some((line) => line.trim() === `table inet ${NFT_TABLE}`);
  return present ? [`table inet ${NFT_TABLE} is still there`] : [];
}

interface Dump {
  readonly flavour: IptablesFlavour;
  readonly family: Family;
}

/** The iptables dumps to read: the active flavour's, and those where the plan removed our chains. */
function iptablesDumps(plan: InitPlan): Dump[] {
  const dumps = new Map<string, Dump>();
  if (plan.dataplane.kind === "iptables") {
    const flavour = plan.dataplane.flavour;
    for (const family of plan.families) dumps.set(`${flavour}${family}`, { flavour, family });
  }
  for (const owned of plan.expect.removed) {
    if (owned.kind === "iptables-chain") dumps.set(`${owned.flavour}${owned.family}`, owned);
  }
  return [...dumps.values()];
}

async function verifyIptables(plan: InitPlan, { flavour, family }: Dump): Promise<string[]> {
  const tool = `iptables-${flavour}`;
  const result = await runCommand([`${family === 4 ? "iptables" : "ip6tables"}-${flavour}-save`]);
  if (!result.ok) return [`${tool} IPv${family}: ${oneLine(result.stderr)}`];
  const saved = parseIptablesSave(result.stdout);
  const active = plan.dataplane.kind === "iptables" && plan.dataplane.flavour === flavour;
  const expected = active ? plan.expect.chains.filter((chain) => chain.family === family) : [];
  const leftovers = plan.expect.removed.flatMap((owned) =>
    owned.kind === "iptables-chain" &&
    owned.flavour === flavour &&
    owned.family === family &&
    saved.get(owned.table)?.has(owned.chain) === true
      ? [`${tool} IPv${family} ${owned.table} ${owned.chain} is still there`]
      : [],
  );
  return [...checkIptables(saved, expected, tool), ...leftovers];
}

/** `nft list table` output against the expected chains: each present, with exactly its rules in order. */
export function checkNftTable(text: string, chains: readonly ChainExpectation[]): string[] {
  const found = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    const start = /^chain (\S+) \{$/.exec(line);
    if (start) found.set(start[1] ?? "", (current = []));
    else if (line === "}") current = undefined;
    else if (current !== undefined && line !== "" && !line.startsWith("type ")) current.push(line);
  }
  const problems = chains.flatMap((chain) =>
    checkRules(`table inet ${NFT_TABLE} chain ${chain.chain}`, found.get(chain.chain), chain.markers),
  );
  for (const name of found.keys()) {
    if (!chains.some((c) => c.chain === name))
      problems.push(`table inet ${NFT_TABLE} has an unexpected chain ${name}`);
  }
  return problems;
}

/** One family's iptables-save against the expected chains, and exactly one jump to each. */
export function checkIptables(
  saved: SavedTables,
  chains: readonly ChainExpectation[],
  tool: string,
): string[] {
  return chains.flatMap((chain) => {
    const where = `${tool} IPv${chain.family} ${chain.table}`;
    const problems = checkRules(
      `${where} ${chain.chain}`,
      saved.get(chain.table)?.get(chain.chain),
      chain.markers,
    );
    if (chain.jumpFrom !== undefined) {
      const jumps = jumpPositions(saved.get(chain.table)?.get(chain.jumpFrom) ?? [], chain.chain).length;
      if (jumps !== 1)
        problems.push(`${where} ${chain.jumpFrom} has ${jumps} jumps to ${chain.chain}, expected 1`);
    }
    return problems;
  });
}

function checkRules(
  where: string,
  rules: readonly string[] | undefined,
  markers: readonly string[],
): string[] {
  if (rules === undefined) return [`${where} is missing`];
  if (rules.length !== markers.length)
    return [`${where} has ${rules.length} rules, expected ${markers.length}`];
  return markers.flatMap((marker, i) =>
    (rules[i] ?? "").includes(marker) ? [] : [`${where} rule ${i + 1} lacks "${marker}"`],
  );
}
