// V8's CPU profiler for a process a benchmark starts through a script (the
// gateway through start-gateway.sh), and the functions that took the most CPU
// in its profile, by self time: where the process spent its time.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

// Loaded with --import (node refuses --cpu-prof in NODE_OPTIONS); a session in
// the process's own thread answers synchronously, so the profile is written
// before the process is gone (on any exit but SIGKILL).
const PRELOAD = `
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector";
const session = new Session();
session.connect();
session.post("Profiler.enable");
session.post("Profiler.start");
process.on("exit", () => {
  session.post("Profiler.stop", (error, result) => {
    if (!error) writeFileSync(DIR + "/" + process.pid + ".cpuprofile", JSON.stringify(result.profile));
  });
});
`;

/** Environment for a node process that writes `dir`/<pid>.cpuprofile when it exits. */
export function profilerEnv(dir: string): Record<string, string> {
  const preload = join(dir, "cpu-prof-preload.mjs");
  writeFileSync(preload, `const DIR = ${JSON.stringify(dir)};\n${PRELOAD}`);
  return { NODE_OPTIONS: `--import ${preload}` };
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
}

interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface ProfileLine {
  readonly name: string;
  readonly selfMs: number;
  readonly share: number;
}

/** The `top` functions by self time (samples times their intervals), named `function file:line`. */
export function topSelfTime(
  path: string,
  top = 15,
): { readonly totalMs: number; readonly lines: ProfileLine[] } {
  const profile = JSON.parse(readFileSync(path, "utf8")) as Profile;
  const byNode = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<string, number>();
  let totalUs = 0;
  profile.samples.forEach((id, i) => {
    const frame = byNode.get(id)?.callFrame;
    const us = profile.timeDeltas[i] ?? 0;
    totalUs += us;
    if (frame === undefined) return;
    const file = frame.url.replace(/^.*\/(node_modules\/|dist\/|node:)/, "$1");
    const name = `${frame.functionName || "(anonymous)"} ${file}${file ? `:${frame.lineNumber + 1}` : ""}`;
    selfUs.set(name, (selfUs.get(name) ?? 0) + us);
  });
  const lines = [...selfUs]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, us]) => ({ name, selfMs: us / 1000, share: us / totalUs }));
  return { totalMs: totalUs / 1000, lines };
}
