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
  /** What init's SNAT rules say (initSnatOf), when its ruleset was found; else the gateway's own config. */
  readonly snat?: InitSnat;
}

/** The pod addresses init SNATs to (one per family it set up) and its SNAT port range. */
export interface InitSnat {
  readonly pod: Readonly<Partial<Record<Family, string>>>;
  readonly ports: PortRange | undefined;
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
  // Init's families and addresses as found in its rules: a gateway container
  // given other pod IPs (EGRESS_POD_IP alone where init had EGRESS_POD_IPS) must
  // not drop or add a family's SNAT.
  const pod = baseline.snat?.pod;
  return {
    podIPv4: pod === undefined ? config.podIPv4 : pod[4],
    podIPv6: pod === undefined ? config.podIPv6 : pod[6],
    vxlan: { vni: config.vxlan.vni, port: baseline.vxlanPort },
    dataplane: dataplane.kind,
    iptablesBackend: dataplane.kind === "iptables" ? dataplane.flavour : "auto",
    // Init's range as found in its rules: a gateway container given another
    // SNAT_PORT_RANGE (or none) must not rewrite init's rules with it.
    snatPorts: baseline.snat?.ports ?? config.snatPorts,
  };
}

// A SNAT rule's address and ports as nft lists it (`snat ip to 198.51.100.2:1024-65535`,
// `snat ip6 to [2001:db8::2]:1024-65535`, `snat ip to 198.51.100.2`) and as
// iptables-save prints it (`--to-source 198.51.100.2:1024-65535`).
const NFT_SNAT = /\bsnat (ip6?) to (?:\[([^\]]+)\]|([\d.]+))(?::(\d+)-(\d+))?/;
const IPTABLES_SNAT = /--to-source (?:\[([^\]]+)\]|([\d.]+))(?::(\d+)-(\d+))?/;

/** What init's SNAT rules say; undefined when there is no SNAT rule. */
export function initSnatOf(rules: ObservedRules): InitSnat | undefined {
  const pod: Partial<Record<Family, string>> = {};
  let ports: PortRange | undefined;
  const take = (family: Family, address: string | undefined, first?: string, last?: string): void => {
    if (address !== undefined) pod[family] ??= address;
    if (first !== undefined && last !== undefined) ports ??= { first: Number(first), last: Number(last) };
  };
  if (rules.kind === "nftables") {
    for (const line of (rules.table ?? "").split("\n")) {
      const m = NFT_SNAT.exec(line);
      if (m) take(m[1] === "ip6" ? 6 : 4, m[2] ?? m[3], m[4], m[5]);
    }
  } else {
    for (const family of [4, 6] as const) {
      for (const line of [...(rules.saved[family]?.get("nat")?.values() ?? [])].flat()) {
        const m = IPTABLES_SNAT.exec(line);
        if (m) take(family, m[1] ?? m[2], m[3], m[4]);
      }
    }
  }
  return pod[4] === undefined && pod[6] === undefined ? undefined : { pod, ports };
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
