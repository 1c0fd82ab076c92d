// The health port under abuse, at full size: kubelet's fresh-connection
// `GET /readiness` (1 s timeout, every 100 ms) while an attacker from another
// address holds 4,000 idle and 200 slowloris connections and floods junk
// (16 KiB header lines, 1 MiB POST bodies, malformed request lines, unknown
// paths, 5,000 pipelined requests on one socket). Each run first polls without
// the attack (the baseline, same gateway process), then under it, then reads
// the gateway's open fds and RSS once the attacker is gone (RSS once V8's
// memory reducer has given the attack's heap back: at most 60 s).
//
// Two open-files limits, alternating run by run:
//   soft 1024 / hard 524288  a common container runtime default (Node raises the soft limit;
//                            hard 524288 needs CAP_SYS_RESOURCE, see CASES)
//   hard 1024                a limit the gateway cannot raise
// Loopback only: kubelet from 127.0.0.1, the attacker from 127.0.0.2.
// The gateway, the attacker and kubelet (this process) run at nice -10
// (--nice N for -N), all alike, standing in for the CPU their pods' requests
// reserve on a node: the lab machine is shared with unrelated work.
//
//   npm run build && node --import tsx bench/health-abuse.ts [--runs 3] [--seconds 20] [--idle 4000]
//     [--slowloris 200] [--workers 4] [--pipelined 5000] [--baseline 10] [--nice 10]
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { abuseRun, type AbuseRunResult } from "../lab/health-abuse-run.js";
import { probeOnce } from "../lab/kubelet-poller.js";
import { ensureBuilt, freePort, startGatewayProcess } from "../lab/gateway-process.js";
import { waitForComm } from "./support/proc.js";
import {
  cleanupOnSignal,
  fixed,
  integerFlags,
  loadLine,
  mebibytes,
  median,
  percent,
  table,
  verdict,
} from "./support/report.js";

const flags = integerFlags({
  runs: 3,
  seconds: 20,
  baseline: 10,
  ramp: 3,
  idle: 4000,
  slowloris: 200,
  workers: 4,
  pipelined: 5000,
  nice: 10,
});

// Raising a hard limit needs CAP_SYS_RESOURCE; without it (as on these lab
// machines, hard 20000) the first case keeps this process's hard limit, which
// Node raises to just the same: the bound is HEALTH_MAX_CONNECTIONS either way.
const HARD = /^Max open files\s+\S+\s+(\d+)/m.exec(readFileSync("/proc/self/limits", "utf8"))?.[1] ?? "?";
const CASES = [
  { name: `soft 1024 / hard ${HARD}`, nofile: "1024:", answered: 0.99, p99: true },
  { name: "hard 1024", nofile: "1024:1024", answered: 0.9, p99: false },
] as const;
const P99_TARGET_MS = 100;
const RSS_GROWTH_TARGET = 60 * 2 ** 20;
const SETTLE_TIMEOUT_MS = 20_000;
// RSS is read once back within 16 MiB of the start, or 60 s after the attack:
// V8's memory reducer gives back the attack's heap 5-25 s after it stops.
const RSS_SETTLE_TIMEOUT_MS = 60_000;
const RSS_SETTLED_BYTES = 16 * 2 ** 20;

interface Run {
  readonly result: AbuseRunResult;
  readonly shed: string;
}

async function oneRun(nofile: string): Promise<Run> {
  const port = await freePort();
  const gateway = startGatewayProcess(
    {
      HEALTH_PORT: String(port),
      HEALTH_LISTEN_ADDRESS: "127.0.0.1",
      LOG_SEVERITY: "warn",
      DRAIN_TIMEOUT: "0s",
    },
    { wrapper: ["prlimit", `--nofile=${nofile}`, "--"] },
  );
  const stop = cleanupOnSignal(() => gateway.child.kill("SIGKILL"));
  try {
    const pid = gateway.child.pid!;
    await waitForComm(pid, "node");
    for (let i = 0; ; i++) {
      if ("ms" in (await probeOnce({ host: "127.0.0.1", port }))) break;
      if (i > 100) throw new Error(`gateway not serving:\n${gateway.dump()}`);
      await sleep(50);
    }
    const result = await abuseRun({
      host: "127.0.0.1",
      port,
      pid,
      kubeletSource: "127.0.0.1",
      attack: {
        sourceAddress: "127.0.0.2",
        idle: flags.idle,
        slowloris: flags.slowloris,
        floodWorkers: flags.workers,
        pipelined: flags.pipelined,
      },
      holding: Math.min(flags.idle, 500),
      nice: -flags.nice,
      baselineMs: flags.baseline * 1000,
      rampMs: flags.ramp * 1000,
      attackMs: flags.seconds * 1000,
      settleTimeoutMs: SETTLE_TIMEOUT_MS,
      rssSettleTimeoutMs: RSS_SETTLE_TIMEOUT_MS,
      rssSettledBytes: RSS_SETTLED_BYTES,
    });
    let shed = "gateway dead";
    if (result.alive) {
      const metrics = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text());
      shed = [...metrics.matchAll(/^egress_gateway_health_connections_shed_total\{reason="(\w+)"\} (\d+)$/gm)]
        .filter((m) => m[2] !== "0")
        .map((m) => `${m[1]} ${m[2]}`)
        .join(", ");
    }
    if (gateway.logs.length > 0 || gateway.stderr.length > 0) {
      console.log(`  gateway output:\n${gateway.dump().split("\n").slice(0, 10).join("\n")}`);
    }
    return { result, shed };
  } finally {
    stop();
    await gateway.kill();
  }
}

