// A prober that cannot start (no NET_RAW for ICMP, undici failing to load for
// HTTP) takes one path whatever its protocol: its component stays not ready
// with the reason, one error is logged, and the gateway keeps serving and
// probing with the other protocol.
import assert from "node:assert/strict";
import { request } from "node:http";
import { createServer } from "node:net";
import { describe, it } from "node:test";
import pino from "pino";
import { parseConfig } from "../src/config/index.js";
import { startGateway, type OwnedProber } from "../src/gateway/gateway.js";
import { IcmpPermissionError } from "../src/probes/icmp-failure.js";
import { FakeClock } from "./helpers/fake-clock.js";

async function freeLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function getReadiness(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: "/readiness" }, (res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => (body += chunk.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

interface LogLine {
  readonly level: string;
  readonly msg: string;
  readonly component?: string;
  readonly code?: string;
}

const answering: OwnedProber<never> = {
  probe: () => Promise.resolve({ ok: true, durationMs: 1 }),
  close: () => undefined,
};

const cases = [
  {
    failing: "HTTPProbes",
    working: "ICMPProbes",
    error: new Error("Cannot find package 'undici' imported from /app/dist/probes/http.js"),
    line: "HTTP probes cannot run: Cannot find package 'undici' imported from /app/dist/probes/http.js",
    code: undefined,
  },
  {
    failing: "ICMPProbes",
    working: "HTTPProbes",
    error: new IcmpPermissionError("raw ICMP sockets are not permitted"),
    line: "ICMP probes cannot run: raw ICMP sockets are not permitted",
    code: "EGW_ERR_ICMP_PERMISSION",
  },
] as const;

describe("gateway: a prober that cannot start", () => {
  for (const { failing, working, error, line, code } of cases) {
    it(`${failing}: not ready with the reason, one error logged, the gateway serving`, async () => {
      const port = await freeLoopbackPort();
      const config = parseConfig(
        {
          ICMP_PROBE_IPS: "198.51.100.1",
          HTTP_PROBE_URLS: "http://198.51.100.1/",
          HEALTH_PORT: String(port),
          HEALTH_LISTEN_ADDRESS: "127.0.0.1",
        },
        { requirePodIp: false },
      );
      const logs: LogLine[] = [];
      // Levels as labels, as the gateway's own logger writes them.
      const log = pino(
        { formatters: { level: (label) => ({ level: label }) } },
        { write: (text: string) => logs.push(JSON.parse(text) as LogLine) },
      );
      const clock = new FakeClock();
      const fails = (): Promise<never> => Promise.reject(error);
      const gateway = await startGateway(config, {
        clock,
        log,
        socketCandidates: ["/nonexistent/egt-no-agent/socket"],
        createIcmpProber: failing === "ICMPProbes" ? fails : () => Promise.resolve(answering),
        createHttpProber: failing === "HTTPProbes" ? fails : () => Promise.resolve(answering),
      });
      try {
        await clock.advanceAsync(2_000, 10);
        const rows = gateway.readiness.evaluate().components;
        const failed = rows.find((c) => c.name === failing);
        assert.deepEqual(
          { ready: failed?.ready, detail: failed?.detail },
          { ready: false, detail: `cannot probe: ${error.message}` },
        );
        assert.equal(rows.find((c) => c.name === working)?.ready, true, "the other protocol probes on");

        const errors = logs.filter((l) => l.level === "error");
        assert.equal(errors.length, 1, JSON.stringify(errors));
        assert.deepEqual(
          { msg: errors[0]!.msg, component: errors[0]!.component, code: errors[0]!.code },
          { msg: line, component: failing, code },
        );

        const answer = await getReadiness(port);
        assert.equal(answer.status, 503);
        assert.match(answer.body, new RegExp(`${failing}\\s+\\S+\\s+not ready\\s+cannot probe: `));
      } finally {
        await gateway.stop();
      }
    });
  }
});
