// The kernel state one check compares: links, the baseline backend's rules and
// the planned sysctls. Read-only, and cheap: two or three short-lived tools
// (ip, then nft or one iptables-save per family) and a few /proc/sys reads.
import { EgressGatewayError } from "../errors.js";
import { runCommand } from "../exec/run-command.js";
import { oneLine } from "../init/errors.js";
import { parseIptablesSave } from "../init/iptables-save.js";
import { parseLinks } from "../init/links.js";
import { NFT_TABLE } from "../init/render-nft.js";
import { readSysctl } from "../init/sysctl.js";
import type { Dataplane, Family, LinkInfo, SavedTables } from "../init/types.js";
import type { ObservedRules } from "./baseline.js";

/** A tool the check needs failed: the state is unknown, which is not the same as drifted. */
export class DataplaneReadError extends EgressGatewayError {
  readonly code = "EGW_ERR_DATAPLANE_READ";
}

export async function readLinks(): Promise<LinkInfo[]> {
  const result = await runCommand(["ip", "-d", "-j", "addr", "show"]);
  if (!result.ok) throw new DataplaneReadError(`ip -d -j addr show: ${oneLine(result.stderr)}`);
  try {
    return parseLinks(result.stdout);
  } catch {
    throw new DataplaneReadError("ip -d -j addr show printed no JSON array");
  }
}

export async function readRules(dataplane: Dataplane, families: readonly Family[]): Promise<ObservedRules> {
  if (dataplane.kind === "nftables") {
    const listed = await runCommand(["nft", "list", "table", "inet", NFT_TABLE]);
    if (listed.ok) return { kind: "nftables", table: listed.stdout };
    // nft says ENOENT for a table that is not there; anything else means nft itself failed.
    if (/No such file or directory/.test(listed.stderr)) return { kind: "nftables", table: undefined };
    throw new DataplaneReadError(`nft list table inet ${NFT_TABLE}: ${oneLine(listed.stderr)}`);
  }
  const { flavour } = dataplane;
  const saved: Partial<Record<Family, SavedTables>> = {};
  await Promise.all(
    families.map(async (family) => {
      const tool = `${family === 4 ? "iptables" : "ip6tables"}-${flavour}-save`;
      const dump = await runCommand([tool]);
      if (!dump.ok) throw new DataplaneReadError(`${tool}: ${oneLine(dump.stderr)}`);
      saved[family] = parseIptablesSave(dump.stdout);
    }),
  );
  return { kind: "iptables", flavour, saved };
}

/** Each key's value, undefined when it cannot be read (a device that is gone has no conf directory). */
export async function readSysctls(keys: readonly string[]): Promise<Map<string, string | undefined>> {
  const values = await Promise.all(keys.map((key) => readSysctl(key).catch(() => undefined)));
  return new Map(keys.map((key, i) => [key, values[i]]));
}
