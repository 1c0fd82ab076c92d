// Removes what crashed lab runs left behind: namespaces with the project's
// prefix whose owning process is gone, and the processes still running in them.
// A namespace whose owner may be alive is never touched.
//
// Lab namespaces are named egt-<tag>-p<pid>-<id>-<role> (runPrefix in
// lab/netns.ts). Anything else under the prefix (a hand-made scratch
// namespace) has no owner we can check and is kept.
import { LAB_PREFIX, run } from "./netns.js";

const RUN_LAB_NAME = new RegExp(`^${LAB_PREFIX}-[a-z][a-z0-9]*-p(\\d+)-[0-9a-z]+-`);

/** The PID that owns the namespace `name`, or undefined when the name says nothing about its owner. */
export function ownerOf(name: string): number | undefined {
  const match = RUN_LAB_NAME.exec(name);
  return match ? Number(match[1]) : undefined;
}

/** True unless the process is certainly gone (EPERM still means it exists). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

export function projectNamespaces(): string[] {
  return run("ip", ["netns", "list"])
    .split("\n")
    .map((line) => line.split(" ")[0] ?? "")
    .filter((name) => name.startsWith(`${LAB_PREFIX}-`));
}

export interface SweepReport {
  /** Namespaces of crashed runs, removed (with the processes that were left in them). */
  readonly removed: readonly string[];
  /** Namespaces kept: their owner is alive or cannot be told from the name. */
  readonly kept: readonly string[];
}

export function sweepCrashedRuns(exists: (pid: number) => boolean = processExists): SweepReport {
  const removed: string[] = [];
  const kept: string[] = [];
  for (const name of projectNamespaces()) {
    const owner = ownerOf(name);
    if (owner === undefined || exists(owner)) {
      kept.push(name);
      continue;
    }
    try {
      for (const pid of run("ip", ["netns", "pids", name]).split("\n").filter(Boolean)) {
        try {
          process.kill(Number(pid), "SIGKILL");
        } catch {
          // already gone
        }
      }
      run("ip", ["netns", "del", name]);
      removed.push(name);
    } catch {
      // removed by someone else meanwhile
    }
  }
  return { removed, kept };
}
