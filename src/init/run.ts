// The init program end to end: detect, plan, then either print the plan (dry
// run) or check privileges, apply and verify. Returns what goes to stdout;
// failures are InitErrors for the entry point to print.
import type { Config } from "../config/index.js";
import { applyPlan } from "./apply.js";
import { detect } from "./detect.js";
import { planInit } from "./plan.js";
import { preflight } from "./preflight.js";
import { renderDryRun, renderSummary } from "./render-plan.js";
import type { Family } from "./types.js";
import { verifyPlan } from "./verify.js";

export interface RunOptions {
  readonly dryRun: boolean;
}

export async function runInit(config: Config, options: RunOptions): Promise<string> {
  const families: Family[] = [];
  if (config.podIPv4 !== undefined) families.push(4);
  if (config.podIPv6 !== undefined) families.push(6);
  const detected = await detect(families);
  const plan = planInit(config, detected);
  if (options.dryRun) return renderDryRun(plan);
  preflight(plan, detected.privilege);
  await applyPlan(plan);
  await verifyPlan(plan);
  return `${renderSummary(plan, performance.now())}\n`;
}
