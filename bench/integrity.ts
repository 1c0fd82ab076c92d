// Data plane integrity (src/integrity) through the built gateway in a lab pod
// after init-gateway.sh: how long each drift lasts until it is repaired or
// /readiness is 503 (and 200 again after the fix), with the drift injected at
// a random moment of the check cycle; and what the watch costs in CPU (the
// gateway and the tools it runs) against the same gateway with the check off,
// in alternating rounds.
//
//   node --import tsx bench/integrity.ts [--runs 5] [--window 30] [--rounds 2]
import { setTimeout as sleep } from "node:timers/promises";
import { awaitReadiness } from "../lab/gateway-health.js";
import { GATEWAY_POD_IPS, runInit, startGateway } from "../lab/gateway-pod.js";
import type { NamespaceHttpClient } from "../lab/namespace-http.js";
import { ADDR, buildPodLab, type PodLab } from "../lab/pod-lab.js";
import { ensureBuilt, type GatewayProcess } from "../lab/gateway-process.js";
import { cpuSecondsWithChildren } from "./support/proc.js";
import { cleanupOnSignal, fixed, integerFlags, loadLine, median, table } from "./support/report.js";

const flags = integerFlags({ runs: 5, window: 30, rounds: 2 });
const INTERVAL_MS = 5_000; // the default DATAPLANE_CHECK_INTERVAL
const READINESS = `http://${ADDR.gateway.v4}:8080/readiness`;
const WANT_MAC = "a2:2a:c6:33:64:02";

const ok = (run: () => unknown): boolean => {
  try {
    run();
    return true;
  } catch {
    return false;
  }
};

async function msUntil(holds: () => boolean, limitMs = 30_000): Promise<number> {
  const start = performance.now();
  while (!holds()) {
    if (performance.now() - start > limitMs) throw new Error(`not within ${limitMs} ms`);
    await sleep(20);
  }
  return performance.now() - start;
}

interface Drift {
  readonly name: string;
  readonly inject: (pod: PodLab) => void;
  /** A repaired drift: the kernel state that says it is back. */
  readonly back?: (pod: PodLab) => boolean;
  /** A reported drift: how to put it right by hand. */
  readonly fix?: (pod: PodLab) => void;
}

const nft = (pod: PodLab, ...args: string[]): string => pod.gateway.exec("nft", args);
const macOf = (pod: PodLab): string => {
  try {
    return (JSON.parse(pod.gateway.ip("-j", "link", "show", "dev", "vxlan0")) as { address: string }[])[0]!
      .address;
  } catch {
    return "";
  }
};

const DRIFTS: readonly Drift[] = [
  {
    name: "nft table deleted",
    inject: (pod) => nft(pod, "delete", "table", "inet", "egress_gateway"),
    back: (pod) => ok(() => nft(pod, "list", "table", "inet", "egress_gateway")),
  },
  {
    name: "SNAT chain flushed",
    inject: (pod) => nft(pod, "flush", "chain", "inet", "egress_gateway", "postrouting"),
    back: (pod) => nft(pod, "list", "chain", "inet", "egress_gateway", "postrouting").includes("snat ip to"),
  },
  {
    name: "vxlan0 deleted",
    inject: (pod) => pod.gateway.ip("link", "del", "vxlan0"),
    back: (pod) => macOf(pod) === WANT_MAC,
  },
  {
    name: "vxlan0 MAC changed",
    inject: (pod) => pod.gateway.ip("link", "set", "vxlan0", "address", "a2:2a:00:00:00:01"),
    back: (pod) => macOf(pod) === WANT_MAC,
  },
  {
    name: "ip_forward=0",
    inject: (pod) => pod.gateway.sysctl("net.ipv4.ip_forward", "0"),
    fix: (pod) => pod.gateway.sysctl("net.ipv4.ip_forward", "1"),
  },
  {
    name: "send_redirects=1 (eth0)",
    inject: (pod) => pod.gateway.sysctl("net.ipv4.conf.eth0.send_redirects", "1"),
    fix: (pod) => pod.gateway.sysctl("net.ipv4.conf.eth0.send_redirects", "0"),
  },
];

function gatewayIn(pod: PodLab, intervalEnv: string): GatewayProcess {
  return startGateway(pod, {
    HEALTH_PORT: "8080",
    EGRESS_POD_IPS: GATEWAY_POD_IPS,
    LOG_SEVERITY: "warn",
    DRAIN_TIMEOUT: "0s",
    DATAPLANE_CHECK_INTERVAL: intervalEnv,
  });
}

