// Flow logs through the built gateway: init and start-gateway.sh in the lab's
// gateway pod with FLOW_LOGS=true, real TCP and UDP from the client pod to the
// external host. Each finished connection is one line whose fields are the
// connection the test made; the gateway's own probe traffic is not logged;
// FLOW_LOGS_RATE drops and counts what is over it.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { metricsOf } from "../lab/gateway-health.js";
import { describeInit, runInit, startGateway } from "../lab/gateway-pod.js";
import type { NamespaceHttpClient } from "../lab/namespace-http.js";
import { ADDR, buildPodLab, type PodLab } from "../lab/pod-lab.js";
import type { GatewayProcess, LogLine } from "../lab/gateway-process.js";

const PEER_PORT = 9400;
const REPLY_BYTES = 5_000;
const SEND_BYTES = 1_000;
const SNAT_PORTS = { first: 30_000, last: 30_999 };
const METRICS = "http://127.0.0.1:8080/metrics";
// An expired entry's DESTROY comes when the kernel's conntrack collector next
// runs, which it schedules from the table's timeouts: up to 60 s late on a
// quiet machine (GC_SCAN_INTERVAL_MAX), ~10 s seen in CI.
const EXPIRY_MS = 65_000;

interface Exchange {
  readonly localPort: number;
  readonly openedAt: number;
  readonly closedAt: number;
  readonly received: number;
}

/** The lab with init done, the peer server up and entries expiring within seconds (TIME_WAIT 2 s, UDP 2 s). */
async function flowLab(tag: string): Promise<PodLab> {
  const pod = buildPodLab(tag);
  try {
    const init = await runInit(pod, { SNAT_PORT_RANGE: `${SNAT_PORTS.first}-${SNAT_PORTS.last}` });
    assert.equal(init.code, 0, describeInit(init));
    // Per-namespace timeouts: the kernel's own expiry, only sooner than 120 s / 30 s.
    pod.gateway.sysctl("net.netfilter.nf_conntrack_tcp_timeout_time_wait", "2");
    pod.gateway.sysctl("net.netfilter.nf_conntrack_udp_timeout", "2");
    pod.routeClientViaGateway(true);
    await pod.lab.startProgram(pod.external, "flow-peer.ts", [
      ...["server", "--host", ADDR.external.v4, "--port", String(PEER_PORT)],
      ...["--reply-bytes", String(REPLY_BYTES)],
    ]);
    return pod;
  } catch (error) {
    pod.destroy();
    throw error;
  }
}

async function exchanges(pod: PodLab, args: readonly string[]): Promise<Exchange[]> {
  const run = await pod.lab.run(pod.client, process.execPath, [
    ...["--import", "tsx", "lab/flow-peer.ts", ...args],
    ...["--host", ADDR.external.v4, "--port", String(PEER_PORT), "--send-bytes", String(SEND_BYTES)],
  ]);
  assert.equal(run.code, 0, run.stderr);
  return run.stdout
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as Exchange);
}

const flowLines = (gateway: GatewayProcess): LogLine[] =>
  gateway.logs.filter((l) => l.name === "egress-gateway.flows");

function startFlowGateway(pod: PodLab, env: Record<string, string>): GatewayProcess {
  return startGateway(pod, {
    FLOW_LOGS: "true",
    HEALTH_LISTEN_ADDRESS: "127.0.0.1",
    // The gateway's own traffic to the same host: must never show up as a flow.
    HTTP_PROBE_URLS: `http://${ADDR.external.v4}:${PEER_PORT}/`,
    HTTP_PROBE_INTERVAL: "200ms",
    HTTP_PROBE_TIMEOUT: "1s",
    ...env,
  });
}

