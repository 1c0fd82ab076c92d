import assert from "node:assert/strict";
import { request } from "node:http";
import { describe, it } from "node:test";
import { Readiness } from "../src/readiness/readiness.js";
import { buildHealthApp } from "../src/gateway/health-app.js";
import { startHealthServer, type HealthServer } from "../src/gateway/server.js";
import { renderMetrics } from "../src/gateway/metrics.js";
import { RuntimeMonitor } from "../src/gateway/runtime.js";
import { ProbeGroup } from "../src/probes/group.js";
import type { HttpExchange } from "../src/probes/http-phases.js";
import { FakeClock } from "./helpers/fake-clock.js";

function app() {
  const clock = new FakeClock();
  const readiness = new Readiness(clock);
  const icmp = readiness.register("ICMPProbes", { timeoutMs: 15_000 });
  const built = buildHealthApp({ readiness: () => readiness.evaluate(), metrics: () => "m 1\n" });
  return { clock, readiness, icmp, app: built };
}

/** The real server on a free loopback port, answering from `readiness`. */
function serve(readiness: Readiness, metrics = ""): Promise<HealthServer> {
  return startHealthServer({
    host: "127.0.0.1",
    port: 0,
    readiness: () => readiness.evaluate(),
    metrics: () => metrics,
  });
}

describe("health server routes", () => {
  it("answers /readiness 503 with a text table while not ready, 200 once ready", async () => {
    const { app: server, icmp } = app();
    const notReady = await server.inject({ method: "GET", url: "/readiness" });
    assert.equal(notReady.statusCode, 503);
    assert.match(notReady.headers["content-type"] as string, /^text\/plain/);
    assert.match(notReady.body, /^COMPONENT\s+TIMEOUT\s+READINESS\s+DETAIL\nICMPProbes\s+15s\s+not ready/);
    icmp.report(true, "1 of 1 targets answering");
    const ready = await server.inject({ method: "GET", url: "/readiness" });
    assert.equal(ready.statusCode, 200);
    assert.match(ready.body, /ICMPProbes\s+15s\s+ready\s+1 of 1 targets answering/);
  });

  it("answers HEAD /readiness with the status and no body", async () => {
    const { app: server, icmp } = app();
    assert.equal((await server.inject({ method: "HEAD", url: "/readiness" })).statusCode, 503);
    icmp.report(true);
    const head = await server.inject({ method: "HEAD", url: "/readiness" });
    assert.equal(head.statusCode, 200);
    assert.equal(head.body, "");
  });

  it("answers JSON when the client asks for it", async () => {
    const { app: server } = app();
    const res = await server.inject({
      method: "GET",
      url: "/readiness",
      headers: { accept: "application/json" },
    });
    assert.equal(res.statusCode, 503);
    assert.match(res.headers["content-type"] as string, /^application\/json/);
    assert.deepEqual(res.json(), {
      ready: false,
      terminating: false,
      components: [{ name: "ICMPProbes", timeoutSeconds: 15, ready: false, detail: "starting" }],
    });
  });

  it("reflects staleness at the time of the request", async () => {
    const { app: server, icmp, clock } = app();
    icmp.report(true);
    assert.equal((await server.inject({ url: "/readiness" })).statusCode, 200);
    clock.advance(15_000);
    const res = await server.inject({ url: "/readiness" });
    assert.equal(res.statusCode, 503);
    assert.match(res.body, /not ready/);
  });

  it("serves /liveness, /metrics and 404 for anything else", async () => {
    const { app: server } = app();
    assert.equal((await server.inject({ url: "/liveness" })).statusCode, 200);
    const metrics = await server.inject({ url: "/metrics" });
    assert.equal(metrics.statusCode, 200);
    assert.match(metrics.headers["content-type"] as string, /version=0\.0\.4/);
    assert.equal(metrics.body, "m 1\n");
    for (const url of ["/", "/ready", "/readiness/x", "/metrics2"]) {
      assert.equal((await server.inject({ url })).statusCode, 404, url);
    }
    assert.equal((await server.inject({ method: "POST", url: "/readiness" })).statusCode, 404);
  });

  // The schema compilers load on first use (start-up time); a route with
  // schemas must still be validated and serialized as fastify does.
  it("still validates and serializes a route that declares schemas", async () => {
    const { app: server } = app();
    server.post(
      "/echo",
      {
        schema: {
          body: { type: "object", required: ["n"], properties: { n: { type: "integer" } } },
          response: { 200: { type: "object", properties: { n: { type: "integer" } } } },
        },
      },
      (request) => ({ ...(request.body as { n: number }), secret: "not in the schema" }),
    );
    const bad = await server.inject({ method: "POST", url: "/echo", payload: { n: "x" } });
    assert.equal(bad.statusCode, 400);
    assert.match(bad.json<{ message: string }>().message, /body\/n must be integer/);
    const good = await server.inject({ method: "POST", url: "/echo", payload: { n: 7 } });
    assert.equal(good.statusCode, 200);
    assert.deepEqual(good.json(), { n: 7 }, "the response schema drops the extra field");
  });
});

