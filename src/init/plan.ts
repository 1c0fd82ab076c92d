// Configuration plus what detection found in, the desired state as data out.
// Pure: no I/O, so every decision can be tested with plain data. The steps come
// in SPEC §3 order: rules (NAT) before forwarding, forwarding last. The MSS clamp
// and the ICMPv6-redirect drop go into the same atomic rule transaction as SNAT,
// with the clamp computed from the MTU vxlan0 will have (verified afterwards), so
// that the owned ruleset is never seen half written.
//
// IPv6-only pods: there is no IPv4 identity to derive the vxlan0 MAC from, and
// client nodes tunnel to gateways over IPv4 only, so such a pod gets SNAT,
// redirect suppression and IPv6 forwarding but no vxlan0 and no clamp (a note says
// so in the dry run and the summary). Forwarding is only turned on for the
// families the pod has, so no family is ever forwarded without SNAT.
import type { Config } from "../config/index.js";
import { POD_DEVICE, VXLAN_DEVICE } from "../pod-network/devices.js";
import { vxlanMac } from "../pod-network/mac.js";
import { NoEth0Error, PodIpNotOnEth0Error } from "./errors.js";
import { ruleSteps } from "./plan-rules.js";
import { chooseDataplane } from "./rule-backend.js";
import { FAMILIES, familyName, MSS_HEADROOM, type RuleIntent } from "./rules.js";
import type { Detected, Family, InitPlan, LinkInfo, Step, SysctlWrite, VxlanPlan } from "./types.js";
import { decideVxlan, vxlanBatch, vxlanMtu } from "./vxlan.js";

export type InitConfig = Pick<
  Config,
  "podIPv4" | "podIPv6" | "vxlan" | "dataplane" | "iptablesBackend" | "snatPorts"
>;

export function planInit(config: InitConfig, detected: Detected): InitPlan {
  const eth0 = findEgressDevice(detected.links);
  const pod: Partial<Record<Family, string>> = { 4: config.podIPv4, 6: config.podIPv6 };
  const families = FAMILIES.filter((family) => pod[family] !== undefined);
  checkPodAddresses(eth0, families, pod);

  const choice = chooseDataplane(config, detected);
  const notes = [...choice.notes];
  const vxlan = config.podIPv4 === undefined ? undefined : planVxlan(config, eth0, detected.links);
  if (vxlan === undefined) {
    notes.push(
      "IPv6-only pod: no IPv4 address to derive the vxlan0 MAC from, so no vxlan0 and no MSS clamp " +
        "(a plain SNAT gateway; client nodes reach gateways over IPv4 VXLAN only).",
    );
  }
  const mss: Partial<Record<Family, number>> = {};
  if (vxlan !== undefined) for (const family of families) mss[family] = vxlan.mtu - MSS_HEADROOM[family];

  const intent: RuleIntent = {
    egress: POD_DEVICE,
    snat: pod,
    snatPorts: config.snatPorts,
    mss,
    dropIcmpv6Redirects: pod[6] !== undefined,
  };
  const rules = ruleSteps(choice.dataplane, families, intent, detected);
  const sysctls = sysctlSteps(families);

  const steps: Step[] = [...rules.steps, sysctls.conntrack, sysctls.redirects, sysctls.rpFilter];
  if (vxlan !== undefined) {
    steps.push(
      {
        kind: "link",
        title: vxlanTitle(vxlan),
        argv: ["ip", "-batch", "-"],
        batch: vxlanBatch(vxlan.decision, vxlan),
      },
      sysctls.rpFilterVxlan,
    );
  }
  steps.push(sysctls.forwarding);

  return {
    podIPv4: config.podIPv4,
    podIPv6: config.podIPv6,
    families,
    dataplane: choice.dataplane,
    snatPorts: config.snatPorts,
    vxlan,
    mss,
    notes,
    steps,
    expect: {
      sysctls: steps.flatMap((step) => (step.kind === "sysctl" ? step.writes : [])),
      chains: rules.chains,
      removed: rules.removed,
    },
  };
}

