// A long run of the built gateway under steady churn, to show what grows:
// 20 probe targets at 100 ms (answering, black-holed, and HTTP upstreams that
// trickle, reset or hang, all inside lab namespaces), the fake node agent
// changing 10 routes a second, and /readiness asked 50 times a second. Once a
// minute it records RSS, V8 heap, open fds, active handles and resources and
// the event-loop delay p99; at the end it prints the least-squares slopes after
// warm-up and writes the samples (.json), the report (.txt) and a chart (.svg).
//   node --import tsx bench/soak.ts [duration, default 10m] [--warmup 5m] [--churn 10] [--out bench/results/soak-<time>]
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { parseDuration } from "../src/config/duration.js";
import { FakeAgent, type AgentStream, type FakeRoute } from "../lab/fake-agent.js";
import { runInit, startGateway } from "../lab/gateway-pod.js";
import { NamespaceHttpClient } from "../lab/namespace-http.js";
import { ADDR, buildPodLab } from "../lab/pod-lab.js";
import { ROOT } from "../lab/run-lab.js";
import { median, table } from "./support/report.js";
import { rssBytes, waitForComm } from "./support/proc.js";
import { soakChart } from "./support/soak-chart.js";
import { summarize, targetText, type SoakSample } from "./support/soak-stats.js";

const { values, positionals } = parseArgs({
  options: { warmup: { type: "string" }, out: { type: "string" }, churn: { type: "string", default: "10" } },
  allowPositionals: true,
  strict: true,
});

function minutesFlag(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined;
  const parsed = parseDuration(text);
  if (!parsed.ok || parsed.ms < 60_000) {
    console.error(`soak: ${name} ${JSON.stringify(text)} is not a duration of at least 1m (e.g. 10m, 1h10m)`);
    process.exit(2);
  }
  return parsed.ms / 60_000;
}

const DURATION_MIN = minutesFlag(positionals[0] ?? "10m", "duration") ?? 10;
const WARMUP_MIN = minutesFlag(values.warmup, "--warmup") ?? Math.min(5, Math.floor(DURATION_MIN / 5));
const OUT = values.out ?? join(ROOT, "bench", "results", `soak-${new Date().toISOString().slice(0, 16)}`);

const SAMPLE_EVERY_MS = 60_000;
const READINESS_EVERY_MS = 20; // 50 a second
/** Routes added (and as many removed) a second; 0 for a baseline without churn. */
const CHURN_PER_S = Number(values.churn);
if (!Number.isInteger(CHURN_PER_S) || CHURN_PER_S < 0 || CHURN_PER_S > 1000) {
  console.error(
    `soak: --churn ${JSON.stringify(values.churn)} is not a whole number of routes a second (0..1000)`,
  );
  process.exit(2);
}
const LIVE_ROUTES = 50;
const PORT = 8080;
/** Helpers and the gateway start slowly on a loaded 2-core machine (tsx compiles each helper). */
const STARTUP_MS = 60_000;

// ICMP: six answering addresses on the external host, four black-holed at the node (dropped, no answer).
const BLACK_HOLE = { v4: "198.18.200.0/24", v6: "2001:db8:dead::/64" };
const ICMP_TARGETS = [
  ...["10", "11", "12", "13"].map((h) => `203.0.113.${h}`),
  ...["10", "11"].map((h) => `2001:db8:113::${h}`),
  ...["1", "2", "3"].map((h) => `198.18.200.${h}`),
  "2001:db8:dead::1",
];

/** The gateway's own block, and remote workload k (a /32 on node k/5, so that nodes churn too). */
const OUR_ROUTE: FakeRoute = {
  dst: `${ADDR.gateway.v4}/32`,
  types: ["localWorkload"],
  poolType: "VXLAN",
  dstNodeName: "gateway-node",
  dstNodeIp: ADDR.node.v4,
};
function remoteRoute(k: number): FakeRoute {
  const node = Math.floor(k / 5) % 4096;
  return {
    dst: `198.19.${(k >> 8) & 255}.${k & 255}/32`,
    types: ["remoteWorkload"],
    poolType: "VXLAN",
    dstNodeName: `node-${node}`,
    dstNodeIp: `198.18.${16 + (node >> 8)}.${node & 255}`,
  };
}

interface Metrics {
  readonly [name: string]: number;
}

/** Each family's value: an unlabelled sample's, or the sum over its labelled ones (handles by type). */
function parseMetrics(text: string): Metrics {
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const match = /^([a-z_0-9]+)(?:\{[^}]*\})? (\S+)$/.exec(line);
    if (match) out[match[1]!] = (out[match[1]!] ?? 0) + Number(match[2]);
  }
  return out;
}

function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** /readiness polls between two samples. */
class PollWindow {
  answered = 0;
  ok = 0;
  failed = 0;
  readonly ms: number[] = [];
  lastError = "";