describe("flow logs through the gateway pod", () => {
  let pod: PodLab;
  let gateway: GatewayProcess;
  let http: NamespaceHttpClient;

  before(async () => {
    pod = await flowLab("fl");
    gateway = startFlowGateway(pod, {});
    await gateway.waitForLog((l) => l.msg.startsWith("flow logs on"), 30_000);
    http = await pod.httpClient(pod.gateway);
    // The listeners subscribe a moment after the process starts them.
    await new Promise((resolve) => setTimeout(resolve, 500));
  });

  after(async () => {
    await gateway?.kill();
    pod?.destroy();
  });

  it("logs a finished TCP connection with the client, destination, SNAT address, counters and times", async () => {
    const [tcp] = await exchanges(pod, ["tcp", "--local-port", "41001", "--hold-ms", "1200"]);
    assert.ok(tcp && tcp.received >= REPLY_BYTES, `received ${tcp?.received}`);
    const line = await gateway.waitForLog(
      (l) => l.name === "egress-gateway.flows" && l.clientPort === 41001,
      EXPIRY_MS,
    );
    assert.equal(line.msg, "flow");
    assert.equal(line.level, "info");
    assert.equal(line.protocol, "tcp");
    assert.equal(line.family, 4);
    assert.equal(line.clientIp, ADDR.client.v4);
    assert.equal(line.destinationIp, ADDR.external.v4);
    assert.equal(line.destinationPort, PEER_PORT);
    assert.equal(line.snatIp, ADDR.gateway.v4);
    const snatPort = line.snatPort as number;
    assert.ok(snatPort >= SNAT_PORTS.first && snatPort <= SNAT_PORTS.last, `SNAT port ${snatPort}`);
    // Bytes count IP and TCP headers too: at least the payload, at most 100 bytes a packet more.
    const [bytesOut, packetsOut] = [line.bytesOut as number, line.packetsOut as number];
    const [bytesIn, packetsIn] = [line.bytesIn as number, line.packetsIn as number];
    assert.ok(bytesOut >= SEND_BYTES && bytesOut <= SEND_BYTES + 100 * packetsOut, `out ${bytesOut}`);
    assert.ok(bytesIn >= REPLY_BYTES && bytesIn <= REPLY_BYTES + 100 * packetsIn, `in ${bytesIn}`);
    assert.ok(packetsOut >= 4 && packetsIn >= 4, `packets ${packetsOut}/${packetsIn}`);
    // The end is the close, not the entry's expiry 2 s later; the start is to the second.
    const start = Date.parse(line.start as string);
    const end = Date.parse(line.end as string);
    assert.ok(Math.abs(end - tcp.closedAt) < 500, `end ${line.end as string} vs closed ${tcp.closedAt}`);
    assert.ok(start <= tcp.openedAt && tcp.openedAt - start < 1_000, `start ${line.start as string}`);
    // start and end are printed cut to the millisecond, the duration rounded
    // from microseconds: they agree within 1 ms (compared in whole ms, as 1.435
    // - 1.434 is a little over 0.001 in floating point).
    const duration = line.durationSeconds as number;
    const apartMs = Math.abs(Math.round(duration * 1000) - (end - start));
    assert.ok(apartMs <= 1, `duration ${duration}, start ${line.start as string}, end ${line.end as string}`);
    assert.ok(duration >= 1.2);
    assert.equal(line.state, "TIME_WAIT");
  });

  it("logs a UDP exchange, and never the gateway's own probe traffic", async () => {
    const [udp] = await exchanges(pod, ["udp", "--local-port", "41002"]);
    assert.ok(udp);
    const line = await gateway.waitForLog(
      (l) => l.name === "egress-gateway.flows" && l.clientPort === 41002,
      EXPIRY_MS,
    );
    assert.equal(line.protocol, "udp");
    assert.equal(line.clientIp, ADDR.client.v4);
    assert.equal(line.destinationPort, PEER_PORT);
    assert.equal(line.snatIp, ADDR.gateway.v4);
    assert.equal(line.packetsOut, 1);
    assert.equal(line.packetsIn, 1);
    assert.equal(line.bytesOut, SEND_BYTES + 28);
    for (const flow of flowLines(gateway)) assert.equal(flow.clientIp, ADDR.client.v4, JSON.stringify(flow));
    const metrics = await metricsOf(http, METRICS);
    assert.equal(metrics.get("egress_gateway_flow_logs_total"), flowLines(gateway).length);
    assert.equal(metrics.get('egress_gateway_flow_logs_dropped_total{reason="rate_limit"}'), 0);
    assert.equal(metrics.get("egress_gateway_flow_log_listeners_up"), 3);
  });

  it("logs every connection of a burst that ends at once", async () => {
    // 150 DESTROY events at once fit in the listener's socket (about 166 at
    // the host's default buffer) even if it gets no CPU meanwhile.
    const from = gateway.logs.length;
    const before = await metricsOf(http, METRICS);
    const made = await exchanges(pod, ["tcp", "--count", "150"]);
    deleteEntries(pod);
    const ports = new Set(made.map((m) => m.localPort));
    const logged = await linesFor(gateway, from, ports, 20_000);
    assert.equal(logged, ports.size, `${logged} of ${ports.size} logged`);
    const after = await metricsOf(http, METRICS);
    assert.equal(after.get(KERNEL_DROPPED), before.get(KERNEL_DROPPED));
  });

  it("counts the connections whose events the kernel dropped, and warns", async () => {
    const listener = destroyListener(pod, gateway);
    const from = gateway.logs.length;
    const before = (await metricsOf(http, METRICS)).get(KERNEL_DROPPED) ?? 0;
    // A listener that gets no CPU: its socket fills and the kernel drops the rest.
    process.kill(listener, "SIGSTOP");
    let made: Exchange[];
    try {
      made = await exchanges(pod, ["tcp", "--count", "400"]);
      deleteEntries(pod);
    } finally {
      process.kill(listener, "SIGCONT");
    }
    const ports = new Set(made.map((m) => m.localPort));
    const warning = await gateway.waitForLog(
      (l) => l.msg.startsWith("flow logs:") && (l.kernelDropped as number) > 0,
      10_000,
    );
    assert.match(warning.msg, /finished connections not logged: \d+ dropped by the kernel/);
    // Every connection is either logged or counted: none is lost silently.
    const logged = await linesFor(gateway, from, ports, 5_000);
    const dropped = ((await metricsOf(http, METRICS)).get(KERNEL_DROPPED) ?? 0) - before;
    assert.ok(dropped > 0 && logged < ports.size, `logged ${logged}, dropped ${dropped}`);
    assert.ok(logged + dropped >= ports.size, `logged ${logged} + dropped ${dropped} < ${ports.size}`);
    // The pod's own connections (its HTTP probe every 200 ms, these /metrics
    // requests) may be among the drops while the listener is frozen; the close
    // listeners' drops (several a connection) must not be.
    assert.ok(logged + dropped <= ports.size + 100, `logged ${logged} + dropped ${dropped}`);
  });

  it("restarts a listener that dies, with backoff, and keeps logging", async () => {
    process.kill(destroyListener(pod, gateway), "SIGKILL");
    await gateway.waitForLog((l) => /conntrack event listener exited/.test(l.msg), 5_000);
    await new Promise((resolve) => setTimeout(resolve, 1_500)); // the first backoff is 1 s
    // Deleting the entry is a DESTROY now, where expiry waits for the kernel's
    // collector. A DESTROY before the new listener has subscribed is not seen,
    // so a few connections, each on its own port, until one is logged.
    let logged: LogLine | undefined;
    for (let port = 41003; port < 41013 && logged === undefined; port += 1) {
      await exchanges(pod, ["tcp", "--local-port", String(port)]);
      deleteEntry(pod, port);
      logged = await gateway
        .waitForLog((l) => l.name === "egress-gateway.flows" && l.clientPort === port, 3_000)
        .catch(() => undefined);
    }
    assert.ok(logged, "no flow logged after the listener restarted");
    const metrics = await metricsOf(http, METRICS);
    assert.equal(metrics.get("egress_gateway_flow_log_listener_restarts_total"), 1);
  });
});