describe("metrics exposition", () => {
  it("has per-target success and duration, and per-component readiness", async () => {
    const clock = new FakeClock();
    const readiness = new Readiness(clock);
    const component = readiness.register("ICMPProbes", { timeoutMs: 3_000 });
    const group = new ProbeGroup({
      protocol: "icmp",
      targets: ["198.51.100.1", "2001:db8::1"],
      intervalMs: 1_000,
      timeoutMs: 3_000,
      clock,
      component,
      random: () => 0,
      prober: (target) =>
        Promise.resolve(
          target === "198.51.100.1"
            ? { ok: true, durationMs: 2.5 }
            : { ok: false, durationMs: 1_000, failure: { code: "TIMEOUT", message: "no reply" } },
        ),
    });
    group.start();
    await clock.advanceAsync(10, 1);
    const text = renderMetrics({
      groups: [{ protocol: "icmp", group }],
      readiness: () => readiness.evaluate(),
      transitions: new Map([["ICMPProbes", 1]]),
      startTimeSeconds: 1,
    });
    await group.stop();
    const lines = text.split("\n");
    for (const expected of [
      'egress_gateway_probe_success{protocol="icmp",target="198.51.100.1"} 1',
      'egress_gateway_probe_success{protocol="icmp",target="2001:db8::1"} 0',
      'egress_gateway_probe_duration_seconds{protocol="icmp",target="198.51.100.1"} 0.0025',
      'egress_gateway_probes_total{protocol="icmp",target="2001:db8::1",result="failure"} 1',
      'egress_gateway_component_ready{component="ICMPProbes"} 1',
      'egress_gateway_component_transitions_total{component="ICMPProbes"} 1',
      "egress_gateway_ready 1",
    ]) {
      assert.ok(lines.includes(expected), `missing: ${expected}\n${text}`);
    }
    // Every sample belongs to a family declared with HELP and TYPE.
    const declared = new Set(lines.filter((l) => l.startsWith("# TYPE ")).map((l) => l.split(" ")[2]));
    for (const sample of lines.filter((l) => l && !l.startsWith("#"))) {
      assert.ok(declared.has(sample.split(/[{ ]/)[0]), sample);
    }
  });
});

describe("runtime metrics", () => {
  it("exposes fds, heap, handles and event-loop delay under prom-client's names, a fresh delay window per scrape", async () => {
    const monitor = new RuntimeMonitor();
    try {
      const readiness = new Readiness(new FakeClock());
      const render = (): Map<string, number> =>
        new Map(
          renderMetrics({
            groups: [],
            readiness: () => readiness.evaluate(),
            transitions: new Map(),
            startTimeSeconds: 1,
            runtime: () => monitor.sample(),
          })
            .split("\n")
            .filter((line) => line && !line.startsWith("#"))
            .map((line) => [
              line.slice(0, line.lastIndexOf(" ")),
              Number(line.slice(line.lastIndexOf(" ") + 1)),
            ]),
        );
      await new Promise((resolve) => setTimeout(resolve, 30));
      const blocked = performance.now();
      while (performance.now() - blocked < 150); // one 150 ms stall of the event loop
      await new Promise((resolve) => setTimeout(resolve, 30));
      const first = render();
      assert.ok(Number.isInteger(first.get("process_open_fds")) && first.get("process_open_fds")! > 2);
      assert.ok(first.get("nodejs_heap_size_used_bytes")! > 1e6);
      assert.ok(first.get("nodejs_heap_size_total_bytes")! >= first.get("nodejs_heap_size_used_bytes")!);
      const ofFamily = (name: string): number[] =>
        [...first].filter(([key]) => key.startsWith(`${name}{type="`)).map(([, value]) => value);
      const resources = ofFamily("nodejs_active_resources").reduce((sum, n) => sum + n, 0);
      assert.ok(resources >= 1, `the test's own pipes at least: ${[...first.keys()].join(" ")}`);
      assert.ok(ofFamily("nodejs_active_handles").length >= 1, "handles by type");
      // `_total` is for counters: promtool refuses gauges named so.
      assert.deepEqual(
        [...first.keys()].filter((key) => /^nodejs_\w+_total\b/.test(key)),
        [],
      );
      assert.ok(
        first.get("nodejs_eventloop_lag_max_seconds")! >= 0.1,
        `the stall shows: ${[...first].join(" ")}`,
      );
      await new Promise((resolve) => setTimeout(resolve, 60));
      const second = render();
      assert.ok(
        second.get("nodejs_eventloop_lag_max_seconds")! < 0.1,
        "the stall was in the previous window",
      );
    } finally {
      monitor.close();
    }
  });
});

describe("metrics exposition: HTTP phases", () => {
  it("has the phases of each URL's last probe, as blackbox_exporter's probe_http_duration_seconds", async () => {
    const clock = new FakeClock();
    const readiness = new Readiness(clock);
    const component = readiness.register("HTTPProbes", { timeoutMs: 3_000 });
    const secure = "https://198.51.100.1/";
    const plain = "http://198.51.100.2/";
    const group = new ProbeGroup<HttpExchange>({
      protocol: "http",
      targets: [secure, plain],
      intervalMs: 1_000,
      timeoutMs: 3_000,
      clock,
      component,
      random: () => 0,
      prober: (target) =>
        Promise.resolve(
          target === secure
            ? {
                ok: true,
                durationMs: 9,
                detail: { status: 200, phases: { connect: 1.2, tls: 3, processing: 4.5, transfer: 0.3 } },
              }
            : {
                ok: false,
                durationMs: 1_000,
                failure: { code: "HEADERS_TIMEOUT", message: "timed out" },
                detail: { phases: { connect: 0.4 } },
              },
        ),
    });
    group.start();
    await clock.advanceAsync(10, 1);
    const text = renderMetrics({
      groups: [{ protocol: "http", group }],
      httpGroup: group,
      readiness: () => readiness.evaluate(),
      transitions: new Map(),
      startTimeSeconds: 1,
    });
    await group.stop();
    const phaseLines = text
      .split("\n")
      .filter((l) => l.startsWith("egress_gateway_probe_http_phase_duration_seconds"));
    assert.deepEqual(phaseLines, [
      `egress_gateway_probe_http_phase_duration_seconds{target="${secure}",phase="connect"} 0.0012`,
      `egress_gateway_probe_http_phase_duration_seconds{target="${secure}",phase="tls"} 0.003`,
      `egress_gateway_probe_http_phase_duration_seconds{target="${secure}",phase="processing"} 0.0045`,
      `egress_gateway_probe_http_phase_duration_seconds{target="${secure}",phase="transfer"} 0.0003`,
      `egress_gateway_probe_http_phase_duration_seconds{target="${plain}",phase="connect"} 0.0004`,
    ]);
    assert.match(text, /^# TYPE egress_gateway_probe_http_phase_duration_seconds gauge$/m);
  });
});

describe("health server sockets", () => {
  it("closes idle keep-alive connections within the bound instead of fastify's 72 s", async () => {
    const readiness = new Readiness(new FakeClock());
    const server = await serve(readiness);
    const headers = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port: server.address.port, path: "/readiness", agent: false });
      req.setHeader("connection", "keep-alive");
      req.on("response", (res) => {
        res.resume();
        resolve(res.headers);
      });
      req.on("error", reject);
      req.end();
    });
    assert.match(String(headers["keep-alive"]), /timeout=5/);
    const started = performance.now();
    await server.close(1_000);
    assert.ok(performance.now() - started < 1_500);
  });
});

