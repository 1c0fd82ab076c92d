// What forwarding through the gateway pod costs: client → external host through
// the gateway (after init: SNAT, conntrack, MSS clamp) against the direct path
// (client routed via the node), in rounds of one run that rotate the order of
// the sides, so that the ratios survive a noisy 2-core machine. Lab namespaces only.
//
// Two more sides split the gap. Direct is client → node → external; through
// the gateway pod every packet also crosses the bridge to the pod and back (two
// more veth crossings) and is forwarded once more. On one machine that work
// shares the CPUs with both ends, so:
//   forward only: the gateway pod with forwarding on and no ruleset at all (no
//     NAT, no conntrack; the node routes the client's replies back through the
//     pod): what the extra hop costs any gateway pod in this lab, the ceiling;
//   kernel SNAT: the same pod with the smallest ruleset SNAT needs (one snat
//     rule, so conntrack too): what the kernel's NAT adds;
//   gateway: init's ruleset. "gateway / forward only" is what SNAT and init's
//     rules cost on top of the hop, "gateway / kernel SNAT" what init's rules add.
//
//   throughput: iperf3, one TCP stream, --seconds per run, first second omitted
//   connections: lab/conn-rate.ts, one single-threaded Node client with --concurrency
//                connections in flight (connect, read one byte and FIN, close)
//
// With two or more CPUs, the client runs on CPU 0 and the server on CPU 1 for
// every side: they are different machines in real life, and left to the
// scheduler they sometimes share a CPU, which made single runs swing by ±25 %.
// Each ratio is the median over the rounds of that round's ratio (sides
// measured seconds apart), not a ratio of medians. One untimed warm-up run per
// side and kind comes first. Before each run the benchmark checks the path:
// the address the external host sees, and whether the gateway pod forwarded.
//
//   node --import tsx bench/forwarding.ts [--rounds 6] [--seconds 4] [--conn-seconds 3] [--concurrency 4]
import type { ChildProcess } from "node:child_process";
import { availableParallelism } from "node:os";
import { describeInit, runInit } from "../lab/gateway-pod.js";
import { ADDR, buildPodLab, type PodLab } from "../lab/pod-lab.js";
import { sweepCrashedRuns } from "../lab/sweep.js";
import { fixed, integerFlags, loadLine, median, table, verdict } from "./support/report.js";

const flags = integerFlags({ rounds: 6, seconds: 4, "conn-seconds": 3, concurrency: 4 });
const THROUGHPUT_TARGET = 0.85;
const CONNECTIONS_TARGET = 0.7;
const IPERF_PORT = 5201;
const CONN_PORT = 7000;
/** The table init installs (nftables dataplane); the kernel side swaps it for KERNEL_TABLE. */
const OUR_TABLE = "inet egress_gateway";
const KERNEL_TABLE = "ip bench_kernel_snat";

type Side = "direct" | "forward" | "kernel" | "gateway";
const SIDES: readonly Side[] = ["direct", "forward", "kernel", "gateway"];
const LABEL: Record<Side, string> = {
  direct: "direct",
  forward: "forward only",
  kernel: "kernel SNAT",
  gateway: "gateway",
};
/** The address the external host must see on each side: only the SNAT sides translate. */
const SEEN: Record<Side, string> = {
  direct: ADDR.client.v4,
  forward: ADDR.client.v4,
  kernel: ADDR.gateway.v4,
  gateway: ADDR.gateway.v4,
};

/** Every side goes first, second and last equally often: drift over the run hits all of them alike. */
function order(round: number): Side[] {
  const shift = round % SIDES.length;
  const rotated = [...SIDES.slice(shift), ...SIDES.slice(0, shift)];
  return Math.floor(round / SIDES.length) % 2 === 0 ? rotated : rotated.reverse();
}

/** `taskset` arguments that put a program on `cpu`, or none on a one-CPU machine. */
const PINNED = availableParallelism() >= 2;
const onCpu = (cpu: 0 | 1, argv: readonly string[]): [string, string[]] =>
  PINNED ? ["taskset", ["-c", String(cpu), ...argv]] : [argv[0]!, argv.slice(1)];

function waitForOutput(child: ChildProcess, pattern: RegExp, what: string, timeoutMs = 5_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(
      () => reject(new Error(`${what}: not ready within ${timeoutMs} ms: ${seen}`)),
      timeoutMs,
    );
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      seen += chunk;
      if (pattern.test(seen)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => reject(new Error(`${what} exited (${code}): ${seen}`)));
  });
}