const KERNEL_DROPPED = 'egress_gateway_flow_logs_dropped_total{reason="kernel_buffer"}';

/** Deletes the entries toward the peer: their DESTROY events come all at once. */
function deleteEntries(pod: PodLab): void {
  try {
    pod.gateway.exec("conntrack", ["-D", "-p", "tcp", "--dport", String(PEER_PORT)]);
  } catch {
    // none left: expired and collected already
  }
}

/** Flow lines since `from` for these client ports once their count stops growing (or after timeoutMs). */
async function linesFor(
  gateway: GatewayProcess,
  from: number,
  ports: ReadonlySet<number>,
  timeoutMs: number,
): Promise<number> {
  const count = (): number =>
    gateway.logs
      .slice(from)
      .filter(
        (l) =>
          l.name === "egress-gateway.flows" &&
          l.destinationPort === PEER_PORT &&
          ports.has(l.clientPort as number),
      ).length;
  const until = performance.now() + timeoutMs;
  let last = -1;
  for (let quiet = 0; performance.now() < until && quiet < 1_000;) {
    const now = count();
    if (now === ports.size) return now;
    quiet = now === last ? quiet + 200 : 0;
    last = now;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return count();
}

/** The gateway's DESTROY listener (a child of the gateway process). */
function destroyListener(pod: PodLab, gateway: GatewayProcess): number {
  const listeners = pod.gateway
    .exec("pgrep", ["-f", "conntrack -E -e DESTROY"])
    .trim()
    .split("\n")
    .map(Number)
    .filter((pid) => gateway.child.pid !== undefined && parentOf(pid) === gateway.child.pid);
  assert.equal(listeners.length, 1, "one DESTROY listener, a child of the gateway");
  return listeners[0]!;
}

/** `conntrack -D` for the client's port: exit 1 when the entry is already gone is fine. */
function deleteEntry(pod: PodLab, clientPort: number): void {
  try {
    pod.gateway.exec("conntrack", ["-D", "-p", "tcp", "--orig-port-src", String(clientPort)]);
  } catch {
    // expired and collected already: its DESTROY was sent then
  }
}

function parentOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return -1;
  }
}

