// What flow logs cost and how many they carry: the gateway pod after init with
// the gateway process running, FLOW_LOGS off against FLOW_LOGS=true (no rate
// limit), in alternating rounds of one run. Lab namespaces only.
//
// Per round and side: new TCP connections/s (lab/conn-rate.ts, as in
// bench/forwarding.ts, or paced at --rate N conn/s) and iperf3 throughput
// through the pod. TIME_WAIT in the gateway pod is cut to 1 s on both sides (--time-wait), so
// that the kernel reports each connection (DESTROY) within the run instead of 2
// minutes later: that is the load flow logs add. On the "on" side it counts the
// flow lines of the benchmark's own connections (client address to the
// connection server's address and port; iperf3's flows and anything else are
// counted apart) against the connect attempts, once the entries are gone from the
// table, with the gateway's counters (rate-limit drops, event overflows) and
// the kernel's drops on the listeners' netlink sockets, and the CPU the gateway
// and its conntrack listeners used.
//
// With --telemetry-interval N the "on" side also runs kernel telemetry with
// TELEMETRY_INTERVAL=Ns (the "off" side never does), so that the ratios are
// those of the issue's "telemetry and flow logs on vs off"; without it both
// sides run with telemetry off and only flow logs differ.
//
//   node --import tsx bench/flow-logs.ts [--rounds 4] [--seconds 3] [--concurrency 4] [--rate N]
//        [--time-wait 1] [--telemetry-interval 1]
//
// --time-wait 120 (the kernel's default) shows what the kernel's collector
// does on a table of long timeouts: it runs less often and destroys more at once.
import { metricsOf } from "../lab/gateway-health.js";
import { runInit, describeInit, startGateway } from "../lab/gateway-pod.js";
import type { GatewayProcess } from "../lab/gateway-process.js";
import type { NamespaceHttpClient } from "../lab/namespace-http.js";
import { ADDR, buildPodLab, type PodLab } from "../lab/pod-lab.js";
import { sweepCrashedRuns } from "../lab/sweep.js";
import { countFlows, dropsSince, netlinkDrops, quietFlows, stopGateway } from "./support/flow-lines.js";
import { cpuSeconds, cpuSecondsWithChildren } from "./support/proc.js";
import { fixed, integerFlags, loadLine, median, table } from "./support/report.js";

const flags = integerFlags({
  rounds: 4,
  seconds: 3,
  concurrency: 4,
  rate: 0,
  "time-wait": 1,
  "telemetry-interval": 0,
});
const telemetryOn = flags["telemetry-interval"] > 0;
// Paced connections each wait for their exchange; this many may be in flight.
const PACED_IN_FLIGHT = 256;
const CONN_PORT = 7000;
const IPERF_PORT = 5201;
const METRICS = "http://127.0.0.1:8080/metrics";
type Side = "off" | "on";

// TIME_WAIT, then up to a minute until the kernel's collector next runs.
const DESTROY_WAIT_MS = flags["time-wait"] * 1000 + 70_000;

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

interface Connections {
  readonly made: number;
  /** A connect that failed still made (and destroyed) a conntrack entry. */
  readonly attempts: number;
  /** Paced starts skipped because all in-flight slots were busy. */
  readonly behind: number;
  readonly perSecond: number;
}

async function connections(pod: PodLab): Promise<Connections> {
  const paced = flags.rate > 0;
  const run = await pod.lab.run(
    pod.client,
    "taskset",
    [
      ...["-c", "0", process.execPath, "--import", "tsx", "lab/conn-rate.ts", "client"],
      ...["--host", ADDR.external.v4, "--port", String(CONN_PORT), "--seconds", String(flags.seconds)],
      ...["--concurrency", String(paced ? PACED_IN_FLIGHT : flags.concurrency)],
      ...(paced ? ["--rate", String(flags.rate)] : []),
    ],
    { timeoutMs: flags.seconds * 1000 + 60_000 },
  );
  if (run.code !== 0) throw new Error(`conn-rate failed: ${run.stderr}`);
  const report = JSON.parse(run.stdout.trim().split("\n").at(-1)!) as {
    connections: number;
    errors: number;
    behind?: number;
    perSecond: number;
  };
  return {
    made: report.connections,
    attempts: report.connections + report.errors,
    behind: report.behind ?? 0,
    perSecond: report.perSecond,
  };
}

