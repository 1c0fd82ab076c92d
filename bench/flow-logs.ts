// What flow logs cost and how many they carry: the gateway pod after init with
// the gateway process running, FLOW_LOGS off against FLOW_LOGS=true (no rate
// limit), in alternating rounds of one run. Lab namespaces only.
//
// Per round and side: new TCP connections/s (lab/conn-rate.ts, as in
// bench/forwarding.ts) and iperf3 throughput through the pod. TIME_WAIT in the
// gateway pod is cut to 1 s on both sides, so that the kernel reports each
// connection (DESTROY) within the run instead of 2 minutes later: that is the
// load flow logs add. On the "on" side the benchmark also counts the flow lines
// against the connections made (lost = attempts - logged, once the entries
// are gone from the table) and the CPU the gateway and its conntrack listeners used for them.
//
// With --telemetry-interval N the "on" side also runs kernel telemetry with
// TELEMETRY_INTERVAL=Ns (the "off" side never does), so that the ratios are
// those of the "telemetry and flow logs on vs off"; without it both
// sides run with telemetry off and only flow logs differ.
//
//   node --import tsx bench/flow-logs.ts [--rounds 4] [--seconds 3] [--concurrency 4] [--telemetry-interval 1]
import { readFileSync } from "node:fs";
import { runInit, describeInit, startGateway } from "../lab/gateway-pod.js";
import type { GatewayProcess } from "../lab/gateway-process.js";
import { ADDR, buildPodLab, type PodLab } from "../lab/pod-lab.js";
import { sweepCrashedRuns } from "../lab/sweep.js";
import { fixed, integerFlags, loadLine, median, table } from "./support/report.js";

const flags = integerFlags({ rounds: 4, seconds: 3, concurrency: 4, "telemetry-interval": 0 });
const telemetryOn = flags["telemetry-interval"] > 0;
const CONN_PORT = 7000;
const IPERF_PORT = 5201;
type Side = "off" | "on";
const CLK_TCK = 100;

/** utime + stime of a process and its children now running, in seconds. */
function cpuSeconds(pid: number): number {
  const ofPid = (p: number): number => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
    } catch {
      return 0;
    }
  };
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    children = [];
  }
  return ofPid(pid) + children.reduce((sum, child) => sum + ofPid(child), 0);
}

const DESTROY_WAIT_MS = 70_000;