describe("flow logs rate limit", () => {
  let pod: PodLab;
  let gateway: GatewayProcess;

  before(async () => {
    pod = await flowLab("fr");
  });

  after(async () => {
    await gateway?.kill();
    pod?.destroy();
  });

  it("FLOW_LOGS_RATE=1: a burst of 12 connections logs the bucket's 2 and about 1 a second, counts the rest", async () => {
    gateway = startFlowGateway(pod, { FLOW_LOGS_RATE: "1", HTTP_PROBE_URLS: "" });
    await gateway.waitForLog((l) => l.msg.startsWith("flow logs on"), 30_000);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const http = await pod.httpClient(pod.gateway);
    const made = await exchanges(pod, ["tcp", "--count", "12"]);
    assert.equal(made.length, 12);
    // Every DESTROY has come once logged + dropped reaches 12.
    const until = performance.now() + EXPIRY_MS;
    let metrics = await metricsOf(http, METRICS);
    const total = (): number =>
      (metrics.get("egress_gateway_flow_logs_total") ?? 0) +
      (metrics.get('egress_gateway_flow_logs_dropped_total{reason="rate_limit"}') ?? 0);
    while (total() < 12 && performance.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      metrics = await metricsOf(http, METRICS);
    }
    const logged = metrics.get("egress_gateway_flow_logs_total") ?? 0;
    const dropped = metrics.get('egress_gateway_flow_logs_dropped_total{reason="rate_limit"}') ?? 0;
    assert.equal(logged + dropped, 12, `logged ${logged}, dropped ${dropped}`);
    assert.ok(logged >= 2 && logged <= 5, `logged ${logged}`);
    assert.equal(flowLines(gateway).length, logged);
  });
});