function findEgressDevice(links: readonly LinkInfo[]): LinkInfo {
  const eth0 = links.find((link) => link.name === POD_DEVICE);
  if (eth0 === undefined) {
    const names = links.map((link) => link.name).join(", ") || "none";
    throw new NoEth0Error(
      `${POD_DEVICE} does not exist in this network namespace (devices: ${names}); ` +
        "run the init container in the gateway pod",
    );
  }
  return eth0;
}

function checkPodAddresses(
  eth0: LinkInfo,
  families: readonly Family[],
  pod: Partial<Record<Family, string>>,
): void {
  for (const family of families) {
    const address = pod[family];
    if (address === undefined || eth0.addresses.some((a) => a.address === address)) continue;
    const has = eth0.addresses.map((a) => a.address).join(", ") || "no address";
    throw new PodIpNotOnEth0Error(
      `the pod IP ${address} (EGRESS_POD_IPS/EGRESS_POD_IP) is not an address of ${POD_DEVICE} ` +
        `(it has ${has}); set it from the downward API (status.podIP, status.podIPs)`,
    );
  }
}

function planVxlan(config: InitConfig, eth0: LinkInfo, links: readonly LinkInfo[]): VxlanPlan {
  const want = {
    vni: config.vxlan.vni,
    port: config.vxlan.port,
    dev: POD_DEVICE,
    mac: vxlanMac(config.podIPv4 ?? ""),
  };
  const existing = links.find((link) => link.name === VXLAN_DEVICE);
  const decision = decideVxlan(existing, want);
  return { name: VXLAN_DEVICE, ...want, mtu: vxlanMtu(decision, existing, eth0), decision };
}

function vxlanTitle(vxlan: VxlanPlan): string {
  const what = `${VXLAN_DEVICE} (VNI ${vxlan.vni}, port ${vxlan.port}, dev ${vxlan.dev}, MAC ${vxlan.mac}, no IP)`;
  switch (vxlan.decision.action) {
    case "create":
      return `Create ${what} and set it up`;
    case "keep":
      return `Keep the existing ${what}, set it up`;
    case "replace":
      return `Replace the existing ${VXLAN_DEVICE} (${vxlan.decision.reasons.join("; ")}) with ${what}`;
  }
}

interface SysctlSteps {
  readonly conntrack: Step;
  readonly redirects: Step;
  readonly rpFilter: Step;
  readonly rpFilterVxlan: Step;
  readonly forwarding: Step;
}

function sysctlSteps(families: readonly Family[]): SysctlSteps {
  const zero = (key: string): SysctlWrite => ({ key, value: "0" });
  const one = (key: string): SysctlWrite => ({ key, value: "1" });
  const sysctl = (title: string, writes: SysctlWrite[]): Step => ({ kind: "sysctl", title, writes });
  const forwarding = [
    ...(families.includes(4) ? [one("net.ipv4.ip_forward")] : []),
    ...(families.includes(6) ? [one("net.ipv6.conf.all.forwarding")] : []),
  ];
  return {
    // Per network namespace on this kernel; only entries created afterwards
    // count, so before forwarding. After the rules: NAT loads conntrack.
    conntrack: sysctl(
      "Turn conntrack accounting and timestamps on (bytes, packets, start and end of each forwarded connection)",
      [one("net.netfilter.nf_conntrack_acct"), one("net.netfilter.nf_conntrack_timestamp")],
    ),
    redirects: sysctl(
      "Suppress ICMP redirects (all alone is not enough: default and eth0 too)",
      ["all", "default", POD_DEVICE].map((dev) => zero(`net.ipv4.conf.${dev}.send_redirects`)),
    ),
    rpFilter: sysctl(
      "Turn reverse-path filtering off (default too, so that a new vxlan0 starts with it off)",
      ["all", "default"].map((dev) => zero(`net.ipv4.conf.${dev}.rp_filter`)),
    ),
    rpFilterVxlan: sysctl(
      "Turn reverse-path filtering off on vxlan0 (clients' addresses arrive through the tunnel)",
      [zero(`net.ipv4.conf.${VXLAN_DEVICE}.rp_filter`)],
    ),
    forwarding: sysctl(
      `Turn forwarding on (${families.map(familyName).join(", ")}), last: the rules are in place`,
      forwarding,
    ),
  };
}