async function ready(client: NamespaceHttpClient, status: number, limitMs = 30_000): Promise<void> {
  const { matched, answer } = await awaitReadiness(client, READINESS, (a) => a.status === status, limitMs);
  if (!matched) throw new Error(`/readiness not ${status}: ${answer.body}`);
}

async function timings(pod: PodLab): Promise<string[][]> {
  const gateway = gatewayIn(pod, `${INTERVAL_MS / 1000}s`);
  const client = await pod.httpClient(pod.gateway);
  await ready(client, 200);
  const rows = [["drift", "runs", "median ms", "min ms", "max ms", "after fix: median", "min", "max"]];
  for (const drift of DRIFTS) {
    const detect: number[] = [];
    const recover: number[] = [];
    for (let run = 0; run < flags.runs; run++) {
      await sleep(Math.random() * INTERVAL_MS); // anywhere in the check cycle
      drift.inject(pod);
      const start = performance.now();
      if (drift.back) {
        detect.push(await msUntil(() => drift.back!(pod)));
      } else {
        await ready(client, 503);
        detect.push(performance.now() - start);
        drift.fix!(pod);
        const fixed = performance.now();
        await ready(client, 200);
        recover.push(performance.now() - fixed);
      }
      await ready(client, 200);
    }
    const stats = (v: number[]): string[] =>
      v.length === 0
        ? ["-", "-", "-"]
        : [fixed(median(v), 0), fixed(Math.min(...v), 0), fixed(Math.max(...v), 0)];
    rows.push([drift.name, String(flags.runs), ...stats(detect), ...stats(recover)]);
  }
  await gateway.kill();
  return rows;
}

async function cpuCost(pod: PodLab): Promise<string[][]> {
  const sides = { on: [] as number[], off: [] as number[] };
  for (let round = 0; round < flags.rounds; round++) {
    for (const side of ["on", "off"] as const) {
      const gateway = gatewayIn(pod, side === "on" ? `${INTERVAL_MS / 1000}s` : "0s");
      const client = await pod.httpClient(pod.gateway);
      await ready(client, 200);
      await sleep(2_000); // start-up done
      const pid = gateway.child.pid!;
      const before = cpuSecondsWithChildren(pid);
      await sleep(flags.window * 1000);
      sides[side].push(((cpuSecondsWithChildren(pid) - before) / flags.window) * 60_000); // ms per minute
      await gateway.kill();
    }
  }
  const checksPerMinute = 60_000 / INTERVAL_MS;
  const extra = sides.on.map((on, i) => on - sides.off[i]!);
  return [
    ["side", "rounds", "CPU ms per minute (median)", "min", "max"],
    ...(["on", "off"] as const).map((side) => [
      side === "on" ? `check every ${INTERVAL_MS / 1000}s` : "check off (baseline)",
      String(flags.rounds),
      fixed(median(sides[side]), 0),
      fixed(Math.min(...sides[side]), 0),
      fixed(Math.max(...sides[side]), 0),
    ]),
    [
      "cost of the watch",
      String(flags.rounds),
      fixed(median(extra), 0),
      `${fixed(median(extra) / checksPerMinute, 1)} ms per round`,
      `${fixed((median(extra) / 60_000) * 100, 2)} % of a core`,
    ],
  ];
}

async function main(): Promise<void> {
  ensureBuilt();
  const pod = buildPodLab("integbench");
  const cleanup = cleanupOnSignal(() => pod.destroy());
  try {
    const init = await runInit(pod, { DATAPLANE: "nftables" });
    if (init.code !== 0) throw new Error(`init failed: ${init.stderr}`);
    console.log(
      `data plane integrity, nftables, check every ${INTERVAL_MS / 1000}s (the default); ${loadLine()}`,
    );
    console.log("\ndrift until repaired (kernel back) or /readiness 503; reported drifts: fix until 200\n");
    console.log(table(await timings(pod)));
    console.log(
      `\nCPU of the gateway, the tools it ran and its live helpers (monitors), ${flags.window} s windows, alternating\n`,
    );
    console.log(table(await cpuCost(pod)));
    console.log(`\n${loadLine()}`);
  } finally {
    cleanup();
  }
}

await main();
