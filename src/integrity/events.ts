// Kernel change notifications, so that a check runs when something changed
// instead of spawning tools every few seconds: `ip monitor link` (vxlan0) and
// `nft monitor` (the nftables ruleset, which iptables-nft writes too). Each
// tool stays running and prints a line per change; any line asks for a check.
// iptables-legacy and sysctls have no such events: the watch polls those.
import { spawn, type ChildProcess } from "node:child_process";

export interface KernelEvents {
  /** False once a monitor has exited: the watch then polls instead. */
  readonly alive: boolean;
  stop(): void;
}

/**
 * Starts one monitor per argv. `onChange` runs for every burst of output;
 * `onLost` once, when the first monitor fails or exits (the others are stopped).
 */
export function watchKernelEvents(
  monitors: readonly (readonly string[])[],
  onChange: () => void,
  onLost: (why: string) => void,
): KernelEvents {
  let alive = true;
  const children: ChildProcess[] = [];
  const lose = (why: string): void => {
    if (!alive) return;
    alive = false;
    for (const child of children) child.kill();
    onLost(why);
  };
  for (const [file = "", ...args] of monitors) {
    const child = spawn(file, args, {
      stdio: ["ignore", "pipe", "ignore"],
      env: { ...process.env, LC_ALL: "C" },
    });
    children.push(child);
    child.stdout?.on("data", () => onChange());
    child.on("error", (error) => lose(`${file}: ${error.message}`));
    child.on("exit", (code, signal) => lose(`${[file, ...args].join(" ")} exited with ${code ?? signal}`));
  }
  return {
    get alive() {
      return alive;
    },
    stop() {
      alive = false;
      for (const child of children) child.kill();
    },
  };
}