/** Waits until the gateway pod's table holds no entry toward the connection server; returns the ms waited. */
async function allDestroyed(pod: PodLab): Promise<number> {
  const started = performance.now();
  for (;;) {
    // Counted by wc: a listing of thousands of entries is more than exec's buffer.
    const listing = `conntrack -L -p tcp --dport ${CONN_PORT} 2>/dev/null | wc -l`;
    const left = Number(pod.gateway.exec("sh", ["-c", listing]).trim());
    const waited = performance.now() - started;
    if (left === 0) return waited;
    if (waited > DESTROY_WAIT_MS) {
      console.log(
        `   ${left} entries still in the table after ${DESTROY_WAIT_MS / 1000} s: counted as not logged`,
      );
      return waited;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** Connections made, and attempts: a connect that failed still made (and destroyed) a conntrack entry. */
async function connections(pod: PodLab): Promise<{ made: number; attempts: number; perSecond: number }> {
  const run = await pod.lab.run(
    pod.client,
    "taskset",
    [
      ...["-c", "0", process.execPath, "--import", "tsx", "lab/conn-rate.ts", "client"],
      ...["--host", ADDR.external.v4, "--port", String(CONN_PORT), "--seconds", String(flags.seconds)],
      ...["--concurrency", String(flags.concurrency)],
    ],
    { timeoutMs: 60_000 },
  );
  if (run.code !== 0) throw new Error(`conn-rate failed: ${run.stderr}`);
  const report = JSON.parse(run.stdout.trim().split("\n").at(-1)!) as {
    connections: number;
    errors: number;
    perSecond: number;
  };
  return {
    made: report.connections,
    attempts: report.connections + report.errors,
    perSecond: report.perSecond,
  };
}

async function iperf(pod: PodLab): Promise<number> {
  const run = await pod.lab.run(
    pod.client,
    "taskset",
    [
      ...[
        "-c",
        "0",
        "iperf3",
        "-c",
        ADDR.external.v4,
        "-p",
        String(IPERF_PORT),
        "-t",
        String(flags.seconds),
        "-O",
        "1",
        "-J",
      ],
    ],
    { timeoutMs: 60_000 },
  );
  const bps = (JSON.parse(run.stdout || "{}") as { end?: { sum_received?: { bits_per_second?: number } } })
    .end?.sum_received?.bits_per_second;
  if (bps === undefined) throw new Error(`iperf3 failed: ${run.stderr}`);
  return bps / 1e9;
}

async function main(): Promise<number> {
  const what = telemetryOn ? `FLOW_LOGS and TELEMETRY_INTERVAL=${flags["telemetry-interval"]}s` : "FLOW_LOGS";
  console.log(`flow-logs: gateway with ${what} off vs on, ${flags.rounds} rounds`);
  console.log(loadLine());
  sweepCrashedRuns();
  const pod = buildPodLab("fb");
  let gateway: GatewayProcess | undefined;
  try {
    const init = await runInit(pod, { DATAPLANE: "nftables" });
    if (init.code !== 0) throw new Error(`init failed: ${describeInit(init)}`);
    pod.gateway.sysctl("net.netfilter.nf_conntrack_tcp_timeout_time_wait", "1");
    // The server closes first, so each connection leaves a TIME_WAIT socket
    // there for 60 s; after one round of ~9,000 the gateway's random SNAT ports
    // meet them and SYNs wait for retransmits (3,000 conn/s fell to 230 in the
    // next round). No TIME_WAIT on the server: every round starts alike.
    pod.external.sysctl("net.ipv4.tcp_max_tw_buckets", "0");
    pod.routeClientViaGateway(true);
    await pod.lab.startProgram(pod.external, "conn-rate.ts", [
      "server",
      "--host",
      ADDR.external.v4,
      "--port",
      String(CONN_PORT),
    ]);
    pod.lab.spawn(pod.external, "taskset", [
      "-c",
      "1",
      "iperf3",
      "-s",
      "-B",
      ADDR.external.v4,
      "-p",
      String(IPERF_PORT),
    ]);
    await new Promise((resolve) => setTimeout(resolve, 500));

    const cps: Record<Side, number[]> = { off: [], on: [] };
    const gbps: Record<Side, number[]> = { off: [], on: [] };
    const lossShare: number[] = [];
    const loggedPerSecond: number[] = [];
    const cpuPer1000: number[] = [];
    for (let round = 0; round < flags.rounds; round++) {
      for (const side of (round % 2 === 0 ? ["off", "on"] : ["on", "off"]) as Side[]) {
        gateway = startGateway(pod, {
          HEALTH_PORT: "0",
          FLOW_LOGS: side === "on" ? "true" : "false",
          FLOW_LOGS_RATE: "0",
          TELEMETRY_INTERVAL: side === "on" && telemetryOn ? `${flags["telemetry-interval"]}s` : "0s",
        });
        await gateway.waitForLog((l) => l.msg === "gateway started", 15_000);
        await new Promise((resolve) => setTimeout(resolve, 500));
        const pid = gateway.child.pid!;
        const flowsBefore = gateway.logs.length;
        const cpuBefore = cpuSeconds(pid);
        const made = await connections(pod);
        // The last entries expire 1 s after their close, and their DESTROY comes
        // when the kernel's collector next runs: up to a minute later on a quiet
        // table. Until the table holds none of them, unlogged is not lost.
        // On both sides, so that no round's entries are destroyed, and logged, in the next.
        const expiredIn = await allDestroyed(pod);
        // The listeners and the gateway may still work through a backlog of
        // events: count once no line came for 2 s.
        const flowCount = (): number =>
          gateway!.logs.slice(flowsBefore).filter((l) => l.name === "egress-gateway.flows").length;
        let logged = flowCount();
        for (let quiet = 0, waited = 0; quiet < 2_000 && waited < 60_000; waited += 250) {
          await new Promise((resolve) => setTimeout(resolve, 250));
          const now = flowCount();
          quiet = now === logged ? quiet + 250 : 0;
          logged = now;
        }
        const cpu = cpuSeconds(pid) - cpuBefore;
        cps[side].push(made.perSecond);
        gbps[side].push(await iperf(pod));
        if (side === "on") {
          lossShare.push((made.attempts - logged) / made.attempts);
          loggedPerSecond.push(logged / flags.seconds);
          cpuPer1000.push((cpu / logged) * 1000 * 100);
        }
        console.log(
          `   round ${round + 1} ${side.padEnd(3)} ${fixed(made.perSecond, 0)} conn/s, ${fixed(gbps[side].at(-1)!, 2)} Gbit/s` +
            (side === "on"
              ? `, logged ${logged} of ${made.attempts} attempts (${made.made} made; table empty after ${fixed(expiredIn / 1000, 1)} s), gateway+listeners CPU ${fixed(cpu, 2)} s`
              : `, gateway CPU ${fixed(cpu, 2)} s`),
        );
        await gateway.kill();
        gateway = undefined;
      }
    }
    const ratios = (values: Record<Side, number[]>): number[] => values.on.map((v, i) => v / values.off[i]!);
    const spread = (values: number[], digits: number): string =>
      `${fixed(median(values), digits)} (${fixed(Math.min(...values), digits)}-${fixed(Math.max(...values), digits)})`;
    console.log("\nmedian (min-max) over the rounds");
    console.log(
      table([
        ["", "value", "target"],
        ["new connections/s, on / off", spread(ratios(cps), 2), ">= 0.95"],
        ["throughput, on / off", spread(ratios(gbps), 2), ">= 0.95"],
        ["flow lines logged per second (on)", spread(loggedPerSecond, 0), ""],
        [
          "connections not logged (on)",
          spread(
            lossShare.map((x) => x * 100),
            2,
          ) + " %",
          "0 %",
        ],
        ["CPU per 1,000 flows/s (gateway + listeners)", spread(cpuPer1000, 1) + " % of a core", ""],
      ]),
    );
    console.log(loadLine());
    return 0;
  } catch (error) {
    console.error(`flow-logs benchmark: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  } finally {
    await gateway?.kill();
    pod.destroy();
  }
}

process.exitCode = await main();
