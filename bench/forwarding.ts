// What forwarding through the gateway pod costs: client → external host through
// the gateway (after init: SNAT, conntrack, MSS clamp) against the direct path
// (client routed via the node), in alternating rounds of one run, so that the
// ratios survive a noisy 2-core machine. Lab namespaces only.
//
//   throughput: iperf3, one TCP stream, --seconds per round, first second omitted
//   connections: lab/conn-rate.ts, one single-threaded Node client with --concurrency
//                connections in flight (connect, read one byte and FIN, close)
//
// One untimed warm-up run per side and kind comes first.
//
//   node --import tsx bench/forwarding.ts [--rounds 3] [--seconds 5] [--conn-seconds 3] [--concurrency 4]
import type { ChildProcess } from "node:child_process";
import { describeInit, runInit } from "../lab/gateway-pod.js";
import { ADDR, buildPodLab, type PodLab } from "../lab/pod-lab.js";
import { sweepCrashedRuns } from "../lab/sweep.js";
import { fixed, integerFlags, loadLine, median, table, verdict } from "./support/report.js";

const flags = integerFlags({ rounds: 3, seconds: 5, "conn-seconds": 3, concurrency: 4 });
const THROUGHPUT_TARGET = 0.85;
const CONNECTIONS_TARGET = 0.7;
const IPERF_PORT = 5201;
const CONN_PORT = 7000;

type Side = "direct" | "gateway";
const SEEN: Record<Side, string> = { direct: ADDR.client.v4, gateway: ADDR.gateway.v4 };

/** Direct first in odd rounds, gateway first in even ones: drift over the run hits both sides alike. */
const order = (round: number): Side[] => (round % 2 === 0 ? ["direct", "gateway"] : ["gateway", "direct"]);

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
  const result = await pod.lab.run(pod.client, "iperf3", args, { timeoutMs: (seconds + 15) * 1000 });
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
  const result = await pod.lab.run(pod.client, process.execPath, args, { timeoutMs: (seconds + 30) * 1000 });
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

async function main(): Promise<number> {
  console.log(`forwarding: through the gateway pod vs direct, ${flags.rounds} alternating rounds`);
  console.log(loadLine());
  sweepCrashedRuns();
  const pod = buildPodLab("fwd");
  try {
    const init = await runInit(pod);
    if (init.code !== 0) throw new Error(`init failed: ${describeInit(init)}`);
    console.log(`init: ${describeInit(init)}`);

    const iperfServer = pod.lab.spawn(pod.external, "iperf3", [
      ...["-s", "-B", ADDR.external.v4, "-p", String(IPERF_PORT), "--forceflush"],
    ]);
    const [echo, client] = await Promise.all([
      pod.startPeerEcho(),
      pod.httpClient(pod.client),
      waitForOutput(iperfServer, /Server listening/, "iperf3 server"),
      pod.lab.startProgram(pod.external, "conn-rate.ts", [
        ...["server", "--host", ADDR.external.v4, "--port", String(CONN_PORT)],
      ]),
    ]);
    const route = async (side: Side): Promise<void> => {
      pod.routeClientViaGateway(side === "gateway");
      const seen = await client.text(echo.url(4));
      if (seen !== SEEN[side]) throw new Error(`${side} path: external host sees ${seen}, not ${SEEN[side]}`);
    };

    // Warm-up, not counted: servers' JIT, neighbour and route caches, conntrack.
    for (const side of order(0)) {
      await route(side);
      await iperf(pod, 2);
      await connectionRate(pod, 1);
    }

    const gbps: Record<Side, number[]> = { direct: [], gateway: [] };
    console.log(`\nthroughput: iperf3, 1 TCP stream, ${flags.seconds} s per run (first second omitted)`);
    for (let round = 0; round < flags.rounds; round++) {
      for (const side of order(round)) {
        await route(side);
        gbps[side].push((await iperf(pod)) / 1e9);
        console.log(`   round ${round + 1} ${side.padEnd(7)} ${fixed(gbps[side].at(-1)!, 2)} Gbit/s`);
      }
    }

    const cps: Record<Side, number[]> = { direct: [], gateway: [] };
    console.log(
      `\nnew TCP connections/s: single-threaded Node client, ${flags.concurrency} in flight,` +
        ` ${flags["conn-seconds"]} s per run`,
    );
    for (let round = 0; round < flags.rounds; round++) {
      for (const side of order(round)) {
        await route(side);
        cps[side].push((await connectionRate(pod)).perSecond);
        console.log(`   round ${round + 1} ${side.padEnd(7)} ${fixed(cps[side].at(-1)!, 0)} /s`);
      }
    }

    const ratio = (values: Record<Side, number[]>): number => median(values.gateway) / median(values.direct);
    const throughputRatio = ratio(gbps);
    const connectionsRatio = ratio(cps);
    console.log("\nmedians of the rounds");
    console.log(
      table([
        ["", "direct", "gateway", "gateway/direct", "target", ""],
        [
          "throughput (Gbit/s)",
          fixed(median(gbps.direct), 2),
          fixed(median(gbps.gateway), 2),
          fixed(throughputRatio, 2),
          `>= ${THROUGHPUT_TARGET}`,
          verdict(throughputRatio >= THROUGHPUT_TARGET),
        ],
        [
          "new connections (/s)",
          fixed(median(cps.direct), 0),
          fixed(median(cps.gateway), 0),
          fixed(connectionsRatio, 2),
          `>= ${CONNECTIONS_TARGET}`,
          verdict(connectionsRatio >= CONNECTIONS_TARGET),
        ],
      ]),
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
