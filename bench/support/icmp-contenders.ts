// The programs the ICMP benchmark compares, each behind one small interface:
// the gateway itself, a plain script with one net-ping Session, and fping.
// All run inside the lab's gateway namespace, one at a time (raw ICMP sockets
// see every echo reply, so two probers at once would tax each other).
import { execFileSync, spawnSync, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { ROOT, startGatewayProcess } from "../../lab/gateway-process.js";
import type { Namespace } from "../../lab/netns.js";
import { fixed } from "./report.js";

export interface ProbeSettings {
  /** Where every contender runs. */
  readonly ns: Namespace;
  readonly targets: readonly string[];
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** The gateway namespace's own address (EGRESS_POD_IP; the health server binds it). */
  readonly podIp: string;
  readonly healthPort: number;
}

// CommonJS for `node -e` (plain node, like the gateway's dist/): one Session,
// every target once a second, counts reported on SIGUSR2.
const netPingBaseline = (timeoutMs: number, intervalMs: number): string => `
const ping = require("net-ping");
const targets = process.env.BENCH_TARGETS.split(",");
const session = ping.createSession({
  networkProtocol: ping.NetworkProtocol.IPv4,
  retries: 0,
  timeout: ${timeoutMs},
  sessionId: 1 + Math.floor(Math.random() * 65534),
});
session.on("error", (error) => { console.error(String(error)); process.exit(1); });
let ok = 0;
let failed = 0;
const round = () => {
  for (const target of targets) session.pingHost(target, (error) => (error ? failed++ : ok++));
};
round();
setInterval(round, ${intervalMs});
process.on("SIGUSR2", () => console.log(JSON.stringify({ ok, failed })));
process.on("SIGTERM", () => process.exit(0));
`;

export interface ProberCounts {
  readonly ok: number;
  readonly failed: number;
}

/** One program under test: how to start it, read its own success counts, and stop it. */
export interface Contender {
  readonly name: string;
  /** The program name in /proc/<pid>/comm once the wrappers have exec'd. */
  readonly comm: string;
  launch(): ChildProcess;
  /** Cumulative probe results as the program itself counts them, when it can tell us mid-run. */
  counts?(): Promise<ProberCounts>;
  /** Stops the program; returns its own final word (exit, totals) for the report. */
  finish(): Promise<string>;
}

/** GET from inside the namespace (it is not reachable from the root namespace, by design). */
function fetchInside(ns: Namespace, url: string): { status: number; body: string } {
  const script =
    "fetch(process.argv[1]).then(async (r) => process.stdout.write(JSON.stringify({ status: r.status, body: await r.text() })))" +
    ".catch((e) => { console.error(String(e)); process.exit(1); })";
  const out = execFileSync("ip", ["netns", "exec", ns.name, process.execPath, "-e", script, url], {
    encoding: "utf8",
    maxBuffer: 256 * 2 ** 20,
  });
  return JSON.parse(out) as { status: number; body: string };
}

function sumMetric(exposition: string, result: "success" | "failure"): number {
  let sum = 0;
  const pattern = new RegExp(`^egress_gateway_probes_total\\{[^}]*result="${result}"\\} (\\d+)$`, "gm");
  for (const m of exposition.matchAll(pattern)) sum += Number(m[1]);
  return sum;
}

export function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
}

async function stopWithin(child: ChildProcess, signal: NodeJS.Signals, boundMs: number): Promise<string> {
  const started = performance.now();
  child.kill(signal);
  const exit = await Promise.race([exitOf(child), sleep(boundMs).then(() => undefined)]);
  if (exit === undefined) {
    child.kill("SIGKILL");
    await exitOf(child);
    return `did not exit within ${boundMs} ms of ${signal}; killed`;
  }
  const ms = performance.now() - started;
  return `exit ${exit.code ?? exit.signal} ${fixed(ms, 0)} ms after ${signal}`;
}

