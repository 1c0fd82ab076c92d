// The health port under abuse, through the built gateway (start-gateway.sh) on
// loopback: kubelet's probe from 127.0.0.1 keeps its answers while an attacker
// from 127.0.0.2 holds idle and slowloris connections and floods junk, with
// an open-files limit Node can raise and with one it cannot; each kind of junk
// gets a short answer and loses its connection; a failed accept does not end
// the process. CI sizes; bench/health-abuse.ts runs the full ones.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import { connect } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { abuseRun } from "../lab/health-abuse-run.js";
import { parseMetrics } from "../lab/gateway-health.js";
import { junkPayloads } from "../lab/health-attack.js";
import { probeOnce } from "../lab/kubelet-poller.js";
import {
  ensureBuilt,
  freePort,
  ROOT,
  startGatewayProcess,
  type GatewayProcess,
} from "../lab/gateway-process.js";

const HOST = "127.0.0.1";
const MiB = 2 ** 20;

interface Running {
  readonly gateway: GatewayProcess;
  readonly port: number;
}

async function startGateway(nofile: string, env: Record<string, string> = {}): Promise<Running> {
  const port = await freePort();
  const gateway = startGatewayProcess(
    {
      HEALTH_PORT: String(port),
      HEALTH_LISTEN_ADDRESS: HOST,
      LOG_SEVERITY: "warn",
      DRAIN_TIMEOUT: "0s",
      ...env,
    },
    { wrapper: ["prlimit", `--nofile=${nofile}`, "--"] },
  );
  for (let i = 0; ; i++) {
    if ("ms" in (await probeOnce({ host: HOST, port }))) return { gateway, port };
    if (i > 200 || gateway.child.exitCode !== null) {
      await gateway.kill();
      throw new Error(`gateway did not serve:\n${gateway.dump()}`);
    }
    await sleep(25);
  }
}

async function metrics(port: number): Promise<Map<string, number>> {
  return parseMetrics(await fetch(`http://${HOST}:${port}/metrics`).then((r) => r.text()));
}

const shed = (m: Map<string, number>, reason: string): number =>
  m.get(`egress_gateway_health_connections_shed_total{reason="${reason}"}`) ?? Number.NaN;

/** Writes `payload` on a fresh connection and collects the answer until the server closes it. */
function exchange(
  port: number,
  payload: Buffer | string,
  giveUpMs = 5_000,
): Promise<{ answer: string; closedAfterMs: number | undefined }> {
  return new Promise((resolve) => {
    const started = performance.now();
    let answer = "";
    const socket = connect({ host: HOST, port }, () => socket.write(payload, () => undefined));
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => (answer += chunk));
    socket.on("error", () => undefined);
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ answer, closedAfterMs: undefined });
    }, giveUpMs);
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ answer, closedAfterMs: performance.now() - started });
    });
  });
}

const statusLines = (answer: string): string[] => answer.match(/^HTTP\/1\.1 \d{3}/gm) ?? [];

let upstream: Server;
let upstreamUrl: string;

before(async () => {
  ensureBuilt();
  upstream = createServer((_req, res) => res.end("ok\n"));
  await new Promise<void>((resolve) => upstream.listen(0, HOST, resolve));
  upstreamUrl = `http://${HOST}:${(upstream.address() as { port: number }).port}/`;
});
after(() => upstream.close());

