// Network namespaces for tests. Every namespace a run creates carries the run's
// prefix, so that teardown (and a sweep after a crashed run) removes exactly
// what this project made and nothing else.
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from "node:child_process";

/** All namespaces made by this project's tests and benchmarks start with this. */
export const LAB_PREFIX = "egt";

export function run(cmd: string, args: readonly string[], input?: string): string {
  return execFileSync(cmd, args, {
    encoding: "utf8",
    input,
    stdio: ["pipe", "pipe", "pipe"],
  });
}

/** Runs `ip -batch -` (in a namespace when given) with one command per line, failing on the first error. */
export function ipBatch(lines: readonly string[], ns?: { readonly name: string }): void {
  run("ip", [...(ns ? ["-n", ns.name] : []), "-batch", "-"], lines.join("\n") + "\n");
}

export class Namespace {
  constructor(readonly name: string) {}

  exec(cmd: string, args: readonly string[], input?: string): string {
    return run("ip", ["netns", "exec", this.name, cmd, ...args], input);
  }

  ip(...args: string[]): string {
    return this.exec("ip", args);
  }

  spawn(cmd: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
    return spawn("ip", ["netns", "exec", this.name, cmd, ...args], options);
  }

  sysctl(key: string, value: string): void {
    this.exec("sysctl", ["-qw", `${key}=${value}`]);
  }
}

const TAG = /^[a-z][a-z0-9]{0,11}$/;
let runsInThisProcess = 0;

/**
 * `egt-<tag>-p<pid>-<id>`: the owner's PID, so that a sweep can tell a crashed
 * run (owner gone) from a live one; the id tells apart several labs of one process.
 */
export function runPrefix(tag: string, pid = process.pid): string {
  if (!TAG.test(tag)) throw new Error(`lab tag ${JSON.stringify(tag)} must match ${TAG.source}`);
  runsInThisProcess += 1;
  const id = `${runsInThisProcess.toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  return `${LAB_PREFIX}-${tag}-p${pid}-${id}`;
}

/**
 * A set of namespaces with one per-run prefix. `ns("ext")` creates
 * `egt-<run>-ext` with loopback up. `destroy()` removes them all and is safe to
 * call twice.
 */
export class Lab {
  readonly prefix: string;
  private readonly made: Namespace[] = [];

  constructor(tag = "t") {
    this.prefix = runPrefix(tag);
  }

  ns(role: string): Namespace {
    const ns = new Namespace(`${this.prefix}-${role}`);
    run("ip", ["netns", "add", ns.name]);
    this.made.push(ns);
    ns.ip("link", "set", "lo", "up");
    return ns;
  }

  /** A veth pair between two namespaces, each end renamed and up. */
  link(a: Namespace, aIf: string, b: Namespace, bIf: string): void {
    const tmpA = `v${Math.random().toString(36).slice(2, 10)}`;
    const tmpB = `v${Math.random().toString(36).slice(2, 10)}`;
    run("ip", ["link", "add", tmpA, "netns", a.name, "type", "veth", "peer", "name", tmpB, "netns", b.name]);
    ipBatch([`link set ${tmpA} name ${aIf}`, `link set ${aIf} up`], a);
    ipBatch([`link set ${tmpB} name ${bIf}`, `link set ${bIf} up`], b);
  }

  destroy(): void {
    for (const ns of this.made.splice(0).reverse()) {
      try {
        run("ip", ["netns", "pids", ns.name])
          .split("\n")
          .filter(Boolean)
          .forEach((pid) => {
            try {
              process.kill(Number(pid), "SIGKILL");
            } catch {
              // already gone
            }
          });
        run("ip", ["netns", "del", ns.name]);
      } catch {
        // already gone
      }
    }
  }
}