async function iperf(pod: PodLab, seconds = flags.seconds): Promise<number> {
  const args = ["-c", ADDR.external.v4, "-p", String(IPERF_PORT), "-t", String(seconds), "-O", "1", "-J"];
  const [cmd, argv] = onCpu(0, ["iperf3", ...args]);
  const result = await pod.lab.run(pod.client, cmd, argv, { timeoutMs: (seconds + 15) * 1000 });
  const report = JSON.parse(result.stdout || "{}") as {
    error?: string;
    end?: { sum_received?: { bits_per_second?: number } };
  };
  const bps = report.end?.sum_received?.bits_per_second;
  if (result.code !== 0 || bps === undefined) {
    throw new Error(`iperf3 failed (${result.code}): ${report.error ?? result.stderr.trim()}`);
  }
  return bps;
}

async function connectionRate(
  pod: PodLab,
  seconds = flags["conn-seconds"],
): Promise<{ perSecond: number; errors: number }> {
  const args = ["--import", "tsx", "lab/conn-rate.ts", "client", "--host", ADDR.external.v4];
  args.push("--port", String(CONN_PORT), "--seconds", String(seconds));
  args.push("--concurrency", String(flags.concurrency));
  const [cmd, argv] = onCpu(0, [process.execPath, ...args]);
  const result = await pod.lab.run(pod.client, cmd, argv, { timeoutMs: (seconds + 30) * 1000 });
  if (result.code !== 0)
    throw new Error(`connection client failed (${result.code}): ${result.stderr.trim()}`);
  const report = JSON.parse(result.stdout.trim().split("\n").at(-1)!) as {
    perSecond: number;
    errors: number;
    firstError?: string;
  };
  if (report.errors > 0) console.log(`   (${report.errors} failed connections, first: ${report.firstError})`);
  return report;
}

/**
 * Switches the gateway pod between init's ruleset, the smallest one SNAT needs
 * and none. Init's sysctls (forwarding on, redirects off) stay for all three,
 * so the sides through the pod differ by the ruleset alone.
 */
function rulesetSwitch(pod: PodLab): (side: Side) => void {
  const ours = pod.gateway.exec("nft", ["list", "table", ...OUR_TABLE.split(" ")]);
  const kernel = [
    `table ${KERNEL_TABLE} {`,
    "  chain postrouting {",
    "    type nat hook postrouting priority srcnat; policy accept;",
    `    oifname "eth0" ip saddr != ${ADDR.gateway.v4} snat to ${ADDR.gateway.v4}`,
    "  }",
    "}",
  ].join("\n");
  const table: Record<Exclude<Side, "direct">, string | undefined> = {
    forward: undefined,
    kernel: KERNEL_TABLE,
    gateway: OUR_TABLE,
  };
  const ruleset: Record<Exclude<Side, "direct">, string> = { forward: "", kernel, gateway: ours };
  let current: Exclude<Side, "direct"> = "gateway";
  return (side) => {
    if (side === "direct" || side === current) return;
    // One transaction: between two SNAT sides the pod never forwards untranslated.
    const drop = table[current] === undefined ? "" : `delete table ${table[current]}\n`;
    pod.gateway.exec("nft", ["-f", "-"], `${drop}${ruleset[side]}\n`);
    current = side;
  };
}

/** IPv4 datagrams the gateway pod has forwarded so far (/proc/net/snmp, Ip: ForwDatagrams). */
function forwardedByGateway(pod: PodLab): number {
  const [names, values] = pod.gateway
    .exec("cat", ["/proc/net/snmp"])
    .split("\n")
    .filter((line) => line.startsWith("Ip:"))
    .map((line) => line.split(/\s+/));
  const count = Number(values?.[names?.indexOf("ForwDatagrams") ?? -1]);
  if (!Number.isFinite(count)) throw new Error("no Ip: ForwDatagrams in the gateway pod's /proc/net/snmp");
  return count;
}

/** Median over the rounds of each round's `side / base`. */
function pairedRatio(values: Record<Side, number[]>, side: Side, base: Side): number {
  return median(values[side].map((v, round) => v / values[base][round]!));
}

/** The ratios reported, as [side, base]; the target is for gateway/direct. */
const RATIOS: readonly (readonly [Side, Side])[] = [
  ["forward", "direct"],
  ["kernel", "direct"],
  ["gateway", "direct"],
  ["gateway", "forward"],
  ["gateway", "kernel"],
];

/** One row of the medians table. */
const mediansRow = (what: string, unit: string, digits: number, values: Record<Side, number[]>): string[] => [
  what,
  ...SIDES.map((side) => fixed(median(values[side]), digits)),
  unit,
];

/** One row of the ratios table. */
function ratiosRow(what: string, values: Record<Side, number[]>, target: number): string[] {
  const ours = pairedRatio(values, "gateway", "direct");
  return [
    what,
    ...RATIOS.map(([side, base]) => fixed(pairedRatio(values, side, base), 2)),
    `>= ${target}`,
    verdict(ours >= target),
  ];
}

