// Before the first change: does this process have what every step needs? A
// missing privilege is reported against the first step that needs it, so that
// nothing is half done.
import { firstClause } from "./apply.js";
import { NoPrivilegeError, PRIVILEGE_HINT } from "./errors.js";
import type { InitPlan, Privilege } from "./types.js";

export function preflight(plan: InitPlan, privilege: Privilege): void {
  const needs = (kind: "netlink" | "sysctl") =>
    plan.steps.findIndex((step) => (kind === "sysctl" ? step.kind === "sysctl" : step.kind !== "sysctl"));
  const missing: { index: number; why: string }[] = [];
  if (!privilege.netAdmin) missing.push({ index: needs("netlink"), why: "the process lacks CAP_NET_ADMIN" });
  if (privilege.procSysProblem !== undefined) {
    missing.push({ index: needs("sysctl"), why: `/proc/sys is not writable (${privilege.procSysProblem})` });
  }
  const first = missing.filter((m) => m.index >= 0).sort((a, b) => a.index - b.index)[0];
  if (first === undefined) return;
  const step = plan.steps[first.index];
  const name = step === undefined ? "" : ` (${firstClause(step.title)})`;
  throw new NoPrivilegeError(`cannot run step ${first.index + 1}${name}: ${first.why}; ${PRIVILEGE_HINT}`);
}
