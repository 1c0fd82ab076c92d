// ICMP probing cost at scale: the gateway pinging 1,000 lab hosts once a second,
// against a plain one-Session net-ping script and fping doing the same work in
// the same namespace, one after the other in one run. All traffic stays between
// two namespaces this run creates (gateway <-veth-> hosts); nothing leaves them.
//
//   node --import tsx bench/icmp-targets.ts [--seconds 60] [--targets 1000] [--warmup 5]
import { type ChildProcess } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { ensureBuilt } from "../lab/gateway-process.js";
import { ipBatch, Lab, type Namespace } from "../lab/netns.js";
import {
  exitOf,
  fpingContender,
  fpingInstalled,
  gatewayContender,
  netPingContender,
  type Contender,
  type ProberCounts,
  type ProbeSettings,
} from "./support/icmp-contenders.js";
import { peakRssBytes, rssBytes, startCpuWindow, waitForComm } from "./support/proc.js";
import {
  cleanupOnSignal,
  fixed,
  integerFlags,
  loadLine,
  mebibytes,
  percent,
  table,
  verdict,
} from "./support/report.js";

const flags = integerFlags({ seconds: 60, targets: 1000, warmup: 5 });
const INTERVAL_MS = 1_000; // 1 s, ICMP_PROBE_INTERVAL
const TIMEOUT_MS = 3_000; // 3 s, ICMP_PROBE_TIMEOUT
const CPU_TARGET = 0.1; // share of one core (issue)
const RSS_TARGET_BYTES = 120e6; // 120 MB, the stricter reading (114.4 MiB) (issue)
const CPU_GOAL = 0.075; // share of one core (project goal)
const RSS_GOAL_BYTES = 80e6; // 80 MB (76.3 MiB) (project goal)
const GATEWAY_IP = "198.51.100.1";
const HOSTS_IP = "198.51.100.2";
const HEALTH_PORT = 9090; // inside the gateway namespace only
const MAX_TARGETS = 512 * 250; // 198.18.0.0/15, .1 to .250 of every /24

interface Measurement {
  readonly name: string;
  readonly coreShare: number;
  readonly systemShare: number;
  readonly wakeupsPerSecond: number;
  readonly maxSecondShare: number;
  readonly peakRss: number;
  readonly rssAtStart: number;
  readonly rssAtEnd: number;
  readonly echoRequestsPerSecond: number;
  readonly echoRepliesPerSecond: number;
  readonly proberOkPerSecond: number | undefined;
  readonly proberFailedPerSecond: number | undefined;
  readonly note: string;
}

function targetAddresses(n: number): string[] {
  return Array.from({ length: n }, (_, i) => {
    const block = Math.floor(i / 250);
    return `198.${18 + (block >> 8)}.${block & 255}.${(i % 250) + 1}`;
  });
}

function buildLab(lab: Lab, targets: readonly string[]): { gateway: Namespace; hosts: Namespace } {
  const gateway = lab.ns("gw");
  const hosts = lab.ns("hosts");
  lab.link(gateway, "eth0", hosts, "eth0");
  ipBatch([`address add ${GATEWAY_IP}/30 dev eth0`, `route add 198.18.0.0/15 via ${HOSTS_IP}`], gateway);
  ipBatch(
    [`address add ${HOSTS_IP}/30 dev eth0`, ...targets.map((t) => `address add ${t}/32 dev lo`)],
    hosts,
  );
  // Counters at both ends, independent of what the probers say about themselves.
  hosts.exec("nft", ["-f", "-"], nftCounter("echo_requests", "icmp type echo-request"));
  gateway.exec("nft", ["-f", "-"], nftCounter("echo_replies", "icmp type echo-reply"));
  return { gateway, hosts };
}

function nftCounter(name: string, match: string): string {
  return `table ip bench {
  counter ${name} {}
  chain input { type filter hook input priority 0; policy accept; ${match} counter name "${name}"; }
}
`;
}

function readCounter(ns: Namespace, name: string): number {
  const listing = ns.exec("nft", ["list", "counter", "ip", "bench", name]);
  const match = /packets (\d+)/.exec(listing);
  if (!match) throw new Error(`cannot read nft counter ${name} in ${ns.name}:\n${listing}`);
  return Number(match[1]);
}

