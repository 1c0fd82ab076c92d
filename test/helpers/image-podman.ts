// podman for the image test: build the image (scripts/image-build.sh, cached
// layers and base images), run its containers inside lab namespaces, and
// remove what a run or a crashed earlier run left. Container names carry the
// lab's per-run prefix (egt-<tag>-p<pid>-<id>-<role>), so that a sweep can
// tell a crashed run's containers from a live run's, as for namespaces.
import { execFileSync, spawn } from "node:child_process";
import { join } from "node:path";
import { ownerOf, processExists } from "../../lab/sweep.js";
import { LAB_PREFIX } from "../../lab/netns.js";
import { ROOT } from "../../lab/gateway-process.js";

export const IMAGE = process.env.IMAGE ?? "localhost/egress-gateway:dev";

export interface Ran {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/** Runs a command to completion (SIGKILL after timeoutMs); never rejects for a non-zero exit. */
export function runCommand(
  cmd: string,
  args: readonly string[],
  options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<Ran> {
  const start = performance.now();
  const child = spawn(cmd, args, { cwd: ROOT, env: options.env, stdio: ["ignore", "pipe", "pipe"] });
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout.on("data", (b: Buffer) => stdout.push(b));
  child.stderr.on("data", (b: Buffer) => stderr.push(b));
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000);
  return new Promise((resolve, reject) => {
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({
        code,
        stdout: Buffer.concat(stdout).toString("utf8"),
        stderr: Buffer.concat(stderr).toString("utf8"),
        ms: performance.now() - start,
      });
    });
  });
}

export function podman(args: readonly string[], timeoutMs = 60_000): Promise<Ran> {
  return runCommand("podman", args, { timeoutMs });
}

/** podman, failing with its stderr on a non-zero exit; resolves with trimmed stdout. */
export async function podmanOk(args: readonly string[], timeoutMs?: number): Promise<string> {
  const ran = await podman(args, timeoutMs);
  if (ran.code !== 0) throw new Error(`podman ${args.join(" ")}: exit ${ran.code}: ${ran.stderr.trim()}`);
  return ran.stdout.trim();
}

/** scripts/image-build.sh: base images when missing, then the image (cached layers). */
export async function buildImage(): Promise<{ id: string; ms: number }> {
  const ran = await runCommand("bash", [join(ROOT, "scripts", "image-build.sh")], {
    timeoutMs: 20 * 60_000,
    env: { ...process.env, IMAGE },
  });
  if (ran.code !== 0) {
    const tail = ran.stderr.trim().split("\n").slice(-30).join("\n");
    throw new Error(`scripts/image-build.sh failed (exit ${ran.code}):\n${tail}`);
  }
  return { id: ran.stdout.trim().split("\n").at(-1)!, ms: ran.ms };
}

/** `-e NAME=VALUE` for each variable. */
export const envArgs = (env: Record<string, string>): string[] =>
  Object.entries(env).flatMap(([name, value]) => ["-e", `${name}=${value}`]);

/**
 * Removes containers by name, running ones too; unknown names are fine.
 * Synchronous, so that it can also run from an exit hook (lab/exit-hooks.ts).
 */
export function removeContainers(names: readonly string[]): void {
  if (names.length === 0) return;
  try {
    execFileSync("podman", ["rm", "--force", "--time", "0", "--ignore", ...names], { stdio: "ignore" });
  } catch {
    // podman itself failed: the next run's sweepCrashedContainers() retries
  }
}

/** Removes the containers of crashed runs (owner process gone); a live run's are kept. */
export async function sweepCrashedContainers(): Promise<string[]> {
  const names = (await podmanOk(["ps", "--all", "--format", "{{.Names}}"]))
    .split("\n")
    .filter((name) => name.startsWith(`${LAB_PREFIX}-`));
  const crashed = names.filter((name) => {
    const owner = ownerOf(name);
    return owner !== undefined && !processExists(owner);
  });
  removeContainers(crashed);
  return crashed;
}
