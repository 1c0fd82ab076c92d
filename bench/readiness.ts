// /readiness throughput and latency: the gateway's health server against a bare
// node:http server (own process) that answers the very same cached body. Both
// sides are measured in alternating rounds of one run, so the ratios survive a
// noisy 2-core machine. Loopback only.
//
// Each round, per side: a closed-loop autocannon run (64 keep-alive
// connections, pipelining 1) for req/s, then an open-loop run at --rate req/s
// for the server's own latency (a closed loop at saturation measures queueing:
// mean latency = connections / throughput).
//
//   node --import tsx bench/readiness.ts [--seconds 5] [--rounds 4] [--warmup 2] [--rate 2000]
import { type ChildProcess } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { ensureBuilt, freePort, startGatewayProcess, type GatewayProcess } from "../lab/gateway-process.js";
import { autocannon } from "./support/autocannon.js";
import { startBareServer, type FixedAnswer } from "./support/bare-server.js";
import { pacedLatency, type PacedResult } from "./support/paced.js";
import { startCpuWindow, waitForComm } from "./support/proc.js";
import {
  cleanupOnSignal,
  fixed,
  integerFlags,
  loadLine,
  median,
  percent,
  table,
  verdict,
} from "./support/report.js";

const flags = integerFlags({ seconds: 5, rounds: 4, warmup: 2, rate: 2000 });
const CONNECTIONS = 64;
const ISSUE_TARGET_RATIO = 0.7;
const PROJECT_GOAL_RATIO = 0.85;
const P99_GOAL_MS = 5;

interface ClosedLoop {
  readonly requests: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly timeouts: number;
  /** Share of one core the load generator (this process) used. */
  readonly clientCoreShare: number;
}

interface Measured<T> {
  readonly result: T;
  /** Server CPU per answered request, in microseconds. */
  readonly serverCpuUs: number;
}

interface Side {
  readonly name: string;
  readonly url: string;
  readonly pid: number;
  readonly closed: Measured<ClosedLoop>[];
  readonly open: Measured<PacedResult>[];
}

function killPid(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}

/** Polls until the gateway answers /readiness, then returns exactly what it answered. */
async function fetchOnceServing(url: string, gateway: GatewayProcess): Promise<FixedAnswer> {
  const until = Date.now() + 10_000;
  for (;;) {
    if (gateway.child.exitCode !== null || gateway.child.signalCode !== null) {
      throw new Error(`gateway exited during start:\n${gateway.dump()}`);
    }
    try {
      const response = await fetch(url);
      return {
        status: response.status,
        contentType: response.headers.get("content-type") ?? "",
        body: await response.text(),
      };
    } catch (error) {
      if (Date.now() > until) throw new Error(`gateway not serving ${url} after 10 s: ${String(error)}`);
      await sleep(50);
    }
  }
}

/** Runs `load` against one side and charges the server's CPU time to the requests it answered. */
async function withServerCpu<T>(
  side: Side,
  load: () => Promise<T>,
  answered: (r: T) => number,
): Promise<Measured<T>> {
  const server = startCpuWindow(side.pid);
  const result = await load();
  return { result, serverCpuUs: (server().cpuSeconds * 1e6) / Math.max(1, answered(result)) };
}

async function closedLoop(url: string, seconds: number): Promise<ClosedLoop> {
  const client = process.cpuUsage();
  const started = performance.now();
  const r = await autocannon({ url, connections: CONNECTIONS, pipelining: 1, duration: seconds });
  const clientCpu = process.cpuUsage(client);
  return {
    requests: r.requests.total,
    rps: r.requests.total / r.duration,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    maxMs: r.latency.max,
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    clientCoreShare: (clientCpu.user + clientCpu.system) / 1e3 / (performance.now() - started),
  };
}

const closedRound = (side: Side): Promise<Measured<ClosedLoop>> =>
  withServerCpu(
    side,
    () => closedLoop(side.url, flags.seconds),
    (r) => r.requests,
  );

const openRound = (side: Side): Promise<Measured<PacedResult>> =>
  withServerCpu(
    side,
    () => pacedLatency(side.url, { rate: flags.rate, seconds: flags.seconds, connections: CONNECTIONS }),
    (r) => r.answered,
  );

