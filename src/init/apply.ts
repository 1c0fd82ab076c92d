// Carries out the plan's steps in order and stops at the first failure, which
// becomes one line naming the step, the command and what it said.
import { ApplyFailedError, looksLikePrivilegeProblem, oneLine, PRIVILEGE_HINT } from "./errors.js";
import { runCommand } from "../exec/run-command.js";
import { describeFsError, sysctlPath, writeSysctl } from "./sysctl.js";
import type { InitPlan, Step } from "./types.js";

export async function applyPlan(plan: InitPlan): Promise<void> {
  for (const [index, step] of plan.steps.entries()) await applyStep(index + 1, step);
}

/** One step; `number` names it in the error. Also used by the gateway to repair drift with init's own steps. */
export async function applyStep(number: number, step: Step): Promise<void> {
  if (step.kind === "sysctl") {
    for (const write of step.writes) {
      try {
        await writeSysctl(write.key, write.value);
      } catch (error) {
        fail(number, step, `writing ${write.value} to ${sysctlPath(write.key)}: ${describeFsError(error)}`);
      }
    }
    return;
  }
  const input = step.kind === "link" ? step.batch.map((line) => `${line}\n`).join("") : step.input;
  const result = await runCommand(step.argv, input);
  if (!result.ok) fail(number, step, `${step.argv.join(" ")}: ${oneLine(result.stderr)}`);
}

function fail(number: number, step: Step, detail: string): never {
  const hint = looksLikePrivilegeProblem(detail) ? `; ${PRIVILEGE_HINT}` : "";
  throw new ApplyFailedError(`step ${number} (${firstClause(step.title)}) failed: ${detail}${hint}`);
}

/** Step titles can be long; the error line names the step by its first clause. */
export function firstClause(title: string): string {
  return title.split(/[:(]/)[0]?.trim() ?? title;
}