describe("kubelet keeps its answers while the health port is attacked", () => {
  // soft 1024 with the hard limit of this machine (Node raises it: the bound is
  // HEALTH_MAX_CONNECTIONS), and hard 1024 that Node cannot raise. The targets
  // (99 % and 90 % answered) are bench/health-abuse.ts's, at full size; on a
  // shared 2-core machine kubelet is slow even without an attack, so this pins
  // a share of what it got without the attack in the same run. Before the
  // limits, kubelet got none of its answers at hard 1024 (connections reset).
  for (const { nofile, bound, keep } of [
    { nofile: "1024:", bound: 4096, keep: 0.5 },
    { nofile: "1024:1024", bound: 1024 - 128 - 1, keep: 0.2 },
  ]) {
    it(`RLIMIT_NOFILE ${nofile}: answered, bounded, back to the baseline afterwards`, async () => {
      const { gateway, port } = await startGateway(nofile, {
        // Probes keep running through the attack: their sockets come out of the reserve.
        ICMP_PROBE_IPS: HOST,
        ICMP_PROBE_INTERVAL: "500ms",
        HTTP_PROBE_URLS: upstreamUrl,
        HTTP_PROBE_INTERVAL: "500ms",
      });
      try {
        const result = await abuseRun({
          host: HOST,
          port,
          pid: gateway.child.pid!,
          kubeletSource: HOST,
          attack: { sourceAddress: "127.0.0.2", idle: 1000, slowloris: 50, floodWorkers: 2, pipelined: 5000 },
          holding: 500,
          // The CI machine may be shared: the gateway, the attacker and
          // kubelet alike get the CPU their pods' requests would reserve.
          nice: -10,
          baselineMs: 2_000,
          rampMs: 1_500,
          attackMs: 4_000,
          settleTimeoutMs: 10_000,
          rssSettleTimeoutMs: 45_000,
          rssSettledBytes: 16 * MiB,
        });
        const report = JSON.stringify(result);
        assert.ok(result.alive, `the gateway died:\n${gateway.dump()}`);
        assert.ok(
          result.attacker.heldPeak >= Math.min(1000, bound - 100),
          `the attack did not take: ${report}`,
        );
        assert.ok(
          result.attacked.answeredShare >= keep * result.baseline.answeredShare,
          `kubelet answered ${result.attacked.answeredShare} under attack, ${result.baseline.answeredShare} without: ${report}`,
        );
        assert.ok(result.fdsPeak <= Math.max(1024, bound + 128), `fds peaked at ${result.fdsPeak}`);
        assert.ok(
          // The HTTP probe's keep-alive socket may be open at one reading and not the other.
          result.socketsAfter <= result.socketsBefore + 1,
          `sockets ${result.socketsBefore} before, ${result.socketsAfter} after (fds ${result.fdsBefore}, ${result.fdsAfter})`,
        );
        // Issue 11: RSS growth < 60 MB after the attack, read once V8's memory
        // reducer has run (it gives the attack's heap back 5-25 s after).
        assert.ok(result.rssAfterBytes - result.rssBeforeBytes < 60 * MiB, report);

        const m = await metrics(port);
        assert.equal(m.get("egress_gateway_health_connections_max"), bound);
        assert.ok((m.get("egress_gateway_health_connections") ?? Infinity) <= 2);
        for (const reason of ["headers_too_large", "malformed", "request_body"]) {
          assert.ok(shed(m, reason) > 0, `nothing shed for ${reason}`);
        }
        // Slowloris connections end at the header timeout, or earlier by the
        // bound where the fd limit makes it low (seen on a quiet machine).
        assert.ok(shed(m, "timeout") + shed(m, "limit") > 0, "slowloris connections were never shed");
        if (bound < 1000) assert.ok(shed(m, "limit") > 0, "the bound never closed a connection");
        assert.deepEqual(
          gateway.logs.filter((l) => l.level === "fatal" || l.level === "error"),
          [],
        );
      } finally {
        await gateway.kill();
      }
    });
  }
});