function printRounds(sides: readonly Side[]): void {
  console.log(
    `\nclosed loop: ${CONNECTIONS} keep-alive connections, pipelining 1 (autocannon, 1 ms resolution)`,
  );
  const closed = [
    [
      "side / round",
      "req/s",
      "p50 ms",
      "p99 ms",
      "max ms",
      "non-2xx",
      "errors",
      "timeouts",
      "srv us/req",
      "client cpu",
    ],
  ];
  const open = [
    ["side / round", "sent", "answered", "p50 ms", "p99 ms", "max ms", "non-2xx", "errors", "srv us/req"],
  ];
  for (let i = 0; i < flags.rounds; i++) {
    for (const side of sides) {
      const label = `${side.name} #${i + 1}`;
      const c = side.closed[i]!;
      closed.push([
        label,
        fixed(c.result.rps, 0),
        fixed(c.result.p50Ms, 0),
        fixed(c.result.p99Ms, 0),
        fixed(c.result.maxMs, 0),
        String(c.result.non2xx),
        String(c.result.errors),
        String(c.result.timeouts),
        fixed(c.serverCpuUs, 0),
        percent(c.result.clientCoreShare),
      ]);
      const o = side.open[i]!;
      open.push([
        label,
        String(o.result.sent),
        String(o.result.answered),
        fixed(o.result.p50Ms, 2),
        fixed(o.result.p99Ms, 2),
        fixed(o.result.maxMs, 2),
        String(o.result.non2xx),
        String(o.result.errors),
        fixed(o.serverCpuUs, 0),
      ]);
    }
  }
  console.log(table(closed));
  console.log(
    `\nopen loop: ${flags.rate} req/s over up to ${CONNECTIONS} keep-alive connections (us timing)`,
  );
  console.log(table(open));
}

interface Summary {
  readonly rps: number;
  readonly closedP99Ms: number;
  readonly openP50Ms: number;
  readonly openP99Ms: number;
  readonly serverCpuUs: number;
  readonly failures: number;
}

function summarise(side: Side): Summary {
  const closed = side.closed.map((m) => m.result);
  const open = side.open.map((m) => m.result);
  return {
    rps: median(closed.map((r) => r.rps)),
    closedP99Ms: median(closed.map((r) => r.p99Ms)),
    openP50Ms: median(open.map((r) => r.p50Ms)),
    openP99Ms: median(open.map((r) => r.p99Ms)),
    serverCpuUs: median([...side.closed, ...side.open].map((m) => m.serverCpuUs)),
    failures:
      closed.reduce((n, r) => n + r.non2xx + r.errors + r.timeouts, 0) +
      open.reduce((n, r) => n + r.non2xx + r.errors + (r.sent - r.answered), 0),
  };
}

function report(gatewaySide: Side, bareSide: Side, answer: FixedAnswer): void {
  console.log(`\n/readiness answered ${answer.status} ${answer.contentType}, ${answer.body.length} bytes:`);
  console.log(answer.body.trimEnd().replace(/^/gm, "  "));
  printRounds([gatewaySide, bareSide]);

  const g = summarise(gatewaySide);
  const b = summarise(bareSide);
  console.log(`\nmedians of ${flags.rounds} rounds x ${flags.seconds} s`);
  console.log(
    table([
      ["side", "req/s", "closed p99 ms", "open p50 ms", "open p99 ms", "srv us/req", "non-2xx+errors+lost"],
      ...[
        { name: gatewaySide.name, s: g },
        { name: bareSide.name, s: b },
      ].map(({ name, s }) => [
        name,
        fixed(s.rps, 0),
        fixed(s.closedP99Ms, 0),
        fixed(s.openP50Ms, 2),
        fixed(s.openP99Ms, 2),
        fixed(s.serverCpuUs, 0),
        String(s.failures),
      ]),
    ]),
  );
  const floorMs = (rps: number): string => `${fixed((CONNECTIONS / rps) * 1000, 1)} ms`;
  console.log(
    `closed-loop mean latency is ${CONNECTIONS} / req/s: gateway ${floorMs(g.rps)}, bare ${floorMs(b.rps)}; ` +
      `a closed-loop p99 < ${P99_GOAL_MS} ms needs > ${fixed((CONNECTIONS / P99_GOAL_MS) * 1000, 0)} req/s`,
  );

  const ratio = g.rps / b.rps;
  const ms = (n: number, digits = 2): string => `${fixed(n, digits)} ms`;
  console.log("\ntargets");
  console.log(
    table([
      ["measure", "value", "target", "verdict"],
      [
        "gateway/bare req/s",
        fixed(ratio, 3),
        `>= ${ISSUE_TARGET_RATIO} (issue)`,
        verdict(ratio >= ISSUE_TARGET_RATIO),
      ],
      [
        "gateway/bare req/s",
        fixed(ratio, 3),
        `>= ${PROJECT_GOAL_RATIO} (project goal)`,
        verdict(ratio >= PROJECT_GOAL_RATIO),
      ],
      [
        "gateway p99, closed loop",
        ms(g.closedP99Ms, 0),
        `< ${P99_GOAL_MS} ms`,
        verdict(g.closedP99Ms < P99_GOAL_MS),
      ],
      ["bare p99, closed loop", ms(b.closedP99Ms, 0), `(reference)`, "-"],
      [
        `gateway p99, open ${flags.rate}/s`,
        ms(g.openP99Ms),
        `< ${P99_GOAL_MS} ms`,
        verdict(g.openP99Ms < P99_GOAL_MS),
      ],
      [`bare p99, open ${flags.rate}/s`, ms(b.openP99Ms), `(reference)`, "-"],
      ["gateway non-2xx+errors", String(g.failures), "0", verdict(g.failures === 0)],
      ["gateway/bare server CPU per request", fixed(g.serverCpuUs / b.serverCpuUs, 2), "(information)", "-"],
    ]),
  );
}

