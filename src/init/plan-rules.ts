// The rule steps of the plan: install the owned ruleset with the chosen
// dataplane, and remove what a previous run with another dataplane left, after
// the new rules are in place (so SNAT never has a gap). Pure.
import { renderIptables, renderIptablesRemoval, restoreArgv } from "./render-iptables.js";
import { NFT_TABLE, removeNftTable, renderNft } from "./render-nft.js";
import { describePorts, familyName, type RuleIntent } from "./rules.js";
import type { ChainExpectation, Dataplane, Detected, Family, OwnedObject, Step } from "./types.js";

export interface RuleSteps {
  readonly steps: Step[];
  readonly chains: ChainExpectation[];
  readonly removed: OwnedObject[];
}

/** "SNAT with fully random ports 1024-65535, MSS clamp and ICMPv6-redirect drop", or as much of it as the intent holds. */
function describeRules(intent: RuleIntent): string {
  const parts = [`SNAT with fully random ports ${describePorts(intent.snatPorts)}`];
  if (Object.keys(intent.mss).length > 0) parts.push("MSS clamp");
  if (intent.dropIcmpv6Redirects) parts.push("ICMPv6-redirect drop");
  return parts.length === 1 ? parts[0]! : `${parts.slice(0, -1).join(", ")} and ${parts.at(-1)}`;
}

export function ruleSteps(
  dataplane: Dataplane,
  families: readonly Family[],
  intent: RuleIntent,
  detected: Detected,
): RuleSteps {
  const out: RuleSteps = { steps: [], chains: [], removed: [] };
  const what = describeRules(intent);
  if (dataplane.kind === "nftables") {
    const rendered = renderNft(intent);
    out.steps.push({
      kind: "ruleset",
      title: `Install the ${what} rules: replace table inet ${NFT_TABLE} in one nft transaction`,
      program: "nft",
      argv: ["nft", "-f", "-"],
      input: rendered.input,
    });
    out.chains.push(...rendered.chains);
  } else {
    for (const family of families) {
      const rendered = renderIptables(
        dataplane.flavour,
        family,
        intent,
        detected.iptables[dataplane.flavour].saved[family],
      );
      out.steps.push({
        kind: "ruleset",
        title: `Install the ${familyName(family)} ${what} rules: rewrite our chains in one iptables-${dataplane.flavour} transaction`,
        program: "iptables-restore",
        argv: restoreArgv(dataplane.flavour, family),
        input: rendered.input,
      });
      out.chains.push(...rendered.chains);
      out.removed.push(...rendered.removed);
    }
    if (detected.nft.hasOurTable) {
      out.steps.push({
        kind: "ruleset",
        title: `Remove table inet ${NFT_TABLE}, left by a run with the nftables dataplane`,
        program: "nft",
        argv: ["nft", "-f", "-"],
        input: removeNftTable(),
      });
      out.removed.push({ kind: "nft-table" });
    }
  }
  for (const flavour of ["nft", "legacy"] as const) {
    if (dataplane.kind === "iptables" && dataplane.flavour === flavour) continue;
    for (const family of families) {
      const saved = detected.iptables[flavour].saved[family];
      if (saved === undefined) continue;
      const rendered = renderIptablesRemoval(flavour, family, saved);
      if (rendered.removed.length === 0) continue;
      out.steps.push({
        kind: "ruleset",
        title: `Remove our ${familyName(family)} chains from iptables-${flavour}, left by a run with another dataplane`,
        program: "iptables-restore",
        argv: restoreArgv(flavour, family),
        input: rendered.input,
      });
      out.removed.push(...rendered.removed);
    }
  }
  return out;
}