async function main(): Promise<number> {
  console.log(`forwarding: through the gateway pod vs direct, ${flags.rounds} rounds`);
  console.log(
    PINNED
      ? "client on CPU 0, server on CPU 1 (taskset)"
      : "one CPU: client and server are not pinned, expect more noise",
  );
  console.log(loadLine());
  sweepCrashedRuns();
  const pod = buildPodLab("fwd");
  try {
    const init = await runInit(pod, { DATAPLANE: "nftables" });
    if (init.code !== 0) throw new Error(`init failed: ${describeInit(init)}`);
    console.log(`init: ${describeInit(init)}`);
    const useRuleset = rulesetSwitch(pod);

    const [iperfCmd, iperfArgv] = onCpu(1, [
      ...["iperf3", "-s", "-B", ADDR.external.v4, "-p", String(IPERF_PORT), "--forceflush"],
    ]);
    const iperfServer = pod.lab.spawn(pod.external, iperfCmd, iperfArgv);
    const [echo, client, , connServer] = await Promise.all([
      pod.startPeerEcho(),
      pod.httpClient(pod.client),
      waitForOutput(iperfServer, /Server listening/, "iperf3 server"),
      pod.lab.startProgram(pod.external, "conn-rate.ts", [
        ...["server", "--host", ADDR.external.v4, "--port", String(CONN_PORT)],
      ]),
    ]);
    if (PINNED) pod.external.exec("taskset", ["-pc", "1", String(connServer.child.pid)]);
    const route = async (side: Side): Promise<void> => {
      useRuleset(side);
      pod.routeClientViaGateway(side !== "direct");
      // Untranslated replies would go from the node straight to the client:
      // send them back through the pod, as conntrack does on the SNAT sides.
      pod.routeNodeToClientViaGateway(side === "forward");
      const before = forwardedByGateway(pod);
      const seen = await client.text(echo.url(4));
      const forwarded = forwardedByGateway(pod) > before;
      if (seen !== SEEN[side]) throw new Error(`${side} path: external host sees ${seen}, not ${SEEN[side]}`);
      if (forwarded !== (side !== "direct")) {
        throw new Error(
          `${side} path: the gateway pod ${forwarded ? "forwarded" : "did not forward"} the check`,
        );
      }
    };

    // Warm-up, not counted: servers' JIT, neighbour and route caches, conntrack.
    for (const side of order(0)) {
      await route(side);
      await iperf(pod, 2);
      await connectionRate(pod, 1);
    }

    const gbps: Record<Side, number[]> = { direct: [], forward: [], kernel: [], gateway: [] };
    console.log(`\nthroughput: iperf3, 1 TCP stream, ${flags.seconds} s per run (first second omitted)`);
    for (let round = 0; round < flags.rounds; round++) {
      for (const side of order(round)) {
        await route(side);
        gbps[side].push((await iperf(pod)) / 1e9);
        console.log(`   round ${round + 1} ${LABEL[side].padEnd(12)} ${fixed(gbps[side].at(-1)!, 2)} Gbit/s`);
      }
    }

    const cps: Record<Side, number[]> = { direct: [], forward: [], kernel: [], gateway: [] };
    console.log(
      `\nnew TCP connections/s: single-threaded Node client, ${flags.concurrency} in flight,` +
        ` ${flags["conn-seconds"]} s per run`,
    );
    for (let round = 0; round < flags.rounds; round++) {
      for (const side of order(round)) {
        await route(side);
        cps[side].push((await connectionRate(pod)).perSecond);
        console.log(`   round ${round + 1} ${LABEL[side].padEnd(12)} ${fixed(cps[side].at(-1)!, 0)} /s`);
      }
    }

    console.log("\nmedians of the rounds");
    console.log(
      table([
        ["", ...SIDES.map((side) => LABEL[side]), "unit"],
        mediansRow("throughput", "Gbit/s", 2, gbps),
        mediansRow("new connections", "/s", 0, cps),
      ]),
    );
    console.log("\nratios: medians of each round's ratio");
    console.log(
      table([
        ["", ...RATIOS.map(([side, base]) => `${side}/${base}`), "target", ""],
        ratiosRow("throughput", gbps, THROUGHPUT_TARGET),
        ratiosRow("new connections", cps, CONNECTIONS_TARGET),
      ]),
    );
    console.log(
      "targets are for gateway/direct. forward/direct is the ceiling for any gateway pod in this lab;" +
        " gateway/forward is what SNAT and init's rules cost on top of the hop.",
    );
    console.log(loadLine());
    return 0;
  } catch (error) {
    console.error(`forwarding benchmark: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  } finally {
    pod.destroy();
  }
}

process.exitCode = await main();
