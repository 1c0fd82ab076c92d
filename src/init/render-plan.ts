// The plan for people: the dry-run listing (numbered steps with the exact
// sysctls, ruleset text and ip commands, in a form that could be pasted into a
// shell) and the one summary line printed after a successful run. Pure.
import { familyName, MSS_HEADROOM } from "./rules.js";
import { sysctlPath } from "./sysctl.js";
import type { Dataplane, InitPlan, Step } from "./types.js";

export const PROGRAM = "egress-gateway init";

export function describeDataplane(dataplane: Dataplane): string {
  return dataplane.kind === "nftables" ? "nftables" : `iptables-${dataplane.flavour}`;
}

export function renderDryRun(plan: InitPlan): string {
  const pod = plan.families
    .map((family) => `${familyName(family)} ${family === 4 ? plan.podIPv4 : plan.podIPv6}`)
    .join(", ");
  const lines = [
    `${PROGRAM}: dry run, nothing is changed`,
    `pod: ${pod} on eth0`,
    `dataplane: ${describeDataplane(plan.dataplane)}`,
    `vxlan0: ${plan.vxlan === undefined ? "none" : `${plan.vxlan.decision.action}, MTU ${plan.vxlan.mtu}`}`,
    `MSS clamp: ${describeMss(plan) ?? "none"}`,
    ...(plan.notes.length > 0 ? ["notes:", ...plan.notes.map((note) => `  - ${note}`)] : []),
    "",
  ];
  plan.steps.forEach((step, index) => lines.push(...renderStep(index + 1, step), ""));
  lines.push(
    `${plan.steps.length + 1}. Verify: read back the sysctls, vxlan0 and the rules; print one summary line`,
  );
  return `${lines.join("\n")}\n`;
}

function renderStep(number: number, step: Step): string[] {
  const head = `${number}. ${step.title}`;
  switch (step.kind) {
    case "sysctl":
      return [
        head,
        ...step.writes.map((w) => `   echo ${w.value} > ${sysctlPath(w.key)}   # ${w.key} = ${w.value}`),
      ];
    case "ruleset":
      return [head, ...heredoc(step.argv, step.input)];
    case "link":
      return [head, ...heredoc(step.argv, step.batch.map((line) => `${line}\n`).join(""))];
  }
}

function heredoc(argv: readonly string[], input: string): string[] {
  const body = input.replace(/\n$/, "").split("\n");
  return [`   ${argv.join(" ")} <<'EOF'`, ...body.map((line) => `   ${line}`.trimEnd()), "   EOF"];
}

function describeMss(plan: InitPlan): string | undefined {
  const vxlan = plan.vxlan;
  if (vxlan === undefined) return undefined;
  return plan.families
    .map(
      (family) =>
        `${plan.mss[family]} (${familyName(family)}: vxlan0 MTU ${vxlan.mtu} - ${MSS_HEADROOM[family]})`,
    )
    .join(", ");
}

/** The one line printed on success; `elapsedMs` counts from the process start. */
export function renderSummary(plan: InitPlan, elapsedMs: number): string {
  const addresses = plan.families.map((family) => (family === 4 ? plan.podIPv4 : plan.podIPv6)).join(", ");
  const vxlan = plan.vxlan;
  const parts = [
    `${describeDataplane(plan.dataplane)} rules replaced`,
    `SNAT to ${addresses} out of eth0 (ports ${plan.snatPorts.first}-${plan.snatPorts.last}, fully random)`,
    vxlan === undefined
      ? "no vxlan0 (IPv6-only pod)"
      : `vxlan0 ${pastTense[vxlan.decision.action]} (VNI ${vxlan.vni}, port ${vxlan.port}, MAC ${vxlan.mac}, MTU ${vxlan.mtu})`,
    ...(vxlan === undefined ? [] : [`MSS clamp ${plan.families.map((f) => plan.mss[f]).join("/")}`]),
    "redirects and rp_filter off",
    `forwarding on (${plan.families.map(familyName).join(", ")})`,
  ];
  return `${PROGRAM}: ready in ${Math.round(elapsedMs)} ms: ${parts.join("; ")}`;
}

const pastTense = { create: "created", keep: "kept", replace: "replaced" } as const;