async function iperf(pod: PodLab): Promise<number> {
  const run = await pod.lab.run(
    pod.client,
    "taskset",
    [
      ...["-c", "0", "iperf3", "-c", ADDR.external.v4, "-p", String(IPERF_PORT)],
      ...["-t", String(flags.seconds), "-O", "1", "-J"],
    ],
    { timeoutMs: flags.seconds * 1000 + 60_000 },
  );
  const bps = (JSON.parse(run.stdout || "{}") as { end?: { sum_received?: { bits_per_second?: number } } })
    .end?.sum_received?.bits_per_second;
  if (bps === undefined) throw new Error(`iperf3 failed: ${run.stderr}`);
  return bps / 1e9;
}

interface OnRound {
  readonly attempts: number;
  readonly logged: number;
  /** Lost and counted by the gateway (kernel_buffer, rate_limit, unparsable). */
  readonly counted: number;
  readonly lossShare: number;
  /** CPU seconds of the gateway and its listeners in the round's window. */
  readonly cpu: number;
}

async function main(): Promise<number> {
  const what = telemetryOn ? `FLOW_LOGS and TELEMETRY_INTERVAL=${flags["telemetry-interval"]}s` : "FLOW_LOGS";
  const load =
    flags.rate > 0 ? `paced at ${flags.rate} conn/s` : `${flags.concurrency} connections at a time`;
  console.log(
    `flow-logs: gateway with ${what} off vs on, ${flags.rounds} rounds of ${flags.seconds} s, ${load}`,
  );
  console.log(loadLine());
  sweepCrashedRuns();
  const pod = buildPodLab("fb");
  let gateway: GatewayProcess | undefined;
  try {
    const init = await runInit(pod, { DATAPLANE: "nftables" });
    if (init.code !== 0) throw new Error(`init failed: ${describeInit(init)}`);
    pod.gateway.sysctl("net.netfilter.nf_conntrack_tcp_timeout_time_wait", String(flags["time-wait"]));
    // The server closes first, so each connection leaves a TIME_WAIT socket
    // there for 60 s; after one round of ~9,000 the gateway's random SNAT ports
    // meet them and SYNs wait for retransmits (3,000 conn/s fell to 230 in the
    // next round). No TIME_WAIT on the server: every round starts alike.
    pod.external.sysctl("net.ipv4.tcp_max_tw_buckets", "0");
    pod.routeClientViaGateway(true);
    await pod.lab.startProgram(pod.external, "conn-rate.ts", [
      ...["server", "--host", ADDR.external.v4, "--port", String(CONN_PORT)],
    ]);
    pod.lab.spawn(pod.external, "taskset", [
      ...["-c", "1", "iperf3", "-s", "-B", ADDR.external.v4, "-p", String(IPERF_PORT)],
    ]);
    const http: NamespaceHttpClient = await pod.httpClient(pod.gateway);
    await new Promise((resolve) => setTimeout(resolve, 500));

    const cps: Record<Side, number[]> = { off: [], on: [] };
    const gbps: Record<Side, number[]> = { off: [], on: [] };
    const on: OnRound[] = [];
    const offCpu: number[] = [];
    for (let round = 0; round < flags.rounds; round++) {
      for (const side of (round % 2 === 0 ? ["off", "on"] : ["on", "off"]) as Side[]) {
        gateway = startGateway(pod, {
          HEALTH_PORT: "8080",
          HEALTH_LISTEN_ADDRESS: "127.0.0.1",
          FLOW_LOGS: side === "on" ? "true" : "false",
          FLOW_LOGS_RATE: "0",
          TELEMETRY_INTERVAL: side === "on" && telemetryOn ? `${flags["telemetry-interval"]}s` : "0s",
          DRAIN_TIMEOUT: "0s",
        });
        await gateway.waitForLog((l) => l.msg === "gateway started", 15_000);
        await new Promise((resolve) => setTimeout(resolve, 500));
        const pid = gateway.child.pid!;
        const linesBefore = gateway.logs.length;
        const netlinkBefore = netlinkDrops(pod);
        const cpuBefore = cpuSecondsWithChildren(pid);
        const nodeCpuBefore = cpuSeconds(pid);
        const made = await connections(pod);
        // The last entries expire 1 s after their close, and their DESTROY comes
        // when the kernel's collector next runs. Until the table holds none of
        // them, unlogged is not lost. On both sides, so that no round's entries
        // are destroyed, and logged, in the next.
        const expiredIn = await allDestroyed(pod);
        await quietFlows(gateway);
        const cpu = cpuSecondsWithChildren(pid) - cpuBefore;
        const nodeCpu = cpuSeconds(pid) - nodeCpuBefore;
        const rate = `${fixed(made.perSecond, 0)} conn/s${made.behind > 0 ? ` (${made.behind} starts behind)` : ""}`;
        let detail = `gateway CPU ${fixed(cpu, 2)} s`;
        if (side === "on") {
          const flows = countFlows(gateway, linesBefore, ADDR.client.v4, {
            address: ADDR.external.v4,
            port: CONN_PORT,
          });
          const metrics = await metricsOf(http, METRICS);
          const counter = (key: string): number => metrics.get(key) ?? NaN;
          const lossShare = (made.attempts - flows.ours) / made.attempts;
          const drops = netlinkDrops(pod);
          const counted = ["kernel_buffer", "rate_limit", "unparsable"]
            .map((reason) => counter(`egress_gateway_flow_logs_dropped_total{reason="${reason}"}`))
            .reduce((sum, n) => sum + n, 0);
          on.push({
            attempts: made.attempts,
            logged: flows.ours,
            counted,
            lossShare,
            cpu,
          });
          detail =
            `${made.attempts} attempts (${made.made} made), logged ${flows.ours} (lost ${fixed(lossShare * 100, 2)} %; ` +
            `${flows.duplicates} duplicates, ${flows.others} other flows), table empty after ${fixed(expiredIn / 1000, 1)} s; ` +
            `gateway counted ${counter('egress_gateway_flow_logs_dropped_total{reason="kernel_buffer"}')} dropped by the kernel, ` +
            `overflows ${counter("egress_gateway_flow_log_event_overflows_total")}, ` +
            `kernel drops: DESTROY ${dropsSince(drops.destroy, netlinkBefore.destroy)}, ` +
            `close listeners ${dropsSince(drops.other, netlinkBefore.other)}, ` +
            `rate-limit drops ${counter('egress_gateway_flow_logs_dropped_total{reason="rate_limit"}')}, ` +
            `unparsable ${counter('egress_gateway_flow_logs_dropped_total{reason="unparsable"}')}, ` +
            `listener restarts ${counter("egress_gateway_flow_log_listener_restarts_total")}; ` +
            `CPU gateway+listeners ${fixed(cpu, 2)} s (gateway ${fixed(nodeCpu, 2)} s)`;
        }
        if (side === "off") offCpu.push(cpu);
        cps[side].push(made.perSecond);
        gbps[side].push(await iperf(pod));
        console.log(
          `   round ${round + 1} ${side.padEnd(3)} ${rate}, ${fixed(gbps[side].at(-1)!, 2)} Gbit/s, ${detail}`,
        );
        await stopGateway(gateway);
        gateway = undefined;
      }
    }
    const ratios = (values: Record<Side, number[]>): number[] => values.on.map((v, i) => v / values.off[i]!);
    const spread = (values: number[], digits: number): string =>
      `${fixed(median(values), digits)} (${fixed(Math.min(...values), digits)}-${fixed(Math.max(...values), digits)})`;
    const attempts = on.reduce((sum, r) => sum + r.attempts, 0);
    const logged = on.reduce((sum, r) => sum + r.logged, 0);
    const counted = on.reduce((sum, r) => sum + r.counted, 0);
    console.log("\nmedian (min-max) over the rounds");
    console.log(
      table([
        ["", "value", "target"],
        ["new connections/s, off", spread(cps.off, 0), ""],
        ["new connections/s, on", spread(cps.on, 0), ""],
        ["new connections/s, on / off", spread(ratios(cps), 2), ">= 0.95"],
        ["throughput, on / off", spread(ratios(gbps), 2), ">= 0.95"],
        [
          "connections not logged (on)",
          `${spread(
            on.map((r) => r.lossShare * 100),
            2,
          )} %; ${attempts - logged} of ${attempts} in all`,
          "0",
        ],
        // The pod's own connections may be among the gateway's count: a few more is fine.
        [
          "not logged and not counted by the gateway (on)",
          String(Math.max(0, attempts - logged - counted)),
          "0",
        ],
        [
          "CPU per 1,000 finished connections/s (gateway + listeners, over off)",
          spread(
            // Per finished connection, over what the same gateway without flow
            // logs used in the same round (probes, integrity checks): the
            // listeners and the gateway handle each connection, logged or not.
            on.map((r, i) => ((r.cpu - offCpu[i]!) / r.attempts) * 1000 * 100),
            1,
          ) + " % of a core",
          "",
        ],
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