describe("each kind of junk gets a short answer and loses its connection", () => {
  let running: Running;
  before(async () => {
    running = await startGateway("1024:", { HEALTH_HEADER_TIMEOUT: "500ms", HEALTH_KEEPALIVE_TIMEOUT: "1s" });
  });
  after(() => running.gateway.kill());

  it("431 for a 16 KiB header line, 400 for a malformed request line or TLS", async () => {
    const [huge, , malformed, tls] = junkPayloads(1);
    const tooLarge = await exchange(running.port, huge!);
    assert.match(tooLarge.answer, /^HTTP\/1\.1 431 /);
    assert.notEqual(tooLarge.closedAfterMs, undefined);
    for (const junk of [malformed!, tls!]) {
      const bad = await exchange(running.port, junk);
      assert.match(bad.answer, /^HTTP\/1\.1 400 /);
      assert.notEqual(bad.closedAfterMs, undefined);
    }
  });

  it("413 for a 1 MiB body, without reading it, and the connection closed", async () => {
    const [, body] = junkPayloads(1);
    const refused = await exchange(running.port, body!);
    assert.match(refused.answer, /^HTTP\/1\.1 413 /);
    assert.match(refused.answer, /connection: close/i);
    assert.notEqual(refused.closedAfterMs, undefined);
    const chunked = await exchange(
      running.port,
      "POST /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    );
    assert.match(chunked.answer, /^HTTP\/1\.1 413 /);
  });

  it("closes a silent connection and a slowloris within the header timeout", async () => {
    const silent = await exchange(running.port, "");
    assert.ok(silent.closedAfterMs !== undefined && silent.closedAfterMs < 2_000, `${silent.closedAfterMs}`);
    const slow = connect({ host: HOST, port: running.port });
    const started = performance.now();
    slow.on("error", () => undefined);
    slow.write("GET /readiness HTTP/1.1\r\nHost: x\r\n");
    const drip = setInterval(() => slow.write("X-Slow: 1\r\n"), 100);
    await new Promise((resolve) => slow.on("close", resolve));
    clearInterval(drip);
    assert.ok(performance.now() - started < 2_000);
  });

  it("closes an idle keep-alive connection after the keep-alive timeout", async () => {
    const kept = await exchange(running.port, "GET /liveness HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.match(kept.answer, /^HTTP\/1\.1 200 /);
    assert.ok(kept.closedAfterMs !== undefined && kept.closedAfterMs >= 900 && kept.closedAfterMs < 3_000);
  });

  it("closes a connection that pipelines more than 100 requests, answering no more than 100", async () => {
    const pipelined = await exchange(running.port, junkPayloads(5000)[5]!);
    const answers = statusLines(pipelined.answer);
    assert.ok(answers.length >= 1 && answers.length <= 100, `${answers.length} answers`);
    assert.notEqual(pipelined.closedAfterMs, undefined);
    assert.ok("ms" in (await probeOnce({ host: HOST, port: running.port, timeoutMs: 5_000 })));
  });

  it("counts what it shed by reason", async () => {
    const m = await metrics(running.port);
    for (const reason of [
      "headers_too_large",
      "malformed",
      "request_body",
      "timeout",
      "requests_per_connection",
    ]) {
      assert.ok(shed(m, reason) >= 1, `${reason}: ${shed(m, reason)}`);
    }
    assert.equal(shed(m, "accept_error"), 0);
  });
});

describe("a full fd table does not end the process", () => {
  it("drops what it cannot accept and serves again once descriptors are free", async () => {
    // The health server alone, with no reserve: the fd table fills before the
    // bound does, as it would if anything else in the process had taken the
    // reserve. libuv then closes the connections it cannot accept (its spare
    // descriptor trick) and reports an accept error only when that fails too;
    // either way the process must go on.
    const dist = (file: string): string => JSON.stringify(join(ROOT, "dist", file));
    const script = [
      `const { startHealthServer } = await import(${dist("gateway/server.js")});`,
      `const { Readiness } = await import(${dist("readiness/readiness.js")});`,
      `const { systemClock } = await import(${dist("clock.js")});`,
      "const readiness = new Readiness(systemClock);",
      "const server = await startHealthServer({ host: '127.0.0.1', port: 0, fdReserve: 0,",
      "  readiness: () => readiness.evaluate(), metrics: () => '' });",
      "console.log(server.address.port);",
      "setInterval(() => console.log(JSON.stringify(server.stats())), 200);",
    ].join("\n");
    const server = spawn(
      "prlimit",
      ["--nofile=256:256", "--", process.execPath, "--input-type=module", "-e", script],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let stderr = "";
    server.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    // The port, then the server's stats every 200 ms, a line each.
    const lines: string[] = [];
    createInterface({ input: server.stdout }).on("line", (line) => lines.push(line));
    const clients: ReturnType<typeof connect>[] = [];
    try {
      while (lines.length === 0) {
        assert.equal(server.exitCode, null, stderr);
        await sleep(20);
      }
      const port = Number(lines[0]);
      let dropped = 0;
      for (let i = 0; i < 400; i++) {
        const socket = connect({ host: HOST, port });
        socket.on("error", () => undefined);
        socket.on("close", () => dropped++);
        clients.push(socket);
      }
      for (let waited = 0; dropped === 0 && waited < 10_000; waited += 100) await sleep(100);
      // Stats taken after the drops: the drops can come before the first stats line.
      const seen = lines.length;
      for (let waited = 0; lines.length <= seen + 1 && waited < 5_000; waited += 50) await sleep(50);
      assert.equal(server.exitCode, null, `the server exited: ${stderr}`);
      const stats = JSON.parse(lines.at(-1)!) as { open: number; bound: number };
      assert.ok(stats.open < 256, `${stats.open} connections held under a limit of 256`);
      assert.ok(dropped > 0, "no connection was dropped: the fd table never filled");
      for (const socket of clients) socket.destroy();
      await sleep(500);
      assert.ok(
        "ms" in (await probeOnce({ host: HOST, port, timeoutMs: 5_000 })),
        "not serving after the storm",
      );
    } finally {
      for (const socket of clients) socket.destroy();
      server.kill("SIGKILL");
    }
  });
});
