// Which tool writes the rules: DATAPLANE and IPTABLES_BACKEND when set, otherwise
// native nftables when `nft` works, else the iptables flavour that already has
// rules (as kubernetes' iptables-wrapper decides), else iptables-nft.
import type { Config } from "../config/index.js";
import { NoRuleToolError } from "./errors.js";
import type { Dataplane, Detected, IptablesFlavour, ToolState } from "./types.js";

export interface DataplaneChoice {
  readonly dataplane: Dataplane;
  readonly notes: readonly string[];
}

type Choice = Pick<Config, "dataplane" | "iptablesBackend">;

export function chooseDataplane(config: Choice, detected: Detected): DataplaneChoice {
  const nft = detected.nft.tool;
  if (config.dataplane === "nftables") {
    if (nft.state === "fails") {
      throw new NoRuleToolError(
        `DATAPLANE=nftables, but nft does not work here (${nft.reason}); set DATAPLANE=iptables or auto`,
      );
    }
    return { dataplane: { kind: "nftables" }, notes: assumed("nft works", nft) };
  }
  if (config.dataplane === "auto" && nft.state !== "fails") {
    return {
      dataplane: { kind: "nftables" },
      notes: [
        "DATAPLANE=auto and nft works: native nftables (IPTABLES_BACKEND applies to the iptables dataplane only).",
        ...assumed("nft works", nft),
      ],
    };
  }
  const why =
    config.dataplane === "auto" && nft.state === "fails"
      ? [`DATAPLANE=auto and nft does not work (${nft.reason}): iptables.`]
      : [];
  const flavour = chooseFlavour(config.iptablesBackend, detected);
  return {
    dataplane: { kind: "iptables", flavour: flavour.flavour },
    notes: [...why, ...flavour.notes],
  };
}

function chooseFlavour(
  backend: Config["iptablesBackend"],
  detected: Detected,
): { flavour: IptablesFlavour; notes: string[] } {
  if (backend !== "auto") {
    const tool = detected.iptables[backend].tool;
    if (tool.state === "fails") {
      throw new NoRuleToolError(
        `IPTABLES_BACKEND=${backend}, but iptables-${backend} does not work here (${tool.reason}); ` +
          "set IPTABLES_BACKEND=auto or use an image with it installed",
      );
    }
    return { flavour: backend, notes: assumed(`iptables-${backend} works`, tool) };
  }
  const nftRules = ruleCount(detected, "nft");
  const legacyRules = ruleCount(detected, "legacy");
  const nftTool = detected.iptables.nft.tool;
  const legacyTool = detected.iptables.legacy.tool;
  if (legacyTool.state === "works" && (legacyRules > nftRules || nftTool.state === "fails")) {
    return {
      flavour: "legacy",
      notes: [`IPTABLES_BACKEND=auto: iptables-legacy (rules: legacy ${legacyRules}, nft ${nftRules}).`],
    };
  }
  if (nftTool.state === "fails") {
    throw new NoRuleToolError(
      `no rule tool works here: nft (${reason(detected.nft.tool)}), iptables-nft (${nftTool.reason}), ` +
        `iptables-legacy (${reason(legacyTool)}); the image needs nftables or iptables`,
    );
  }
  return {
    flavour: "nft",
    notes: [
      `IPTABLES_BACKEND=auto: iptables-nft (rules: nft ${nftRules}, legacy ${legacyRules}).`,
      ...assumed("iptables-nft works", nftTool),
    ],
  };
}

function ruleCount(detected: Detected, flavour: IptablesFlavour): number {
  let count = 0;
  for (const saved of Object.values(detected.iptables[flavour].saved)) {
    for (const chains of saved.values()) for (const rules of chains.values()) count += rules.length;
  }
  return count;
}

function assumed(what: string, tool: ToolState): string[] {
  return tool.state === "unknown" ? [`Assumed: ${what} (not checked: ${tool.reason}).`] : [];
}

function reason(tool: ToolState): string {
  return tool.state === "works" ? "works" : tool.reason;
}
