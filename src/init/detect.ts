// What is there before anything changes: privileges, links, and which rule
// tools work and what they already hold. Read-only. Checks that need
// CAP_NET_ADMIN are skipped without it and reported as "unknown", so that a dry
// run by an ordinary user still gets a plan (with its assumptions stated).
import { readFile } from "node:fs/promises";
import { DetectFailedError, oneLine } from "./errors.js";
import { runCommand } from "../exec/run-command.js";
import { parseIptablesSave } from "./iptables-save.js";
import { parseLinks } from "./links.js";
import { NFT_TABLE } from "./render-nft.js";
import { procSysProblem } from "./sysctl.js";
import type {
  Detected,
  Family,
  IptablesFlavour,
  IptablesState,
  Privilege,
  SavedTables,
  ToolState,
} from "./types.js";

const CAP_NET_ADMIN = 12n;
const UNPRIVILEGED: ToolState = { state: "unknown", reason: "needs CAP_NET_ADMIN" };

export async function detectPrivilege(): Promise<Privilege> {
  const [status, procSys] = await Promise.all([readFile("/proc/self/status", "utf8"), procSysProblem()]);
  const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  const netAdmin = capEff !== undefined && ((BigInt(`0x${capEff}`) >> CAP_NET_ADMIN) & 1n) === 1n;
  return { netAdmin, procSysProblem: procSys };
}

/** `families`: the pod's; iptables dumps are taken for those only. */
export async function detect(families: readonly Family[]): Promise<Detected> {
  const privilege = await detectPrivilege();
  const [links, nft, nftFlavour, legacyFlavour] = await Promise.all([
    detectLinks(),
    privilege.netAdmin ? detectNft() : { tool: UNPRIVILEGED, hasOurTable: false },
    privilege.netAdmin ? detectIptables("nft", families) : { tool: UNPRIVILEGED, saved: {} },
    privilege.netAdmin ? detectIptables("legacy", families) : { tool: UNPRIVILEGED, saved: {} },
  ]);
  return { privilege, links, nft, iptables: { nft: nftFlavour, legacy: legacyFlavour } };
}

async function detectLinks(): Promise<Detected["links"]> {
  const result = await runCommand(["ip", "-d", "-j", "addr", "show"]);
  if (!result.ok)
    throw new DetectFailedError(`listing links failed: ip -d -j addr show: ${oneLine(result.stderr)}`);
  try {
    return parseLinks(result.stdout);
  } catch {
    throw new DetectFailedError(
      "listing links failed: ip -d -j addr show printed no JSON array (iproute2 too old?)",
    );
  }
}

async function detectNft(): Promise<Detected["nft"]> {
  const result = await runCommand(["nft", "list", "tables"]);
  if (!result.ok) return { tool: { state: "fails", reason: oneLine(result.stderr) }, hasOurTable: false };
  return {
    tool: { state: "works" },
    hasOurTable: result.stdout.split("\n").some((line) => line.trim() === `table inet ${NFT_TABLE}`),
  };
}

async function detectIptables(flavour: IptablesFlavour, families: readonly Family[]): Promise<IptablesState> {
  const dumps = await Promise.all(
    families.map(async (family) => ({
      family,
      result: await runCommand([`${family === 4 ? "iptables" : "ip6tables"}-${flavour}-save`]),
    })),
  );
  const failed = dumps.find((dump) => !dump.result.ok);
  if (failed !== undefined)
    return { tool: { state: "fails", reason: oneLine(failed.result.stderr) }, saved: {} };
  const saved: Partial<Record<Family, SavedTables>> = {};
  for (const dump of dumps) saved[dump.family] = parseIptablesSave(dump.result.stdout);
  return { tool: { state: "works" }, saved };
}
