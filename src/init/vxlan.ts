// vxlan0, the device client nodes tunnel to: its MAC is derived from the pod's
// IPv4 address exactly as client nodes derive it, byte for byte (pod-network/mac.ts).
import { VXLAN_DEVICE } from "../pod-network/devices.js";
import type { LinkInfo, VxlanAction } from "./types.js";

/** Bytes a VXLAN device over an IPv4 underlay takes from the lower device's MTU (outer IP, UDP, VXLAN, Ethernet). */
export const VXLAN_OVERHEAD = 50;
const MIN_MTU = 68;

export interface WantedVxlan {
  readonly vni: number;
  readonly port: number;
  readonly dev: string;
  readonly mac: string;
}

/** Keep an existing vxlan0 only when every setting clients rely on matches; otherwise replace it. */
export function decideVxlan(existing: LinkInfo | undefined, want: WantedVxlan): VxlanAction {
  if (existing === undefined) return { action: "create" };
  const reasons = mismatches(existing, want);
  return reasons.length === 0
    ? { action: "keep", ifindex: existing.ifindex }
    : { action: "replace", ifindex: existing.ifindex, reasons };
}

function mismatches(existing: LinkInfo, want: WantedVxlan): string[] {
  if (existing.vxlan === undefined) return [`it is a ${existing.kind ?? "plain"} device, not vxlan`];
  const found = existing.vxlan;
  const reasons: string[] = [];
  if (found.vni !== want.vni) reasons.push(`VNI ${found.vni}, not ${want.vni}`);
  if (found.port !== want.port) reasons.push(`port ${found.port}, not ${want.port}`);
  if (found.dev !== want.dev) reasons.push(`dev ${found.dev ?? "none"}, not ${want.dev}`);
  if (existing.mac !== want.mac) reasons.push(`MAC ${existing.mac}, not ${want.mac}`);
  // The kernel adds an IPv6 link-local address to any device that is up; only others are wrong.
  const extra = existing.addresses.filter((a) => a.family === 4 || a.scope !== "link");
  if (extra.length > 0) reasons.push(`it has the address ${extra.map((a) => a.address).join(", ")}`);
  return reasons;
}

/** The MTU vxlan0 has after the plan: a kept device keeps its own; the kernel gives a new one dev's MTU - 50. */
export function vxlanMtu(action: VxlanAction, existing: LinkInfo | undefined, dev: LinkInfo): number {
  if (action.action === "keep" && existing !== undefined) return existing.mtu;
  return Math.max(MIN_MTU, dev.mtu - VXLAN_OVERHEAD);
}

/** `ip -batch` lines that bring vxlan0 to the wanted state. */
export function vxlanBatch(action: VxlanAction, want: WantedVxlan): string[] {
  const create = [
    `link add ${VXLAN_DEVICE} address ${want.mac} type vxlan id ${want.vni} dstport ${want.port} dev ${want.dev}`,
    `link set ${VXLAN_DEVICE} up`,
  ];
  switch (action.action) {
    case "create":
      return create;
    case "replace":
      return [`link del ${VXLAN_DEVICE}`, ...create];
    case "keep":
      return [`link set ${VXLAN_DEVICE} up`];
  }
}
