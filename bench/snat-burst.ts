// What fully random SNAT ports change under a burst of new connections from
// many clients to one destination ip:port: the gateway pod after init (SNAT
// fully-random, ports 1024-65535) against the same ruleset without
// fully-random, in alternating rounds of one run. Lab namespaces only.
//
// Each round: the gateway pod's conntrack table flushed, then two burst
// processes (lab/burst.ts, one pinned to each CPU) open connections from
// --sources client addresses at once, every source from the same source port
// (the kernel's default allocation first tries to keep it), --ports times.
// Counted: conntrack insert failures in the gateway pod (/proc/net/stat/
// nf_conntrack, insert_failed: the SNAT race, the SYN is dropped), connects
// that failed within 3 s, and connects that needed a SYN retransmit (> 900 ms).
//
//   node --import tsx bench/snat-burst.ts [--rounds 6] [--sources 128] [--ports 20]
import { availableParallelism } from "node:os";
import { describeInit, runInit } from "../lab/gateway-pod.js";
import { ADDR, buildPodLab, type PodLab } from "../lab/pod-lab.js";
import { sweepCrashedRuns } from "../lab/sweep.js";
import { fixed, integerFlags, loadLine, median, table } from "./support/report.js";

const flags = integerFlags({ rounds: 6, sources: 128, ports: 20 });
const PORT = 7000;
const TABLE = "inet egress_gateway";
type Side = "fully random" | "default allocation";
const SIDES: readonly Side[] = ["fully random", "default allocation"];

interface Round {
  readonly insertFailed: number;
  readonly failed: number;
  readonly slow: number;
  readonly attempts: number;
}

/** Sum over CPUs of one column of /proc/net/stat/nf_conntrack (hex per CPU). */
function conntrackStat(pod: PodLab, column: string): number {
  const [head, ...rows] = pod.gateway.exec("cat", ["/proc/net/stat/nf_conntrack"]).trim().split("\n");
  const index = (head ?? "").trim().split(/\s+/).indexOf(column);
  if (index < 0) throw new Error(`no ${column} in /proc/net/stat/nf_conntrack`);
  return rows.reduce((sum, row) => sum + parseInt(row.trim().split(/\s+/)[index] ?? "0", 16), 0);
}

/** 198.51.100.100 onwards, on the client pod's eth0: the clients. */
function addSources(pod: PodLab, count: number): string[] {
  const sources = Array.from(
    { length: count },
    (_, i) => `198.51.${100 + Math.floor((100 + i) / 256)}.${(100 + i) % 256}`,
  );
  if (sources.some((s) => !s.startsWith("198.51.100."))) throw new Error("--sources at most 155");
  for (const source of sources) pod.client.ip("addr", "add", `${source}/24`, "dev", "eth0");
  return sources;
}

async function burst(
  pod: PodLab,
  sources: readonly string[],
  firstPort: number,
): Promise<Omit<Round, "insertFailed">> {
  const cpus = availableParallelism() >= 2 ? [0, 1] : [0];
  const halves = cpus.map((cpu) => sources.filter((_, i) => i % cpus.length === cpu));
  const runs = await Promise.all(
    halves.map((half, cpu) =>
      pod.lab.run(
        pod.client,
        "taskset",
        [
          ...["-c", String(cpu), process.execPath, "--import", "tsx", "lab/burst.ts"],
          ...["--host", ADDR.external.v4, "--port", String(PORT), "--sources", half.join(",")],
          ...["--first-port", String(firstPort), "--ports", String(flags.ports)],
        ],
        { timeoutMs: 120_000 },
      ),
    ),
  );
  const total = { failed: 0, slow: 0, attempts: 0 };
  for (const run of runs) {
    if (run.code !== 0) throw new Error(`burst client failed (${run.code}): ${run.stderr.trim()}`);
    const report = JSON.parse(run.stdout.trim()) as typeof total;
    total.failed += report.failed;
    total.slow += report.slow;
    total.attempts += report.attempts;
  }
  return total;
}

async function main(): Promise<number> {
  console.log(
    `snat-burst: ${flags.sources} clients x ${flags.ports} ports at once to one destination, ${flags.rounds} rounds`,
  );
  console.log(loadLine());
  sweepCrashedRuns();
  const pod = buildPodLab("sb");
  try {
    const init = await runInit(pod, { DATAPLANE: "nftables" });
    if (init.code !== 0) throw new Error(`init failed: ${describeInit(init)}`);
    console.log(`init: ${describeInit(init)}`);
    const random = pod.gateway.exec("nft", ["list", "table", ...TABLE.split(" ")]);
    if (!random.includes("fully-random")) throw new Error("init's ruleset has no fully-random");
    const ruleset: Record<Side, string> = {
      "fully random": random,
      "default allocation": random.replaceAll(" fully-random", ""),
    };
    const sources = addSources(pod, flags.sources);
    pod.routeClientViaGateway(true);
    await pod.lab.startProgram(pod.external, "conn-rate.ts", [
      "server",
      "--host",
      ADDR.external.v4,
      "--port",
      String(PORT),
    ]);

    const rounds: Record<Side, Round[]> = { "fully random": [], "default allocation": [] };
    for (let round = 0; round < flags.rounds; round++) {
      const order = round % 2 === 0 ? SIDES : [...SIDES].reverse();
      for (const side of order) {
        pod.gateway.exec("nft", ["-f", "-"], `delete table ${TABLE}\n${ruleset[side]}`);
        pod.gateway.exec("conntrack", ["-F"]);
        const before = conntrackStat(pod, "insert_failed");
        // A new port block each round: no 4-tuple of an earlier round is still in TIME_WAIT at the server.
        const result = await burst(
          pod,
          sources,
          20_000 + round * 2 * flags.ports + (side === SIDES[0] ? 0 : flags.ports),
        );
        const insertFailed = conntrackStat(pod, "insert_failed") - before;
        rounds[side].push({ ...result, insertFailed });
        console.log(
          `   round ${round + 1} ${side.padEnd(18)} insert_failed ${insertFailed}, failed ${result.failed}, ` +
            `slow ${result.slow} of ${result.attempts}`,
        );
      }
    }
    pod.gateway.exec("nft", ["-f", "-"], `delete table ${TABLE}\n${random}`);

    const spread = (values: number[]): string =>
      `${fixed(median(values), 0)} (${Math.min(...values)}-${Math.max(...values)})`;
    const row = (what: string, pick: (r: Round) => number): string[] => [
      what,
      ...SIDES.map((side) => spread(rounds[side].map(pick))),
    ];
    console.log("\nmedian (min-max) per round");
    console.log(
      table([
        ["", ...SIDES],
        row("conntrack insert failures", (r) => r.insertFailed),
        row("failed connects (3 s)", (r) => r.failed),
        row("connects after a SYN retransmit", (r) => r.slow),
        row("connects attempted", (r) => r.attempts),
      ]),
    );
    console.log(loadLine());
    return 0;
  } catch (error) {
    console.error(`snat-burst benchmark: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  } finally {
    pod.destroy();
  }
}

process.exitCode = await main();