  p99(): number {
    const sorted = [...this.ms].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] ?? NaN;
  }
}

async function main(): Promise<void> {
  mkdirSync(dirname(OUT), { recursive: true });
  const pod = buildPodLab("soak");
  const dir = mkdtempSync("/tmp/egt-soak-");
  let agent: FakeAgent | undefined;
  const timers: NodeJS.Timeout[] = [];
  try {
    // Lab upstreams: more answering addresses on the external host, a black hole at the node.
    for (const address of ICMP_TARGETS.slice(1, 4))
      pod.external.ip("addr", "add", `${address}/24`, "dev", "eth0");
    pod.external.ip("-6", "addr", "add", "2001:db8:113::11/64", "dev", "eth0", "nodad");
    pod.node.ip("route", "add", "blackhole", BLACK_HOLE.v4);
    pod.node.ip("-6", "route", "add", "blackhole", BLACK_HOLE.v6);
    const { ready } = await pod.lab.startProgram(
      pod.external,
      "upstream-faults.ts",
      ["--host", ADDR.external.v4, "--host", ADDR.external.v6],
      STARTUP_MS,
    );
    // One client in the node namespace (where kubelet's requests come from) for /readiness and /metrics.
    const client = await NamespaceHttpClient.start(pod.lab, pod.node, STARTUP_MS);
    const { ports } = JSON.parse(ready) as { ports: Record<"answer" | "trickle" | "reset" | "hang", number> };
    const httpUrls = (["answer", "trickle", "reset", "hang"] as const).flatMap((fault) => [
      `http://${ADDR.external.v4}:${ports[fault]}/`,
      `http://[${ADDR.external.v6}]:${ports[fault]}/`,
    ]);
    httpUrls.push("http://198.18.200.1/", "http://198.18.200.2:8080/");

    // The node agent: our route, LIVE_ROUTES remote workloads, InSync; then churn.
    let next = 0;
    let stream: AgentStream | undefined;
    agent = await FakeAgent.start(join(dir, "socket"), (opened) => {
      stream = opened;
      opened.route(OUR_ROUTE);
      for (let k = next - LIVE_ROUTES; k < next; k++) if (k >= 0) opened.route(remoteRoute(k));
      opened.inSync();
    });
    next = LIVE_ROUTES;

    const init = await runInit(pod);
    if (init.code !== 0) throw new Error(`init failed: ${init.stderr.trim()}`);
    const gateway = startGateway(pod, {
      ICMP_PROBE_IPS: ICMP_TARGETS.join(","),
      ICMP_PROBE_INTERVAL: "100ms",
      ICMP_PROBE_TIMEOUT: "1s",
      HTTP_PROBE_URLS: httpUrls.join(","),
      HTTP_PROBE_INTERVAL: "100ms",
      HTTP_PROBE_TIMEOUT: "1s",
      HEALTH_PORT: String(PORT),
      DAEMON_SOCKET_PATH: agent.socketPath,
      LOG_SEVERITY: "info",
    });
    const pid = gateway.child.pid!;
    await waitForComm(pid, "node");
    await gateway.waitForLog((l) => l.msg === "gateway started", STARTUP_MS);
    const startedAt = performance.now();
    const minutes = (): number => (performance.now() - startedAt) / 60_000;

    if (CHURN_PER_S > 0)
      timers.push(
        setInterval(() => {
          if (!stream?.open) return;
          stream.route(remoteRoute(next));
          stream.remove(remoteRoute(next - LIVE_ROUTES).dst);
          next++;
        }, 1000 / CHURN_PER_S),
      );

    const health = `http://${ADDR.gateway.v4}:${PORT}`;
    let window = new PollWindow();
    timers.push(
      setInterval(() => {
        const w = window;
        client.get(`${health}/readiness`, { timeoutMs: 1_000 }).then(
          (answer) => {
            w.answered++;
            if (answer.status === 200) w.ok++;
            w.ms.push(answer.ms);
          },
          (error: unknown) => {
            w.failed++;
            w.lastError = error instanceof Error ? error.message : String(error);
          },
        );
      }, READINESS_EVERY_MS),
    );

    console.log(
      `soak: ${DURATION_MIN} min (warm-up ${WARMUP_MIN} min), ${ICMP_TARGETS.length} ICMP + ${httpUrls.length} HTTP targets at 100 ms, ` +
        `${CHURN_PER_S} routes/s churn, /readiness ${1000 / READINESS_EVERY_MS}/s; ${cpus().length} CPUs; gateway PID ${pid}`,
    );
    const samples: SoakSample[] = [];
    const rows: string[][] = [
      [
        "minute",
        "RSS MB",
        "heap MB",
        "fds",
        "handles",
        "resources",
        "loop p99 ms",
        "ready %",
        "polls",
        "poll p99 ms",
        "routes sent",
        "warn+",
        "load",
      ],
    ];
    let failedScrapes = 0;
    /** /metrics, or nothing when two tries in a row time out (the sample then has only the /proc figures). */
    const scrape = async (): Promise<Metrics> => {
      // Long: behind a backlog of timed-out polls a starved gateway takes a while to accept the scrape.
      for (let attempt = 0; attempt < 2; attempt++) {
        try {
          return parseMetrics((await client.get(`${health}/metrics`, { timeoutMs: 25_000 })).body);
        } catch (error) {
          console.error(`soak: /metrics: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
      failedScrapes++;
      return {};
    };
    const take = async (): Promise<void> => {
      const m = await scrape();
      const sample: SoakSample = {
        minute: Math.round(minutes() * 100) / 100,
        rssBytes: rssBytes(pid),
        heapUsedBytes: m.nodejs_heap_size_used_bytes ?? NaN,
        openFds: openFds(pid),
        activeHandles: m.nodejs_active_handles ?? NaN,
        activeResources: m.nodejs_active_resources ?? NaN,
        eventLoopP99Seconds: m.nodejs_eventloop_lag_p99_seconds ?? NaN,
      };
      samples.push(sample);
      const w = window;
      window = new PollWindow();
      // What the gateway logged above info goes to a file (at most 100 lines a minute), not into memory for hours.
      const loudLines = gateway.logs.filter((l) => l.level !== "info" && l.level !== "debug");
      const loud = loudLines.length;
      gateway.logs.splice(0);
      appendFileSync(
        `${OUT}.gateway.log`,
        loudLines
          .slice(0, 100)
          .map((l) => `${JSON.stringify(l)}\n`)
          .join(""),
      );
      rows.push([
        sample.minute.toFixed(1),
        (sample.rssBytes / 1e6).toFixed(2),
        (sample.heapUsedBytes / 1e6).toFixed(2),
        String(sample.openFds),
        String(sample.activeHandles),
        String(sample.activeResources),
        (sample.eventLoopP99Seconds * 1000).toFixed(1),
        w.answered ? ((100 * w.ok) / w.answered).toFixed(1) : "-",
        `${w.answered}/${w.answered + w.failed}`,
        w.p99().toFixed(1),
        String(next),
        String(loud),
        (loadavg()[0] ?? NaN).toFixed(1),
      ]);
      console.log(rows.at(-1)!.join("  "));
      if (w.lastError) console.log(`  last /readiness poll error: ${w.lastError}`);
    };

    await take();
    while (minutes() < DURATION_MIN) {
      const due = startedAt + samples.length * SAMPLE_EVERY_MS;
      await sleep(Math.max(0, due - performance.now()));
      if (gateway.child.exitCode !== null || gateway.child.signalCode !== null)
        throw new Error(`the gateway exited during the soak:\n${gateway.dump()}`);
      await take();
    }
    for (const timer of timers) clearInterval(timer);

    const summaries = summarize(samples, WARMUP_MIN);
    const title =
      `egress-gateway soak: ${DURATION_MIN} min, slopes after ${WARMUP_MIN} min warm-up ` +
      `(${new Date().toISOString().slice(0, 16)} UTC, median load ${median(rows.slice(1).map((r) => Number(r.at(-1)))).toFixed(1)} on ${cpus().length} CPUs)`;
    const verdicts = [
      ["series", "first", "last", "min", "max", "slope per 10 min", "target", "verdict"],
      ...summaries.map((s) => [
        `${s.series.label} (${s.series.unit})`,
        s.first.toFixed(2),
        s.last.toFixed(2),
        s.min.toFixed(2),
        s.max.toFixed(2),
        s.slopePer10Min.toFixed(3),
        targetText(s.series),
        s.met ? "met" : "NOT MET",
      ]),
    ];
    const scrapes = `/metrics scrapes that failed twice: ${failedScrapes} of ${samples.length}`;
    const report = [title, "", table(rows), "", table(verdicts), scrapes, ""].join("\n");
    console.log(`\n${table(verdicts)}\n${scrapes}`);
    mkdirSync(dirname(OUT), { recursive: true });
    writeFileSync(
      `${OUT}.json`,
      `${JSON.stringify({ durationMinutes: DURATION_MIN, warmupMinutes: WARMUP_MIN, samples }, null, 1)}\n`,
    );
    writeFileSync(`${OUT}.txt`, report);
    writeFileSync(`${OUT}.svg`, soakChart(title, samples, summaries, WARMUP_MIN));
    console.log(`\nwrote ${OUT}.txt, ${OUT}.json and ${OUT}.svg`);
    client.close();
  } finally {
    for (const timer of timers) clearInterval(timer);
    await agent?.stop();
    pod.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