export function gatewayContender(settings: ProbeSettings): Contender {
  const { ns: gateway, targets } = settings;
  let gw: ReturnType<typeof startGatewayProcess> | undefined;
  const base = `http://${settings.podIp}:${settings.healthPort}`;
  return {
    name: "gateway",
    comm: "node",
    launch() {
      gw = startGatewayProcess(
        {
          EGRESS_POD_IP: settings.podIp,
          HEALTH_PORT: String(settings.healthPort),
          ICMP_PROBE_IPS: targets.join(","),
          ICMP_PROBE_INTERVAL: `${settings.intervalMs / 1000}s`,
          ICMP_PROBE_TIMEOUT: `${settings.timeoutMs / 1000}s`,
          LOG_SEVERITY: "warn",
          DRAIN_TIMEOUT: "0s",
          // No init ran in this namespace: nothing of init's to watch.
          DATAPLANE_CHECK_INTERVAL: "0s",
        },
        { netns: gateway.name },
      );
      return gw.child;
    },
    counts() {
      const { body } = fetchInside(gateway, `${base}/metrics`);
      return Promise.resolve({ ok: sumMetric(body, "success"), failed: sumMetric(body, "failure") });
    },
    async finish() {
      const readiness = fetchInside(gateway, `${base}/readiness`);
      const stop = await stopWithin(gw!.child, "SIGTERM", 10_000);
      const logged = gw!.logs.length + gw!.stderr.length;
      const sample = gw!.dump().split("\n").slice(0, 5).join("\n    ");
      return (
        `/readiness ${readiness.status}:\n    ${readiness.body.trimEnd().replace(/\n/g, "\n    ")}\n  ${stop}\n` +
        `  ${logged} log lines at warn+ or stderr${logged ? `, first:\n    ${sample}` : ""}`
      );
    },
  };
}

export function netPingContender(settings: ProbeSettings): Contender {
  const { ns: gateway, targets } = settings;
  let child: ChildProcess | undefined;
  const lines: string[] = [];
  const waiting: ((line: string) => void)[] = [];
  return {
    name: "net-ping Session",
    comm: "node",
    launch() {
      child = gateway.spawn(
        process.execPath,
        ["-e", netPingBaseline(settings.timeoutMs, settings.intervalMs)],
        {
          cwd: ROOT,
          env: { PATH: process.env.PATH ?? "/usr/bin:/bin", BENCH_TARGETS: targets.join(",") },
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      createInterface({ input: child.stdout! }).on("line", (line) => {
        const waiter = waiting.shift();
        if (waiter) waiter(line);
      });
      createInterface({ input: child.stderr! }).on("line", (line) => lines.push(line));
      return child;
    },
    async counts() {
      const line = new Promise<string>((resolve) => waiting.push(resolve));
      child!.kill("SIGUSR2");
      const answer = await Promise.race([line, sleep(5_000).then(() => undefined)]);
      if (answer === undefined)
        throw new Error(`net-ping baseline did not report counts:\n${lines.join("\n")}`);
      return JSON.parse(answer) as ProberCounts;
    },
    async finish() {
      const stop = await stopWithin(child!, "SIGTERM", 5_000);
      return `${stop}${lines.length ? `\n  stderr: ${lines.slice(0, 5).join("\n    ")}` : ""}`;
    },
  };
}

export function fpingContender(settings: ProbeSettings): Contender {
  const { ns: gateway, targets } = settings;
  let child: ChildProcess | undefined;
  const stderr: string[] = [];
  return {
    name: "fping -l",
    comm: "fping",
    launch() {
      // -i: packets evenly spaced over half the period (0.5 ms for 1,000 targets at
      // 1 s): with 0.9 ms fping fell behind to ~890/s. -Q 3600: quiet, totals on exit only.
      const gapMs = ((0.5 * settings.intervalMs) / targets.length).toFixed(3);
      const args = ["-l", "-Q", "3600", "-p", String(settings.intervalMs), "-t", String(settings.timeoutMs)];
      child = gateway.spawn("fping", [...args, "-r", "0", "-i", gapMs, ...targets], {
        stdio: ["ignore", "ignore", "pipe"],
      });
      createInterface({ input: child.stderr! }).on("line", (line) => stderr.push(line));
      return child;
    },
    async finish() {
      const stop = await stopWithin(child!, "SIGINT", 5_000);
      let sent = 0;
      let received = 0;
      for (const line of stderr) {
        const m = /xmt\/rcv\/%loss = (\d+)\/(\d+)\//.exec(line);
        if (m) {
          sent += Number(m[1]);
          received += Number(m[2]);
        }
      }
      const other = stderr.filter((l) => !l.includes("xmt/rcv")).slice(0, 5);
      return (
        `${stop}; own totals over its whole life: ${sent} sent, ${received} received` +
        `${other.length ? `\n  stderr: ${other.join("\n    ")}` : ""}`
      );
    },
  };
}

/** The program's own counts, stamped with the middle of the time it took to ask. */
export function fpingInstalled(): boolean {
  return spawnSync("fping", ["--version"], { stdio: "ignore" }).status === 0;
}
