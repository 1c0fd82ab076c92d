// What init set up, learned once when the gateway starts, and the kernel state
// of each check turned into init's own input. The gateway container does not
// see init's DATAPLANE and IPTABLES_BACKEND (the operator renders them for init
// only), nor EGRESS_VXLAN_PORT, and may not get init's SNAT_PORT_RANGE: so the
// ruleset's backend, vxlan0's port and the SNAT port range are read from what
// init left, and repairs use init's plan with exactly those.
// That way the gateway never fights init. Pure.
import type { Config, PortRange } from "../config/index.js";
import { chooseDataplane } from "../init/rule-backend.js";
import type { InitConfig } from "../init/plan.js";
import { OWNED_CHAINS } from "../init/render-iptables.js";
import type { Dataplane, Detected, Family, IptablesFlavour, LinkInfo, SavedTables } from "../init/types.js";
import { VXLAN_DEVICE } from "../pod-network/devices.js";

export type WatchConfig = Pick<
  Config,
  "podIPv4" | "podIPv6" | "vxlan" | "dataplane" | "iptablesBackend" | "snatPorts"
>;

export interface Baseline {
  /** Where init's ruleset is (or, when none was found, where init would put it). */
  readonly dataplane: Dataplane;
  /** vxlan0's UDP port as init set it (EGRESS_VXLAN_PORT is rendered for init only). */
  readonly vxlanPort: number;
  /** False when no ruleset of ours was found at start: missing from the first check on. */
  readonly rulesetFound: boolean;
  /** The SNAT source ports init wrote (snatPortsOf); unset: the gateway's own SNAT_PORT_RANGE. */
  readonly snatPorts?: PortRange;
}

/** The rules as one check reads them: our table's listing, or the baseline flavour's dumps. */
export type ObservedRules =
  | { readonly kind: "nftables"; readonly table: string | undefined }
  | {
      readonly kind: "iptables";
      readonly flavour: IptablesFlavour;
      readonly saved: Readonly<Partial<Record<Family, SavedTables>>>;
    };

const hasOwnedChain = (saved: SavedTables | undefined): boolean =>
  OWNED_CHAINS.some((owned) => saved?.get(owned.table)?.has(owned.chain) === true);

/** Throws InitError when no ruleset is found and no rule tool works (nothing to watch or repair with). */
export function learnBaseline(config: WatchConfig, detected: Detected): Baseline {
  const vxlan = detected.links.find((link) => link.name === VXLAN_DEVICE && link.vxlan !== undefined);
  const vxlanPort = vxlan?.vxlan?.port ?? config.vxlan.port;
  if (detected.nft.hasOurTable) return { dataplane: { kind: "nftables" }, vxlanPort, rulesetFound: true };
  for (const flavour of ["nft", "legacy"] as const) {
    if (Object.values(detected.iptables[flavour].saved).some(hasOwnedChain)) {
      return { dataplane: { kind: "iptables", flavour }, vxlanPort, rulesetFound: true };
    }
  }
  return { dataplane: chooseDataplane(config, detected).dataplane, vxlanPort, rulesetFound: false };
}

/** Init's configuration, pinned to the baseline. */
export function initConfigFor(config: WatchConfig, baseline: Baseline): InitConfig {
  const { dataplane } = baseline;
  return {
    podIPv4: config.podIPv4,
    podIPv6: config.podIPv6,
    vxlan: { vni: config.vxlan.vni, port: baseline.vxlanPort },
    dataplane: dataplane.kind,
    iptablesBackend: dataplane.kind === "iptables" ? dataplane.flavour : "auto",
    // Init's range as found in its rules: a gateway container given another
    // SNAT_PORT_RANGE (or none) must not rewrite init's rules with it.
    snatPorts: baseline.snatPorts ?? config.snatPorts,
  };
}

// The port range of a SNAT rule as nft lists it (`snat ip to 198.51.100.2:1024-65535`,
// `snat ip6 to [2001:db8::2]:1024-65535`) and as iptables-save prints it
// (`--to-source 198.51.100.2:1024-65535`).
const NFT_SNAT_PORTS = /\bsnat ip6? to (?:\[[^\]]+\]|[\d.]+):(\d+)-(\d+)/;
const IPTABLES_SNAT_PORTS = /--to-source (?:\[[^\]]+\]|[\d.]+):(\d+)-(\d+)/;

/** The SNAT port range in init's rules; undefined when no SNAT rule with ports is there. */
export function snatPortsOf(rules: ObservedRules): PortRange | undefined {
  const lines =
    rules.kind === "nftables"
      ? (rules.table ?? "").split("\n")
      : Object.values(rules.saved).flatMap((saved) => [...(saved?.get("nat")?.values() ?? [])].flat());
  const pattern = rules.kind === "nftables" ? NFT_SNAT_PORTS : IPTABLES_SNAT_PORTS;
  for (const line of lines) {
    const match = pattern.exec(line);
    if (match) return { first: Number(match[1]), last: Number(match[2]) };
  }
  return undefined;
}

const WORKS = { state: "works" } as const;
const UNREAD = { state: "unknown", reason: "not read by the integrity check" } as const;

/**
 * What detection would have found, from one check's reading. Only the
 * baseline's backend is read, so the plan touches only that backend: what init
 * removed elsewhere (a previous run's leftovers) is not the gateway's business.
 */
export function detectedFrom(links: readonly LinkInfo[], rules: ObservedRules): Detected {
  const unread = { tool: UNREAD, saved: {} };
  const iptables: Record<IptablesFlavour, Detected["iptables"][IptablesFlavour]> = {
    nft: unread,
    legacy: unread,
  };
  if (rules.kind === "iptables") iptables[rules.flavour] = { tool: WORKS, saved: rules.saved };
  return {
    privilege: { netAdmin: true, procSysProblem: undefined },
    links,
    nft: { tool: WORKS, hasOurTable: rules.kind === "nftables" && rules.table !== undefined },
    iptables,
  };
}
