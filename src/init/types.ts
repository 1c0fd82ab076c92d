// The init program's data model: what detection found, and the plan computed from
// it. Both are plain data, so that planning and rendering are pure and testable.
import type { VXLAN_DEVICE } from "../pod-network/devices.js";

import type { PortRange } from "../config/types.js";

export type Family = 4 | 6;
export type IptablesFlavour = "nft" | "legacy";

/** How the rules are written. */
export type Dataplane =
  { readonly kind: "nftables" } | { readonly kind: "iptables"; readonly flavour: IptablesFlavour };

/**
 * Whether a tool can be used here. `unknown` means it could not be checked
 * (no privilege, as in a dry run by an ordinary user); the plan then states an assumption.
 */
export type ToolState =
  | { readonly state: "works" }
  | { readonly state: "fails"; readonly reason: string }
  | { readonly state: "unknown"; readonly reason: string };

export interface VxlanSettings {
  readonly vni: number;
  readonly port: number;
  /** Name of the underlay device (`dev`). */
  readonly dev: string | undefined;
}

export interface LinkInfo {
  readonly name: string;
  readonly ifindex: number;
  readonly mtu: number;
  readonly mac: string;
  readonly up: boolean;
  /** `linkinfo.info_kind` ("vxlan", "veth", ...), undefined for plain devices. */
  readonly kind: string | undefined;
  readonly vxlan: VxlanSettings | undefined;
  /** Addresses in canonical text, without prefix length. */
  readonly addresses: readonly {
    readonly family: Family;
    readonly address: string;
    readonly scope: string;
  }[];
}

/** One iptables-save dump, parsed: table -> chain -> rule specs in order (without the `-A CHAIN `). */
export type SavedTables = ReadonlyMap<string, ReadonlyMap<string, readonly string[]>>;

export interface IptablesState {
  readonly tool: ToolState;
  /** Per family the pod has; undefined when the dump could not be taken. */
  readonly saved: Readonly<Partial<Record<Family, SavedTables>>>;
}

export interface Privilege {
  readonly netAdmin: boolean;
  /** undefined when /proc/sys is writable; otherwise why not ("EROFS: read-only file system"). */
  readonly procSysProblem: string | undefined;
}

export interface Detected {
  readonly privilege: Privilege;
  readonly links: readonly LinkInfo[];
  readonly nft: { readonly tool: ToolState; readonly hasOurTable: boolean };
  readonly iptables: Readonly<Record<IptablesFlavour, IptablesState>>;
}

export interface SysctlWrite {
  /** Dotted key, as `sysctl` prints it: net.ipv4.conf.all.rp_filter. */
  readonly key: string;
  readonly value: string;
}

/** What verification reads back from the ruleset: each owned chain, its rules in order, its jump. */
export interface ChainExpectation {
  readonly family: Family | "inet";
  readonly table: string;
  readonly chain: string;
  /** A substring each rule must contain, in rule order. */
  readonly markers: readonly string[];
  /** iptables: the built-in chain that must hold exactly one jump to `chain`. */
  readonly jumpFrom: string | undefined;
}

/** Something in the ruleset that this program owns and may remove. */
export type OwnedObject =
  | { readonly kind: "nft-table" }
  | {
      readonly kind: "iptables-chain";
      readonly flavour: IptablesFlavour;
      readonly family: Family;
      readonly table: string;
      readonly chain: string;
    };

export type RulesetProgram = "nft" | "iptables-restore";

export type Step =
  | {
      readonly kind: "ruleset";
      readonly title: string;
      readonly program: RulesetProgram;
      /** Command and arguments; the ruleset goes to its stdin. */
      readonly argv: readonly string[];
      readonly input: string;
    }
  | { readonly kind: "sysctl"; readonly title: string; readonly writes: readonly SysctlWrite[] }
  | {
      readonly kind: "link";
      readonly title: string;
      readonly argv: readonly string[];
      readonly batch: readonly string[];
    };

export type VxlanAction =
  | { readonly action: "create" }
  | { readonly action: "keep"; readonly ifindex: number }
  | { readonly action: "replace"; readonly ifindex: number; readonly reasons: readonly string[] };

export interface VxlanPlan {
  readonly name: typeof VXLAN_DEVICE;
  readonly vni: number;
  readonly port: number;
  readonly dev: string;
  readonly mac: string;
  /** MTU vxlan0 will have: the kept device's, or the kernel's default for a new one. */
  readonly mtu: number;
  readonly decision: VxlanAction;
}

export interface InitPlan {
  readonly podIPv4: string | undefined;
  readonly podIPv6: string | undefined;
  readonly families: readonly Family[];
  readonly dataplane: Dataplane;
  /** Source ports of translated TCP and UDP, allocated fully at random. */
  readonly snatPorts: PortRange;
  /** Undefined for an IPv6-only pod: no IPv4 identity, so no vxlan0 (see notes). */
  readonly vxlan: VxlanPlan | undefined;
  /** MSS each family's forwarded SYNs are clamped to; absent without vxlan0. */
  readonly mss: Readonly<Partial<Record<Family, number>>>;
  /** Decisions and assumptions, one sentence each, for the dry run and the summary. */
  readonly notes: readonly string[];
  readonly steps: readonly Step[];
  readonly expect: {
    readonly sysctls: readonly SysctlWrite[];
    readonly chains: readonly ChainExpectation[];
    /** Owned objects of another dataplane (a previous run's) that the plan removes; gone afterwards. */
    readonly removed: readonly OwnedObject[];
  };
}
