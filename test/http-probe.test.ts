// The HTTP prober against real servers on loopback, and against a black-holed
// lab address inside a namespace of its own (LAB.md safety rule).
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { InvalidOptionError } from "../src/errors.js";
import {
  failureCode,
  parseTarget,
  statusFailure,
  type HttpFailureCode,
  type HttpProbeFailure,
} from "../src/probes/http-failure.js";
import { phaseAt, phaseTimings } from "../src/probes/http-phases.js";
import { createHttpProber, type HttpProbeResult } from "../src/probes/http.js";
import type { RunnerReport, RunnerSpec } from "./helpers/http-probe-runner.js";
import { Lab } from "../lab/netns.js";

const DEADLINE_MS = 500;
const MARGIN_MS = 300; // what "resolves by the deadline plus a small margin" allows here
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const RUNNER = fileURLToPath(new URL("./helpers/http-probe-runner.ts", import.meta.url));

// A self-signed certificate for IP:127.0.0.1, valid until 2126. Test-only key.
const CERT = `-----BEGIN CERTIFICATE-----
MIIBozCCAUqgAwIBAgIUKxRUGJ+PAFp17dek2dp6r+WVeY4wCgYIKoZIzj0EAwIw
HjEcMBoGA1UEAwwTZWdyZXNzLWdhdGV3YXkgdGVzdDAgFw0yNjExMjYxOTI4NTFa
GA8yMTI2MTEwMjE5Mjg1MVowHjEcMBoGA1UEAwwTZWdyZXNzLWdhdGV3YXkgdGVz
dDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABKQphCTO5sw/Z5QmkYm93ue9OLTz
G50cBuvfqmY4kBwy2Yd75bZF1/j9xypFrudRKaZrB3ayhJsFuAcrSjiaLZ6jZDBi
MB0GA1UdDgQWBBToZph20JRt4BbhfjrsyWZGK+z81jAfBgNVHSMEGDAWgBToZph2
0JRt4BbhfjrsyWZGK+z81jAPBgNVHRMBAf8EBTADAQH/MA8GA1UdEQQIMAaHBH8A
AAEwCgYIKoZIzj0EAwIDRwAwRAIgWoU9ZOmSfZHxpHOSVjnwOKukOz4wrEXoDRLV
x8t/7boCIBchqOTWnQDD4Dewnj0AIRsjlFzdM4rKS7quKyq8I7wc
-----END CERTIFICATE-----
`;
const KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgUQAm+iLxKOiRfcnN
RqL1EqkGTYp1Or7AQMK+15+p/RChRANCAASkKYQkzubMP2eUJpGJvd7nvTi08xud
HAbr36pmOJAcMtmHe+W2Rdf4/ccqRa7nUSmmawd2soSbBbgHK0o4mi2e
-----END PRIVATE KEY-----
`;

// ---- servers on 127.0.0.1, port 0, that count and track their connections ----

interface TestServer {
  readonly origin: string;
  readonly connections: () => number;
  /** Resolves once every connection accepted so far is closed; rejects after `withinMs`. */
  allClosed(withinMs?: number): Promise<void>;
  close(): Promise<void>;
}

const servers: TestServer[] = [];
after(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function serve(server: net.Server, scheme = "http", host = "127.0.0.1"): Promise<TestServer> {
  const open = new Map<net.Socket, Promise<void>>();
  let accepted = 0;
  server.on("connection", (socket: net.Socket) => {
    accepted++;
    open.set(
      socket,
      new Promise((resolve) =>
        socket.once("close", () => {
          open.delete(socket);
          resolve();
        }),
      ),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as net.AddressInfo;
  const handle: TestServer = {
    origin: `${scheme}://${net.isIPv6(host) ? `[${host}]` : host}:${port}`,
    connections: () => accepted,
    async allClosed(withinMs = 1_000) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${open.size} server-side connection(s) still open`)),
          withinMs,
        );
      });
      try {
        await Promise.race([Promise.all(open.values()), late]);
      } finally {
        clearTimeout(timer);
      }
    },
    async close() {
      for (const socket of open.keys()) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  servers.push(handle);
  return handle;
}

/** Answers every request with the status in its path, e.g. GET /503. */
function statusServer(): Promise<TestServer> {
  return serve(
    http.createServer((req, res) => {
      res.statusCode = Number(req.url?.slice(1)) || 200;
      res.end("probe me");
    }),
  );
}

/** Accepts and reads requests but never answers; reading is what lets it see the client's close. */
function silentServer(): Promise<TestServer> {
  return serve(net.createServer((socket) => socket.resume()));
}

/** Sends a response head, then one byte every 50 ms, forever. */
function tricklingServer(): Promise<TestServer> {
  return serve(
    http.createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.flushHeaders();
      const drip = setInterval(() => res.write("."), 50);
      res.on("close", () => clearInterval(drip));
    }),
  );
}

/** Answers with a 50 MiB body, written as fast as the client reads it. */
function bigBodyServer(): Promise<TestServer> {
  const total = 50 * 1024 * 1024;
  const chunk = Buffer.alloc(64 * 1024, "x");
  return serve(
    http.createServer((_req, res) => {
      res.writeHead(200, { "content-length": String(total) });
      let sent = 0;
      const pump = () => {
        while (sent < total && !res.destroyed) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once("drain", pump);
        }
        res.end();
      };
      pump();
    }),
  );
}

// ---- probing ----

/** A probe as the scheduler runs it: the signal is its one deadline. */
async function probeOnce(
  target: string,
  { deadlineMs = DEADLINE_MS, ...options }: { deadlineMs?: number; requireSuccessStatus?: boolean } = {},
): Promise<HttpProbeResult> {
  return createHttpProber(options)(target, AbortSignal.timeout(deadlineMs));
}

function assertFailure(
  result: HttpProbeResult,
  code: HttpFailureCode,
): asserts result is HttpProbeResult & { failure: HttpProbeFailure } {
  assert.equal(result.ok, false, `expected ${code}, got ${JSON.stringify(result)}`);
  assert.equal(result.failure?.code, code, JSON.stringify(result.failure));
  assert.doesNotMatch(result.failure.message, /\n/);
}

function assertWithinDeadline(result: HttpProbeResult, deadlineMs = DEADLINE_MS): void {
  assert.ok(result.durationMs < deadlineMs + MARGIN_MS, `took ${result.durationMs} ms`);
}

/** Runs the probe runner as a child (inside `netns` when given) and returns its reports. */
async function runProbesInChild(
  spec: RunnerSpec,
  options: { netns?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<RunnerReport[]> {
  const args = ["--import", "tsx", RUNNER, JSON.stringify(spec)];
  const child: ChildProcess = options.netns
    ? spawn("ip", ["netns", "exec", options.netns, process.execPath, ...args], {
        cwd: ROOT,
        env: options.env,
      })
    : spawn(process.execPath, args, { cwd: ROOT, env: options.env });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const killer = setTimeout(() => child.kill("SIGKILL"), 30_000); // a hung child must not hang the suite
  try {
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    assert.equal(code, 0, `runner failed: ${stderr}`);
  } finally {
    clearTimeout(killer);
  }
  return JSON.parse(stdout) as RunnerReport[];
}

// ---- behaviour ----

describe("http probe: what counts as a response", () => {
  it("counts a 200", async () => {
    const server = await statusServer();
    const result = await probeOnce(`${server.origin}/200`);
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.equal(result.detail.status, 200);
    assert.equal(result.failure, undefined);
    const { phases } = result.detail;
    assert.deepEqual(
      Object.keys(phases),
      ["connect", "processing", "transfer"],
      "no resolve for an IP, no tls",
    );
  });

  it("counts a 500 by default, as the commercial image does", async () => {
    const server = await statusServer();
    const result = await probeOnce(`${server.origin}/500`);
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.equal(result.detail.status, 500);
  });

  it("fails a 500 with STATUS when success is required", async () => {
    const server = await statusServer();
    const result = await probeOnce(`${server.origin}/500`, { requireSuccessStatus: true });
    assertFailure(result, "STATUS");
    assert.equal(result.detail.status, 500);
  });

  it("counts a 3xx when success is required, and does not follow it", async () => {
    const server = await serve(
      http.createServer((_req, res) => {
        res.writeHead(302, { location: "http://198.51.100.9/elsewhere" }).end();
      }),
    );
    const result = await probeOnce(`${server.origin}/`, { requireSuccessStatus: true });
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.equal(result.detail.status, 302);
    assert.equal(server.connections(), 1);
  });
});

describe("http probe: targets", () => {
  it("probes an IPv6 literal", async () => {
    const server = await serve(
      http.createServer((_req, res) => res.end("v6")),
      "http",
      "::1",
    );
    const result = await probeOnce(`${server.origin}/`);
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.equal(server.connections(), 1);
  });

  it("times the name lookup as its own phase when the target is a name", async () => {
    const server = await statusServer();
    const result = await probeOnce(`${server.origin.replace("127.0.0.1", "localhost")}/200`);
    assert.equal(result.ok, true, JSON.stringify(result));
    const { phases } = result.detail;
    assert.deepEqual(Object.keys(phases), ["resolve", "connect", "processing", "transfer"]);
    const sum = Object.values(phases).reduce((a, b) => a + b, 0);
    assert.ok(sum <= result.durationMs + 0.5, `phases ${sum} ms > probe ${result.durationMs} ms`);
  });
});

describe("http probe: one deadline for the whole exchange", () => {
  it("fails with HEADERS_TIMEOUT when the server accepts but never answers", async () => {
    const server = await silentServer();
    const result = await probeOnce(`${server.origin}/`);
    assertFailure(result, "HEADERS_TIMEOUT");
    assertWithinDeadline(result);
    assert.ok(result.durationMs >= DEADLINE_MS - 5, `gave up early: ${result.durationMs} ms`);
    await server.allClosed();
  });

  // A response head alone is not a completed response: the body must end or
  // reach the read bound by the deadline, else BODY_TIMEOUT (with the status seen).
  it("fails with BODY_TIMEOUT when the body trickles past the deadline", async () => {
    const server = await tricklingServer();
    const result = await probeOnce(`${server.origin}/`);
    assertFailure(result, "BODY_TIMEOUT");
    assert.equal(result.detail.status, 200);
    assertWithinDeadline(result);
    await server.allClosed();
  });

  it("fails with TLS_TIMEOUT when the TLS handshake never completes", async () => {
    const server = await silentServer();
    const result = await probeOnce(server.origin.replace("http:", "https:") + "/");
    assertFailure(result, "TLS_TIMEOUT");
    assertWithinDeadline(result);
    await server.allClosed();
  });

  it("settles promptly when its signal aborts early (shutdown)", async () => {
    const server = await silentServer();
    const probe = createHttpProber({});
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const result = await probe(`${server.origin}/`, controller.signal);
    assertFailure(result, "HEADERS_TIMEOUT");
    assert.ok(result.durationMs < 100 + MARGIN_MS, `took ${result.durationMs} ms`);
    await server.allClosed();
  });

  it("fails with CONNECT_TIMEOUT when the SYN is black-holed", async () => {
    // The target exists only in a namespace of ours whose firewall drops SYNs;
    // the prober runs in the peer namespace.
    const lab = new Lab("hp");
    try {
      const client = lab.ns("cli");
      const far = lab.ns("far");
      lab.link(client, "eth0", far, "eth0");
      client.ip("addr", "add", "198.51.100.1/24", "dev", "eth0");
      far.ip("addr", "add", "198.51.100.2/24", "dev", "eth0");
      far.exec(
        "nft",
        ["-f", "-"],
        `table inet egt_blackhole {
          chain input {
            type filter hook input priority 0; policy accept;
            tcp dport 80 tcp flags & (syn | ack) == syn drop;
          }
        }`,
      );
      const [report] = await runProbesInChild(
        { targets: ["http://198.51.100.2/"], deadlineMs: DEADLINE_MS },
        { netns: client.name },
      );
      assert.ok(report);
      assertFailure(report.result, "CONNECT_TIMEOUT");
      assertWithinDeadline(report.result);
      assert.deepEqual(report.openHandles, []);
    } finally {
      lab.destroy();
    }
  });
});

describe("http probe: the body is read up to a bound", () => {
  it("counts a 50 MiB body as soon as the bound is reached and closes the connection", async () => {
    const server = await bigBodyServer();
    const deadlineMs = 5_000;
    const result = await probeOnce(`${server.origin}/`, { deadlineMs });
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.equal(result.detail.status, 200);
    assert.ok(result.durationMs < deadlineMs, `took ${result.durationMs} ms`);
    await server.allClosed();
  });
});

describe("http probe: connection failures", () => {
  it("fails with CONNECTION_RESET when the server resets on accept", async () => {
    const server = await serve(net.createServer((socket) => socket.resetAndDestroy()));
    assertFailure(await probeOnce(`${server.origin}/`), "CONNECTION_RESET");
  });

  it("fails with CONNECTION_RESET when the server closes on accept without answering", async () => {
    const server = await serve(net.createServer((socket) => socket.destroy()));
    assertFailure(await probeOnce(`${server.origin}/`), "CONNECTION_RESET");
  });

  it("fails with CONNECT_REFUSED when nothing listens", async () => {
    const server = await serve(net.createServer());
    await server.close();
    const result = await probeOnce(`${server.origin}/`);
    assertFailure(result, "CONNECT_REFUSED");
    assert.match(result.failure.message, /127\.0\.0\.1:\d+/);
  });

  it("fails with TLS on a certificate it cannot verify", async () => {
    const server = await serve(
      https.createServer({ cert: CERT, key: KEY }, (_req, res) => res.end("secret")),
      "https",
    );
    const result = await probeOnce(`${server.origin}/`);
    assertFailure(result, "TLS");
    assert.match(result.failure.message, /self.signed/i);
  });

  it("counts an https response whose certificate is trusted", async () => {
    const server = await serve(
      https.createServer({ cert: CERT, key: KEY }, (_req, res) => res.end("hello")),
      "https",
    );
    const dir = mkdtempSync(join(tmpdir(), "egt-http-probe-"));
    try {
      writeFileSync(join(dir, "ca.pem"), CERT);
      const [report] = await runProbesInChild(
        { targets: [`${server.origin}/`], deadlineMs: 2_000 },
        { env: { ...process.env, NODE_EXTRA_CA_CERTS: join(dir, "ca.pem") } },
      );
      assert.ok(report);
      assert.equal(report.result.ok, true, JSON.stringify(report.result));
      assert.notEqual(report.result.detail.phases.tls, undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("http probe: fresh connections, no leaks", () => {
  it("opens a fresh connection per probe, even against a keep-alive server", async () => {
    const keepAlive = http.createServer((_req, res) => res.end("again"));
    keepAlive.keepAliveTimeout = 60_000; // 60 s: a pooled client would reuse the first connection
    const server = await serve(keepAlive);
    const probe = createHttpProber({});
    for (let i = 1; i <= 3; i++) {
      const result = await probe(`${server.origin}/`, AbortSignal.timeout(DEADLINE_MS));
      assert.equal(result.ok, true);
      await server.allClosed();
      assert.equal(server.connections(), i);
    }
  });

  it("leaves no client socket behind, whatever the outcome", async () => {
    const ok = await statusServer();
    const silent = await silentServer();
    const reset = await serve(net.createServer((socket) => socket.resetAndDestroy()));
    const trickling = await tricklingServer();
    const big = await bigBodyServer();
    const refused = await serve(net.createServer());
    await refused.close();
    const reports = await runProbesInChild({
      targets: [ok, silent, trickling, big, reset, refused].map((server) => `${server.origin}/`),
      deadlineMs: DEADLINE_MS,
    });
    assert.deepEqual(
      reports.map((r) => r.result.failure?.code ?? "ok"),
      ["ok", "HEADERS_TIMEOUT", "BODY_TIMEOUT", "ok", "CONNECTION_RESET", "CONNECT_REFUSED"],
    );
    for (const report of reports) assert.deepEqual(report.openHandles, [], JSON.stringify(report.result));
  });
});

describe("http probe: pure core", () => {
  it("rejects bad options with the value named", () => {
    assert.throws(() => createHttpProber({ bodyLimitBytes: 0 }), InvalidOptionError);
    assert.throws(() => createHttpProber({ bodyLimitBytes: -1 }), {
      code: "EGW_ERR_INVALID_OPTION",
      name: "InvalidOptionError",
      message: /bodyLimitBytes.*-1/,
    });
    assert.throws(
      () => createHttpProber({ requireSuccessStatus: "yes" as never }),
      /requireSuccessStatus.*yes/,
    );
  });

  it("turns a bad target into an INVALID_TARGET failure, not an exception", async () => {
    assert.equal((parseTarget("ftp://example.test/") as { code: string }).code, "INVALID_TARGET");
    assert.equal((parseTarget("not a url") as { code: string }).code, "INVALID_TARGET");
    assertFailure(await probeOnce("nope"), "INVALID_TARGET");
  });

  it("names the phase from the marks reached", () => {
    assert.equal(phaseAt({ start: 0 }, true), "connect");
    assert.equal(phaseAt({ start: 0, tcp: 1 }, true), "tls");
    assert.equal(phaseAt({ start: 0, tcp: 1 }, false), "headers");
    assert.equal(phaseAt({ start: 0, tcp: 1, tls: 2, headers: 3 }, true), "body");
    assert.deepEqual(phaseTimings({ start: 0, tcp: 1, headers: 4, body: 10 }), {
      connect: 1,
      processing: 3,
      transfer: 6,
    });
    // A name resolved first, then TLS: processing starts once the handshake is done.
    assert.deepEqual(phaseTimings({ start: 0, lookup: 2, tcp: 3, tls: 5.5, headers: 9, body: 10 }), {
      resolve: 2,
      connect: 1,
      tls: 2.5,
      processing: 3.5,
      transfer: 1,
    });
    // A failure in the TLS handshake: only the phases completed.
    assert.deepEqual(phaseTimings({ start: 0, tcp: 1 }), { connect: 1 });
  });

  it("maps error codes to failure codes by phase", () => {
    const cases: [string, "connect" | "tls" | "headers" | "body", string][] = [
      ["ENOTFOUND", "connect", "DNS"],
      ["EAI_AGAIN", "connect", "DNS"],
      ["ECONNREFUSED", "connect", "CONNECT_REFUSED"],
      ["EHOSTUNREACH", "connect", "UNREACHABLE"],
      ["ECONNRESET", "tls", "CONNECTION_RESET"],
      ["UND_ERR_SOCKET", "body", "CONNECTION_RESET"],
      ["DEPTH_ZERO_SELF_SIGNED_CERT", "tls", "TLS"],
      ["ERR_TLS_CERT_ALTNAME_INVALID", "tls", "TLS"],
      ["ERR_SSL_WRONG_VERSION_NUMBER", "tls", "TLS"],
      ["HPE_INVALID_CONSTANT", "headers", "PROTOCOL"],
      ["", "headers", "ERROR"],
    ];
    for (const [code, phase, expected] of cases)
      assert.equal(failureCode(code, phase), expected, `${code}/${phase}`);
  });

  it("lets any status pass by default and only 2xx/3xx when required", () => {
    for (const status of [200, 302, 404, 500]) assert.equal(statusFailure(status, false, "h"), undefined);
    assert.equal(statusFailure(204, true, "h"), undefined);
    assert.equal(statusFailure(399, true, "h"), undefined);
    assert.equal(statusFailure(404, true, "h")?.code, "STATUS");
    assert.equal(statusFailure(500, true, "h")?.code, "STATUS");
  });
});
