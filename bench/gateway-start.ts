// How long the gateway takes from start to serving its health port, against a
// bare node:http server started the same way, in alternating rounds of one run.
// kubelet's first readiness probe and a rolling update both wait on this.
//
// The gateway runs as in the container (start-gateway.sh, configuration in the
// environment) with an ICMP probe of 127.0.0.1 and an HTTP probe of a local
// upstream, so that the probe modules, raw-socket and undici load as they do in
// production. The clock starts just before spawn(); two times are taken:
//   listening: the first TCP connection to the health port is accepted
//              (the project's goal: < 300 ms);
//   serving:   the first 200 answer to GET /liveness (the gateway loads its
//              probe modules right after it listens, which can delay that answer).
// Loopback only.
//
//   npm run build && node --import tsx bench/gateway-start.ts [--rounds 10]
import { spawn, type ChildProcess } from "node:child_process";
import { request, createServer, type Server } from "node:http";
import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { ensureBuilt, freePort, START_GATEWAY } from "../lab/gateway-process.js";
import { fixed, integerFlags, loadLine, median, table, verdict } from "./support/report.js";

const flags = integerFlags({ rounds: 10 });
const TARGET_MS = 300;
const GIVE_UP_MS = 10_000;
const POLL_MS = 2;

/** The floor for any Node program that serves HTTP: load node:http, listen, answer 200. */
const BARE_SERVER = [
  "const port = Number(process.env.HEALTH_PORT);",
  "require('node:http').createServer((_q, s) => s.end('ok\\n')).listen(port, '127.0.0.1');",
].join("\n");

type Side = "bare" | "gateway";
const SIDES: readonly Side[] = ["bare", "gateway"];
const LABEL: Record<Side, string> = { bare: "bare node:http", gateway: "gateway" };

/** Whether a TCP connection to 127.0.0.1:port is accepted now. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on("error", () => resolve(false));
  });
}

/** 200 from GET /liveness on 127.0.0.1:port, or false (refused, reset, other status). */
function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: "127.0.0.1", port, path: "/liveness", agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("error", () => resolve(false));
    req.setTimeout(1_000, () => req.destroy());
    req.end();
  });
}

function startSide(side: Side, port: number, upstreamPort: number): ChildProcess {
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HEALTH_PORT: String(port) };
  if (side === "bare") {
    return spawn(process.execPath, ["-e", BARE_SERVER], { env, stdio: ["ignore", "ignore", "pipe"] });
  }
  return spawn(START_GATEWAY, [], {
    env: {
      ...env,
      HEALTH_LISTEN_ADDRESS: "127.0.0.1",
      ICMP_PROBE_IPS: "127.0.0.1",
      HTTP_PROBE_URLS: `http://127.0.0.1:${upstreamPort}/`,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
}

interface StartTimes {
  readonly listeningMs: number;
  readonly servingMs: number;
}

/** Milliseconds from spawn to listening and to the first 200; the process is stopped (by its PID) before returning. */
async function startTimes(side: Side, upstreamPort: number): Promise<StartTimes> {
  const port = await freePort();
  const startedAt = performance.now();
  const child = startSide(side, port, upstreamPort);
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  try {
    let listeningMs: number | undefined;
    while (performance.now() - startedAt < GIVE_UP_MS) {
      if (child.exitCode !== null) {
        throw new Error(`${LABEL[side]} exited (${child.exitCode}): ${stderr.trim()}`);
      }
      if (listeningMs === undefined && (await accepts(port))) listeningMs = performance.now() - startedAt;
      if (listeningMs !== undefined && (await answers(port))) {
        return { listeningMs, servingMs: performance.now() - startedAt };
      }
      await sleep(POLL_MS);
    }
    throw new Error(`${LABEL[side]} did not answer within ${GIVE_UP_MS} ms: ${stderr.trim()}`);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await exited;
  }
}

async function main(): Promise<number> {
  ensureBuilt();
  console.log(`gateway start to serving /liveness vs a bare node:http server, ${flags.rounds} rounds`);
  console.log(loadLine());
  const upstream: Server = createServer((_req, res) => res.end("ok\n"));
  await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
  const upstreamPort = (upstream.address() as { port: number }).port;
  try {
    // Warm-up, not counted: the page cache holds node, dist/ and node_modules afterwards.
    for (const side of SIDES) await startTimes(side, upstreamPort);
    const runs: Record<Side, StartTimes[]> = { bare: [], gateway: [] };
    for (let round = 0; round < flags.rounds; round++) {
      for (const side of round % 2 === 0 ? SIDES : [...SIDES].reverse()) {
        const times = await startTimes(side, upstreamPort);
        runs[side].push(times);
        console.log(
          `   round ${round + 1} ${LABEL[side].padEnd(14)} listening ${fixed(times.listeningMs, 0)} ms,` +
            ` serving ${fixed(times.servingMs, 0)} ms`,
        );
      }
    }
    const row = (what: string, key: keyof StartTimes, target: number | undefined): string[] => {
      const gateway = median(runs.gateway.map((t) => t[key]));
      return [
        what,
        `${fixed(median(runs.bare.map((t) => t[key])), 0)} ms`,
        `${fixed(gateway, 0)} ms`,
        fixed(median(runs.gateway.map((t, i) => t[key] / runs.bare[i]![key])), 2),
        target === undefined ? "" : `< ${target} ms`,
        target === undefined ? "" : verdict(gateway < target),
      ];
    };
    console.log(
      "\n" +
        table([
          ["start to (medians)", "bare node:http", "gateway", "gateway/bare", "target", ""],
          row("listening", "listeningMs", TARGET_MS),
          row("serving /liveness", "servingMs", undefined),
        ]),
    );
    console.log("gateway/bare is the median of each round's ratio");
    console.log(loadLine());
    return 0;
  } catch (error) {
    console.error(`gateway-start benchmark: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  } finally {
    upstream.close();
  }
}

process.exitCode = await main();
