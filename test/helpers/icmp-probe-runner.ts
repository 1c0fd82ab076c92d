// Runs ICMP probes inside a test namespace. Raw sockets belong to the network
// namespace of the process that opens them, so tests start this script with
// `ip netns exec <ns> node --import tsx` and read one JSON line from stdout.
// It never calls process.exit: the test also checks that the prober lets the
// process end once closed.
import { setTimeout as sleep } from "node:timers/promises";
import {
  createIcmpProber,
  type IcmpProber,
  type IcmpProberOptions,
  type IcmpProberStats,
} from "../../src/probes/icmp.js";

export interface RunnerPlan {
  /** One prober per entry (separate sockets); default one prober with default options. */
  readonly probers?: readonly IcmpProberOptions[];
  /** Runs concurrently with each other; the repeats of one entry run one after another. */
  readonly probes: readonly {
    readonly target: string;
    readonly deadlineMs: number;
    readonly prober?: number;
    readonly repeat?: number;
  }[];
  /** Wait after the last probe before reading the stats, so that late answers arrive. */
  readonly settleMs?: number;
}

export interface RunnerResult {
  readonly target: string;
  readonly prober: number;
  readonly ok: boolean;
  readonly durationMs: number;
  /** Measured here, around the promise: proves the prober resolved in time. */
  readonly wallMs: number;
  readonly code?: string;
  readonly message?: string;
}

export type RunnerReport =
  | {
      readonly identifiers: number[];
      /** Per plan entry, per repeat. */
      readonly results: RunnerResult[][];
      readonly stats: IcmpProberStats[];
    }
  | { readonly error: { readonly name: string; readonly code?: string; readonly message: string } };

async function main(plan: RunnerPlan): Promise<RunnerReport> {
  let probers: IcmpProber[];
  try {
    probers = (plan.probers ?? [{}]).map((options) => createIcmpProber(options));
  } catch (error) {
    const { name, message, code } = error as Error & { code?: string };
    return { error: { name, code, message } };
  }
  try {
    const results = await Promise.all(
      plan.probes.map(async (entry) => {
        const index = entry.prober ?? 0;
        const prober = probers[index];
        if (prober === undefined) throw new Error(`no prober ${index}`);
        const runs: RunnerResult[] = [];
        for (let i = 0; i < (entry.repeat ?? 1); i++) {
          const start = performance.now();
          const result = await prober.probe(entry.target, AbortSignal.timeout(entry.deadlineMs));
          runs.push({
            target: entry.target,
            prober: index,
            ok: result.ok,
            durationMs: result.durationMs,
            wallMs: performance.now() - start,
            code: result.failure?.code,
            message: result.failure?.message,
          });
        }
        return runs;
      }),
    );
    if (plan.settleMs) await sleep(plan.settleMs);
    return { identifiers: probers.map((p) => p.identifier), results, stats: probers.map((p) => p.stats()) };
  } finally {
    for (const prober of probers) prober.close();
  }
}

const plan = JSON.parse(process.argv[2] ?? "{}") as RunnerPlan;
process.stdout.write(JSON.stringify(await main(plan)) + "\n");