async function main(): Promise<void> {
  ensureBuilt();
  const port = await freePort();
  const gateway = startGatewayProcess({
    HEALTH_PORT: String(port),
    HEALTH_LISTEN_ADDRESS: "127.0.0.1",
    LOG_SEVERITY: "warn",
    DRAIN_TIMEOUT: "0s",
  });
  let bare: ChildProcess | undefined;
  const cleanup = cleanupOnSignal(() => {
    killPid(gateway.child.pid);
    killPid(bare?.pid);
  });
  try {
    const gatewayPid = gateway.child.pid!;
    await waitForComm(gatewayPid, "node");
    const gatewayUrl = `http://127.0.0.1:${port}/readiness`;
    const answer = await fetchOnceServing(gatewayUrl, gateway);
    if (answer.status !== 200) console.warn(`warning: gateway /readiness is ${answer.status}, expected 200`);
    const started = await startBareServer(answer);
    bare = started.child;
    const bareUrl = `http://127.0.0.1:${started.port}/readiness`;
    const check = await fetch(bareUrl);
    if ((await check.text()) !== answer.body || check.status !== answer.status) {
      throw new Error("bare server does not answer the gateway's body and status");
    }

    const gatewaySide: Side = { name: "gateway", url: gatewayUrl, pid: gatewayPid, closed: [], open: [] };
    const bareSide: Side = { name: "bare node:http", url: bareUrl, pid: bare.pid!, closed: [], open: [] };
    console.log(`warm-up: ${flags.warmup} s per side; ${loadLine()}`);
    for (const side of [gatewaySide, bareSide]) await closedLoop(side.url, flags.warmup);
    for (let i = 0; i < flags.rounds; i++) {
      const order = i % 2 === 0 ? [gatewaySide, bareSide] : [bareSide, gatewaySide];
      for (const side of order) side.closed.push(await closedRound(side));
      for (const side of order) side.open.push(await openRound(side));
      const line = order.map((s) => `${s.name} ${fixed(s.closed[i]!.result.rps, 0)} req/s`).join(", ");
      console.log(`round ${i + 1}/${flags.rounds}: ${line}; ${loadLine()}`);
    }
    // LOG_SEVERITY=warn: anything the gateway wrote is worth showing.
    if (gateway.logs.length > 0 || gateway.stderr.length > 0) {
      console.log(`\ngateway output during the run:\n${gateway.dump().split("\n").slice(0, 20).join("\n")}`);
    }
    report(gatewaySide, bareSide, answer);
  } finally {
    cleanup();
  }
}

main().catch((error: unknown) => {
  console.error(`readiness benchmark setup failed: ${error instanceof Error ? error.stack : String(error)}`);
  process.exitCode = 1;
});