/** The program's own counts, stamped with the middle of the time it took to ask. */
async function timedCounts(contender: Contender): Promise<(ProberCounts & { atMs: number }) | undefined> {
  if (!contender.counts) return undefined;
  const asked = performance.now();
  const counts = await contender.counts();
  return { ...counts, atMs: (asked + performance.now()) / 2 };
}

function ownRate(
  from: ProberCounts & { atMs: number },
  to: ProberCounts & { atMs: number },
  key: keyof ProberCounts,
): number {
  return ((to[key] - from[key]) * 1000) / (to.atMs - from.atMs);
}

async function measure(
  contender: Contender,
  ns: { gateway: Namespace; hosts: Namespace },
  onChild: (child: ChildProcess | undefined) => void,
): Promise<Measurement> {
  console.log(`\n== ${contender.name}: ${flags.warmup} s warm-up, ${flags.seconds} s measured`);
  const child = contender.launch();
  onChild(child);
  try {
    const pid = child.pid!;
    await waitForComm(pid, contender.comm, 10_000);
    await sleep(flags.warmup * 1000);
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${contender.name} exited during warm-up (${child.exitCode ?? child.signalCode})`);
    }
    const own0 = await timedCounts(contender);
    const requests0 = readCounter(ns.hosts, "echo_requests");
    const replies0 = readCounter(ns.gateway, "echo_replies");
    const rssAtStart = rssBytes(pid);
    const window = startCpuWindow(pid);
    let maxSecondShare = 0;
    for (let s = 0; s < flags.seconds; s++) {
      const second = startCpuWindow(pid);
      await sleep(1000);
      maxSecondShare = Math.max(maxSecondShare, second().coreShare);
    }
    const cpu = window();
    console.log(`  ${loadLine()}`);
    const requests = readCounter(ns.hosts, "echo_requests") - requests0;
    const replies = readCounter(ns.gateway, "echo_replies") - replies0;
    const peakRss = peakRssBytes(pid);
    const rssAtEnd = rssBytes(pid);
    const own1 = await timedCounts(contender);
    const note = await contender.finish();
    console.log(`  ${note}`);
    const perSecond = (n: number): number => n / cpu.wallSeconds;
    return {
      name: contender.name,
      coreShare: cpu.coreShare,
      systemShare: cpu.systemShare,
      wakeupsPerSecond: cpu.wakeupsPerSecond,
      maxSecondShare,
      peakRss,
      rssAtStart,
      rssAtEnd,
      echoRequestsPerSecond: perSecond(requests),
      echoRepliesPerSecond: perSecond(replies),
      proberOkPerSecond: own0 && own1 ? ownRate(own0, own1, "ok") : undefined,
      proberFailedPerSecond: own0 && own1 ? ownRate(own0, own1, "failed") : undefined,
      note,
    };
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await exitOf(child);
    onChild(undefined);
  }
}

function report(results: readonly Measurement[], setupMs: number): void {
  const expected = (flags.targets * 1000) / INTERVAL_MS;
  const gateway = results.find((m) => m.name === "gateway");
  const baselines = results.filter((m) => m !== gateway);
  console.log(
    `\n${flags.targets} targets, interval ${INTERVAL_MS} ms, timeout ${TIMEOUT_MS} ms, ` +
      `${flags.seconds} s measured after ${flags.warmup} s warm-up; lab built in ${fixed(setupMs, 0)} ms`,
  );
  const optional = (n: number | undefined): string => (n === undefined ? "-" : fixed(n, 1));
  console.log(
    table([
      [
        "program",
        "CPU (1 core)",
        "of it kernel",
        "worst 1 s",
        "wakeups/s",
        "peak RSS",
        "RSS start->end",
        "echo req/s",
        "replies/s",
        "own ok/s",
        "own fail/s",
      ],
      ...results.map((m) => [
        m.name,
        percent(m.coreShare),
        percent(m.systemShare),
        percent(m.maxSecondShare),
        fixed(m.wakeupsPerSecond, 0),
        mebibytes(m.peakRss),
        `${mebibytes(m.rssAtStart)} -> ${mebibytes(m.rssAtEnd)}`,
        fixed(m.echoRequestsPerSecond, 1),
        fixed(m.echoRepliesPerSecond, 1),
        optional(m.proberOkPerSecond),
        optional(m.proberFailedPerSecond),
      ]),
    ]),
  );
  console.log(`expected: ${fixed(expected, 0)} echo requests/s (targets / interval)`);
  if (!gateway) return;

  console.log("\nratios (gateway / baseline)");
  console.log(
    table([
      ["baseline", "CPU", "peak RSS", "wakeups"],
      ...baselines.map((b) => [
        b.name,
        fixed(gateway.coreShare / b.coreShare, 2),
        fixed(gateway.peakRss / b.peakRss, 2),
        fixed(gateway.wakeupsPerSecond / b.wakeupsPerSecond, 2),
      ]),
    ]),
  );
  const achieved = gateway.echoRequestsPerSecond / expected;
  console.log("\ntargets");
  console.log(
    table([
      ["measure", "value", "target", "verdict"],
      [
        "gateway CPU",
        percent(gateway.coreShare),
        `< ${percent(CPU_TARGET)} of a core (issue)`,
        verdict(gateway.coreShare < CPU_TARGET),
      ],
      [
        "gateway CPU",
        percent(gateway.coreShare),
        `< ${percent(CPU_GOAL)} of a core (project goal)`,
        verdict(gateway.coreShare < CPU_GOAL),
      ],
      [
        "gateway peak RSS",
        mebibytes(gateway.peakRss),
        `< ${mebibytes(RSS_TARGET_BYTES)} (120 MB, issue)`,
        verdict(gateway.peakRss < RSS_TARGET_BYTES),
      ],
      [
        "gateway peak RSS",
        mebibytes(gateway.peakRss),
        `< ${mebibytes(RSS_GOAL_BYTES)} (80 MB, project goal)`,
        verdict(gateway.peakRss < RSS_GOAL_BYTES),
      ],
      [
        "gateway probes/s",
        `${fixed(gateway.echoRequestsPerSecond, 1)} (${percent(achieved)})`,
        `~${fixed(expected, 0)}/s (>= 95 %)`,
        verdict(achieved >= 0.95),
      ],
      ["anchor: net-ping Session", "-", "~5.7 % of a core, ~52 MB on these machines", "-"],
    ]),
  );
}

async function main(): Promise<void> {
  if (flags.targets > MAX_TARGETS)
    throw new Error(`--targets must be at most ${MAX_TARGETS} (198.18.0.0/15)`);
  ensureBuilt();
  const lab = new Lab("bi");
  let current: ChildProcess | undefined;
  const cleanup = cleanupOnSignal(() => {
    if (current?.pid !== undefined) {
      try {
        process.kill(current.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    lab.destroy();
  });
  try {
    const targets = targetAddresses(flags.targets);
    const t0 = performance.now();
    const ns = buildLab(lab, targets);
    const setupMs = performance.now() - t0;
    const settings: ProbeSettings = {
      ns: ns.gateway,
      targets,
      intervalMs: INTERVAL_MS,
      timeoutMs: TIMEOUT_MS,
      podIp: GATEWAY_IP,
      healthPort: HEALTH_PORT,
    };
    const contenders = [gatewayContender(settings), netPingContender(settings)];
    if (fpingInstalled()) contenders.push(fpingContender(settings));
    else console.log("fping not installed: no fping baseline (apt-get install fping)");
    const results: Measurement[] = [];
    for (const contender of contenders) {
      try {
        results.push(await measure(contender, ns, (child) => (current = child)));
      } catch (error) {
        // A contender that breaks is a finding to report, not a failed setup.
        console.log(`  ${contender.name} FAILED: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    report(results, setupMs);
  } finally {
    cleanup();
  }
}

main().catch((error: unknown) => {
  console.error(
    `icmp-targets benchmark setup failed: ${error instanceof Error ? error.stack : String(error)}`,
  );
  process.exitCode = 1;
});
