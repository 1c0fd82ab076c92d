// Drift: what differs between init's plan and the kernel, by kind. Pure: the
// plan (init's own, computed from the same reading) and the reading in, the
// drifts out. The comparisons are init's read-back checks, so the gateway
// calls "drift" exactly what init would call a failed verification.
import { checkIptables, checkNftTable } from "../init/verify.js";
import { NFT_TABLE } from "../init/render-nft.js";
import type { InitPlan, LinkInfo, Step } from "../init/types.js";
import type { ObservedRules } from "./baseline.js";

/** Bounded: the `kind` label of egress_gateway_dataplane_drifts_total. */
export const DRIFT_KINDS = ["ruleset", "vxlan", "forwarding", "redirects", "rp_filter", "conntrack"] as const;
export type DriftKind = (typeof DRIFT_KINDS)[number];

/** What the main container can put back: its NET_ADMIN covers rules and links, not /proc/sys. */
export const REPAIRABLE: ReadonlySet<DriftKind> = new Set(["ruleset", "vxlan"]);

/**
 * Drift that costs the flow logs their byte and packet counts and start and
 * end times (conntrack accounting, timestamps), not the gateway its safety:
 * counted, logged and named in the detail, but the gateway stays ready.
 */
export const TELEMETRY_ONLY: ReadonlySet<DriftKind> = new Set(["conntrack"]);

export interface Drift {
  readonly kind: DriftKind;
  /** One phrase per difference: "table inet egress_gateway is missing". */
  readonly problems: readonly string[];
}

export interface Reading {
  readonly links: readonly LinkInfo[];
  readonly rules: ObservedRules;
  /** Each planned sysctl's value; undefined when it could not be read (device gone). */
  readonly sysctls: ReadonlyMap<string, string | undefined>;
}

export function findDrift(plan: InitPlan, reading: Reading): Drift[] {
  const drifts: Drift[] = [];
  const add = (kind: DriftKind, problems: readonly string[]): void => {
    if (problems.length > 0) drifts.push({ kind, problems });
  };
  add("ruleset", rulesetProblems(plan, reading.rules));
  const vxlan = vxlanProblems(plan, reading.links);
  add("vxlan", vxlan);
  // A vxlan0 about to be recreated takes its rp_filter from `default`: judge it after the repair.
  const skipVxlanKeys = vxlan.length > 0;
  const bySysctlKind = new Map<DriftKind, string[]>();
  for (const { key, value } of plan.expect.sysctls) {
    if (skipVxlanKeys && key.includes(`.${plan.vxlan?.name ?? ""}.`)) continue;
    const got = reading.sysctls.get(key);
    if (got === value) continue;
    const kind = sysctlKind(key);
    bySysctlKind.set(kind, [
      ...(bySysctlKind.get(kind) ?? []),
      `${key} is ${got ?? "unreadable"}, expected ${value}`,
    ]);
  }
  for (const kind of DRIFT_KINDS) add(kind, bySysctlKind.get(kind) ?? []);
  return drifts;
}

function sysctlKind(key: string): DriftKind {
  if (key.startsWith("net.netfilter.nf_conntrack_")) return "conntrack";
  if (key.endsWith(".send_redirects")) return "redirects";
  if (key.endsWith(".rp_filter")) return "rp_filter";
  return "forwarding";
}

function rulesetProblems(plan: InitPlan, rules: ObservedRules): string[] {
  if (rules.kind === "nftables") {
    if (rules.table === undefined) return [`table inet ${NFT_TABLE} is missing`];
    return checkNftTable(rules.table, plan.expect.chains);
  }
  const tool = `iptables-${rules.flavour}`;
  return plan.families.flatMap((family) => {
    const saved = rules.saved[family];
    if (saved === undefined) return [`${tool} IPv${family} rules could not be read`];
    return checkIptables(
      saved,
      plan.expect.chains.filter((chain) => chain.family === family),
      tool,
    );
  });
}

/** Init's decision about vxlan0 is the comparison: anything but "keep" an up device is drift. */
function vxlanProblems(plan: InitPlan, links: readonly LinkInfo[]): string[] {
  const vxlan = plan.vxlan;
  if (vxlan === undefined) return [];
  switch (vxlan.decision.action) {
    case "create":
      return [`${vxlan.name} is missing`];
    case "replace":
      return vxlan.decision.reasons.map((reason) => `${vxlan.name}: ${reason}`);
    case "keep":
      return links.some((link) => link.name === vxlan.name && link.up) ? [] : [`${vxlan.name} is down`];
  }
}

/** The planned sysctls that differ, with the values read: a light round compares it with the last full check's. */
export function sysctlMismatch(plan: InitPlan, sysctls: ReadonlyMap<string, string | undefined>): string {
  return plan.expect.sysctls
    .filter(({ key, value }) => sysctls.get(key) !== value)
    .map(({ key }) => `${key}=${sysctls.get(key) ?? "unreadable"}`)
    .join(" ");
}

/** The plan's steps that put back the repairable drifts, in the plan's order. */
export function repairSteps(plan: InitPlan, drifts: readonly Drift[]): Step[] {
  const kinds = new Set(drifts.map((d) => d.kind));
  return plan.steps.filter(
    (step) =>
      (step.kind === "ruleset" && kinds.has("ruleset")) || (step.kind === "link" && kinds.has("vxlan")),
  );
}
