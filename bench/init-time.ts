// Wall time of the init container's program (init-gateway.sh, spawned in the
// gateway pod's namespace, to its exit) for each way of writing rules. Each
// backend gets a fresh gateway pod namespace: the first run creates everything,
// the later runs are re-runs over what is there (a restarted init container).
// Also checks that re-runs leave the ruleset exactly as the first run did.
//
//   node --import tsx bench/init-time.ts [--runs 10]
import { describeInit, runInit } from "../lab/gateway-pod.js";
import { buildPodLab, type PodLab } from "../lab/pod-lab.js";
import { sweepCrashedRuns } from "../lab/sweep.js";
import { fixed, integerFlags, loadLine, median, table, verdict } from "./support/report.js";

const flags = integerFlags({ runs: 10 });
const TARGET_MS = 1_000;

interface Backend {
  readonly name: string;
  readonly env: Record<string, string>;
  /** The rules as the kernel holds them, without counters and timestamps. */
  readonly ruleset: (pod: PodLab) => string;
}

const withoutCounters = (text: string): string =>
  text
    .split("\n")
    .filter((line) => !line.startsWith("#"))
    .map((line) => line.replace(/\[\d+:\d+\]/g, "[]").replace(/counter packets \d+ bytes \d+/g, "counter"))
    .join("\n");

const iptablesRules =
  (flavour: "nft" | "legacy") =>
  (pod: PodLab): string =>
    ["iptables", "ip6tables"]
      .map((tool) => withoutCounters(pod.gateway.exec(`${tool}-${flavour}-save`, [])))
      .join("\n");

const BACKENDS: readonly Backend[] = [
  {
    name: "nftables",
    env: { DATAPLANE: "nftables" },
    ruleset: (pod) => withoutCounters(pod.gateway.exec("nft", ["list", "ruleset"])),
  },
  {
    name: "iptables nft",
    env: { DATAPLANE: "iptables", IPTABLES_BACKEND: "nft" },
    ruleset: iptablesRules("nft"),
  },
  {
    name: "iptables legacy",
    env: { DATAPLANE: "iptables", IPTABLES_BACKEND: "legacy" },
    ruleset: iptablesRules("legacy"),
  },
];

interface Measured {
  readonly backend: string;
  readonly firstMs: number;
  readonly rerunsMs: number[];
  /** What init itself says it took ("ready in N ms"), median of the re-runs. */
  readonly selfReportedMs: number;
  readonly sameRuleset: boolean;
}

async function measure(backend: Backend): Promise<Measured> {
  const pod = buildPodLab("init");
  try {
    const wallMs: number[] = [];
    const selfMs: number[] = [];
    let firstRuleset = "";
    for (let run = 0; run < flags.runs; run++) {
      const result = await runInit(pod, backend.env);
      if (result.code !== 0) throw new Error(`${backend.name}, run ${run + 1}: ${describeInit(result)}`);
      wallMs.push(result.ms);
      selfMs.push(Number(/ready in (\d+) ms/.exec(result.stdout)?.[1] ?? NaN));
      if (run === 0) {
        firstRuleset = backend.ruleset(pod);
        console.log(`${backend.name}: ${describeInit(result)}`);
      }
    }
    return {
      backend: backend.name,
      firstMs: wallMs[0]!,
      rerunsMs: wallMs.slice(1),
      selfReportedMs: median(selfMs.slice(1)),
      sameRuleset: backend.ruleset(pod) === firstRuleset,
    };
  } finally {
    pod.destroy();
  }
}

/** Node itself starting and exiting in a namespace: the floor under any init written in Node. */
async function nodeStartMs(): Promise<number> {
  const pod = buildPodLab("init");
  try {
    const times: number[] = [];
    for (let run = 0; run < flags.runs; run++) {
      times.push((await pod.lab.run(pod.gateway, process.execPath, ["-e", ""])).ms);
    }
    return median(times);
  } finally {
    pod.destroy();
  }
}

async function main(): Promise<number> {
  console.log(`init wall time: ${flags.runs} runs per backend in a fresh gateway pod namespace`);
  console.log(loadLine());
  sweepCrashedRuns();
  const results: Measured[] = [];
  let failed = false;
  for (const backend of BACKENDS) {
    try {
      results.push(await measure(backend));
    } catch (error) {
      failed = true;
      console.error(`✗ ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  const floor = await nodeStartMs();
  const ms = (n: number): string => `${fixed(n, 0)} ms`;
  console.log(
    "\n" +
      table([
        ["backend", "first run", "re-runs median", "min", "max", "init says", "re-run ruleset", "target", ""],
        ...results.map((r) => [
          r.backend,
          ms(r.firstMs),
          ms(median(r.rerunsMs)),
          ms(Math.min(...r.rerunsMs)),
          ms(Math.max(...r.rerunsMs)),
          ms(r.selfReportedMs),
          r.sameRuleset ? "identical" : "CHANGED",
          `< ${ms(TARGET_MS)}`,
          verdict(Math.max(r.firstMs, median(r.rerunsMs)) < TARGET_MS),
        ]),
      ]),
  );
  console.log(`\nnode -e "" in a namespace (the floor): ${ms(floor)} median`);
  console.log(loadLine());
  return failed ? 1 : 0;
}

process.exitCode = await main();