interface Answered {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request over a real socket, so that it meets the server's fast path. */
function fetchRaw(
  port: number,
  path: string,
  method = "GET",
  headers: Record<string, string> = {},
): Promise<Answered> {
  return new Promise((resolve, reject) => {
    const options = {
      host: "127.0.0.1",
      port,
      path,
      method,
      headers: { connection: "keep-alive", ...headers },
    };
    const req = request({ ...options, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => {
        req.destroy();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
    });
    req.on("error", reject);
    req.end();
  });
}

describe("health server fast path for the polled routes", () => {
  const ANSWER_HEADERS = ["content-type", "cache-control", "content-length"];
  const cases: { method: "GET" | "HEAD"; url: string; headers?: Record<string, string> }[] = [
    { method: "GET", url: "/readiness" },
    { method: "HEAD", url: "/readiness" },
    { method: "GET", url: "/readiness", headers: { accept: "application/json" } },
    { method: "GET", url: "/readiness?verbose=1" },
    { method: "GET", url: "/liveness" },
    { method: "HEAD", url: "/liveness" },
  ];

  it("answers GET and HEAD of /readiness and /liveness exactly as the fastify routes do", async () => {
    const clock = new FakeClock();
    const readiness = new Readiness(clock);
    const icmp = readiness.register("ICMPProbes", { timeoutMs: 15_000 });
    const options = { readiness: () => readiness.evaluate(), metrics: () => "m 1\n" };
    const injected = buildHealthApp(options);
    const server = await startHealthServer({ host: "127.0.0.1", port: 0, ...options });
    try {
      for (const ready of [false, true]) {
        if (ready) icmp.report(true, "1 of 1 targets answering");
        for (const c of cases) {
          const label = `${c.method} ${c.url} ${JSON.stringify(c.headers ?? {})} ready=${ready}`;
          const viaSocket = await fetchRaw(server.address.port, c.url, c.method, c.headers);
          const viaFastify = await injected.inject({
            method: c.method,
            url: c.url,
            headers: c.headers ?? {},
          });
          assert.equal(viaSocket.status, viaFastify.statusCode, label);
          assert.equal(viaSocket.body, viaFastify.body, label);
          for (const name of ANSWER_HEADERS) {
            assert.equal(
              String(viaSocket.headers[name]),
              String(viaFastify.headers[name]),
              `${label}: ${name}`,
            );
          }
          assert.match(String(viaSocket.headers["keep-alive"]), /timeout=5/, label);
        }
      }
    } finally {
      await server.close(1_000);
      await injected.close();
    }
  });

  it("follows readiness at the time of each request", async () => {
    const clock = new FakeClock();
    const readiness = new Readiness(clock);
    const icmp = readiness.register("ICMPProbes", { timeoutMs: 15_000 });
    const server = await serve(readiness);
    try {
      assert.equal((await fetchRaw(server.address.port, "/readiness")).status, 503);
      icmp.report(true);
      assert.equal((await fetchRaw(server.address.port, "/readiness")).status, 200);
      clock.advance(15_000);
      const stale = await fetchRaw(server.address.port, "/readiness");
      assert.equal(stale.status, 503);
      assert.match(stale.body, /not ready/);
      readiness.terminate();
      assert.match((await fetchRaw(server.address.port, "/readiness")).body, /Termination/);
      assert.equal(
        (await fetchRaw(server.address.port, "/liveness")).status,
        200,
        "liveness stays 200 while draining",
      );
    } finally {
      await server.close(1_000);
    }
  });

  it("leaves every other request to fastify", async () => {
    const readiness = new Readiness(new FakeClock());
    const server = await serve(readiness, "m 1\n");
    try {
      const port = server.address.port;
      assert.equal((await fetchRaw(port, "/readiness", "POST")).status, 404);
      for (const path of ["/readiness/", "/readiness/x", "/readinessx", "/liveness/", "/"]) {
        const res = await fetchRaw(port, path);
        assert.equal(res.status, 404, path);
        assert.equal(res.body, `not found: GET ${path}\n`, path);
      }
      const metrics = await fetchRaw(port, "/metrics");
      assert.equal(metrics.status, 200);
      assert.equal(metrics.body, "m 1\n");
    } finally {
      await server.close(1_000);
    }
  });
});