function runRow(label: string, r: AbuseRunResult): string[] {
  return [
    label,
    percent(r.baseline.answeredShare),
    fixed(r.baseline.p99Ms, 1),
    percent(r.attacked.answeredShare),
    fixed(r.attacked.p50Ms, 1),
    fixed(r.attacked.p99Ms, 1),
    percent(r.attackCoreShare),
    String(r.attacker.heldPeak),
    `${r.fdsBefore}/${r.fdsPeak}/${r.fdsAfter}`,
    `${r.socketsBefore}/${r.socketsAfter}`,
    fixed(r.settleMs / 1000, 1),
    mebibytes(r.rssAtStopBytes - r.rssBeforeBytes),
    `${mebibytes(r.rssAfterBytes - r.rssBeforeBytes)} @${fixed(r.rssSettleMs / 1000, 0)} s`,
    mebibytes(r.rssPeakBytes),
    r.alive ? "yes" : "NO",
  ];
}

const spread = (values: readonly number[], digits: number, unit = ""): string =>
  `${fixed(median(values), digits)}${unit} (${fixed(Math.min(...values), digits)}..${fixed(Math.max(...values), digits)})`;

async function main(): Promise<void> {
  ensureBuilt();
  console.log(
    `health port under abuse: ${flags.idle} idle + ${flags.slowloris} slowloris connections, ` +
      `${flags.workers} junk senders (${flags.pipelined} pipelined); kubelet every 100 ms, 1 s timeout; ` +
      `${flags.baseline} s baseline, ${flags.ramp} s ramp, ${flags.seconds} s under attack; ${flags.runs} runs per case; ` +
      `nice -${flags.nice}`,
  );
  const runs = new Map<string, Run[]>(CASES.map((c) => [c.name, []]));
  for (let i = 0; i < flags.runs; i++) {
    for (const c of i % 2 === 0 ? CASES : [...CASES].reverse()) {
      const run = await oneRun(c.nofile);
      runs.get(c.name)!.push(run);
      const r = run.result;
      console.log(
        `run ${i + 1} ${c.name}: kubelet ${percent(r.attacked.answeredShare)} answered, p99 ${fixed(r.attacked.p99Ms, 1)} ms` +
          ` (${r.attacked.failures || "no failures"}); shed: ${run.shed}; ${loadLine()}`,
      );
    }
  }
  const header = [
    "case / run",
    "base ans",
    "base p99",
    "attack ans",
    "p50 ms",
    "p99 ms",
    "gw CPU",
    "attacker held",
    "fds before/peak/after",
    "sockets before/after",
    "settle s",
    "RSS +at stop",
    "RSS growth",
    "RSS peak",
    "alive",
  ];
  const rows = [header];
  for (const c of CASES) {
    runs.get(c.name)!.forEach((run, i) => rows.push(runRow(`${c.name} #${i + 1}`, run.result)));
  }
  console.log(`\n${table(rows)}`);

  console.log("\nmedian (min..max) per case, and targets");
  const targets = [["case", "measure", "value", "target", "verdict"]];
  for (const c of CASES) {
    const results = runs.get(c.name)!.map((r) => r.result);
    const answered = results.map((r) => r.attacked.answeredShare * 100);
    const p99 = results.map((r) => r.attacked.p99Ms);
    const growth = results.map((r) => (r.rssAfterBytes - r.rssBeforeBytes) / 2 ** 20);
    const baseline = results.map((r) => r.baseline.answeredShare * 100);
    targets.push(
      [c.name, "kubelet answered, no attack", spread(baseline, 2, " %"), "(baseline)", "-"],
      [
        c.name,
        "kubelet answered",
        spread(answered, 2, " %"),
        `>= ${c.answered * 100} %`,
        verdict(median(answered) >= c.answered * 100),
      ],
      [
        c.name,
        "kubelet p99",
        spread(p99, 1, " ms"),
        c.p99 ? `< ${P99_TARGET_MS} ms` : "(none)",
        c.p99 ? verdict(median(p99) < P99_TARGET_MS) : "-",
      ],
      [
        c.name,
        "sockets after - before",
        spread(
          results.map((r) => r.socketsAfter - r.socketsBefore),
          0,
        ),
        "<= 0",
        verdict(results.every((r) => r.socketsAfter <= r.socketsBefore)),
      ],
      [
        c.name,
        "RSS growth",
        spread(growth, 1, " MiB"),
        "< 60 MB",
        verdict(results.every((r) => r.rssAfterBytes - r.rssBeforeBytes < RSS_GROWTH_TARGET)),
      ],
      [
        c.name,
        "alive",
        results.every((r) => r.alive) ? "all runs" : "NOT ALL",
        "alive",
        verdict(results.every((r) => r.alive)),
      ],
    );
  }
  console.log(table(targets));
}

main().catch((error: unknown) => {
  console.error(`health-abuse benchmark failed: ${error instanceof Error ? error.stack : String(error)}`);
  process.exitCode = 1;
});
