// A real Prometheus (Debian's package) in the lab's node namespace scrapes the
// built gateway while client traffic flows through it, with the scrape job and
// alerting rules of deploy/monitoring/prometheus. PromQL must show the bytes,
// the conntrack entries and the per-destination SNAT port use the test
// generated, every metric the rules and the dashboard use must be in the
// gateway's exposition, and the upstream-down alert must fire once the probe
// target stops answering.
//
// Two substitutions, both because of this machine, not of the files: Debian's
// Prometheus has no Kubernetes discovery, so the job's kubernetes_sd_configs is
// replaced by static targets carrying the __meta_kubernetes_* labels that
// discovery gives a pod (the job's own relabelling then keeps and labels them);
// and the intervals and EgressGatewayUpstreamDown's `for` are cut to seconds.
// Every expression is the deployed one.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse } from "yaml";
import { FakeAgent } from "../lab/fake-agent.js";
import { runInit, startGateway } from "../lab/gateway-pod.js";
import { ADDR, buildPodLab, type PodLab } from "../lab/pod-lab.js";
import { LabPrometheus } from "../lab/prometheus.js";
import { ROOT } from "../lab/run-lab.js";

const MONITORING = join(ROOT, "deploy", "monitoring");
const read = (...path: string[]): string => readFileSync(join(MONITORING, ...path), "utf8");

const HEALTH_PORT = 8080;
const HOLD_PORT = 7200;
const IPERF_PORT = 5201;
const CONNECTIONS = 50;
const BYTES = 20_000;
/**
 * iperf3's paced send rate (bits/s) and run time. A sample shows the counter as the last refresh read
 * it, 0 to 2 s earlier: over a 16 s window that is at most 12 % off.
 */
const IPERF_RATE = 16_000_000;
const IPERF_SECONDS = 20;
const ALERT_FOR = "3s";
/** The labels Kubernetes discovery and the job's relabelling give the gateway's series. */
const POD = { namespace: "lab", pod: "egress-gateway-0" };

interface RuleFile {
  readonly groups: readonly { readonly name: string; readonly rules: { alert: string; for?: string }[] }[];
}
interface ScrapeJob {
  readonly kubernetes_sd_configs?: unknown;
  readonly [key: string]: unknown;
}

/** A pod's container port as Kubernetes discovery describes it. */
const discovered = (address: string, pod: string, egressCode: string, portName: string): object => ({
  targets: [address],
  labels: {
    __meta_kubernetes_namespace: POD.namespace,
    __meta_kubernetes_pod_name: pod,
    __meta_kubernetes_pod_label_egress_code: egressCode,
    __meta_kubernetes_pod_container_port_name: portName,
  },
});

/** deploy/monitoring/prometheus/prometheus.yaml with the substitutions above. */
function labConfig(): Record<string, unknown> {
  const deployed = parse(read("prometheus", "prometheus.yaml")) as {
    rule_files: string[];
    scrape_configs: ScrapeJob[];
  };
  const [job, ...others] = deployed.scrape_configs;
  assert.ok(job?.kubernetes_sd_configs !== undefined && others.length === 0, "one job, discovering pods");
  const rest: Record<string, unknown> = { ...job };
  delete rest.kubernetes_sd_configs;
  return {
    global: { scrape_interval: "1s", evaluation_interval: "1s" },
    rule_files: deployed.rule_files,
    scrape_configs: [
      {
        ...rest,
        scrape_interval: "1s",
        scrape_timeout: "1s",
        static_configs: [
          discovered(`${ADDR.gateway.v4}:${HEALTH_PORT}`, POD.pod, "red", "health"),
          // Never scraped: the relabelling drops them.
          discovered(`${ADDR.client.v4}:${HEALTH_PORT}`, "client-0", "blue", "health"),
          discovered(`${ADDR.gateway.v4}:9`, POD.pod, "red", "other"),
        ],
      },
    ],
  };
}

function labRules(): RuleFile {
  const rules = parse(read("prometheus", "alerts.rules.yaml")) as RuleFile;
  const upstreamDown = rules.groups
    .flatMap((g) => g.rules)
    .find((r) => r.alert === "EgressGatewayUpstreamDown");
  assert.ok(upstreamDown);
  upstreamDown.for = ALERT_FOR;
  return rules;
}

/** Metric names of ours an expression, a rule file or the dashboard mentions. */
const metricNames = (text: string): string[] => [...new Set(text.match(/\begress_gateway_[a-z_]+\b/g))];

describe("a real Prometheus scraping the gateway in the lab", { timeout: 3 * 60_000 }, () => {
  let pod: PodLab;
  let prometheus: LabPrometheus;
  let agent: FakeAgent | undefined;
  let agentDir: string | undefined;
  const clients: ChildProcess[] = [];
  const ipv4 = (name: string): string => `${name}{family="ipv4"}`;

  before(async () => {
    pod = buildPodLab("prom");
    const init = await runInit(pod);
    assert.equal(init.code, 0, init.stderr);
    // A node agent that knows only the gateway pod's own route: policy sync in sync, the return path ready.
    agentDir = mkdtempSync(join(tmpdir(), "egt-promagent-"));
    mkdirSync(join(agentDir, "nodeagent"));
    const socket = join(agentDir, "nodeagent", "socket");
    agent = await FakeAgent.start(socket, (stream) => {
      stream.route({
        dst: `${ADDR.gateway.v4}/32`,
        types: ["localWorkload"],
        poolType: "VXLAN",
        dstNodeName: "node-a",
        dstNodeIp: ADDR.node.v4,
        localWorkload: true,
      });
      stream.inSync();
    });
    const iperfServer = pod.lab.spawn(pod.external, "iperf3", [
      ...["-s", "-B", ADDR.external.v4, "-p", String(IPERF_PORT), "--forceflush"],
    ]);
    const [node] = await Promise.all([
      pod.httpClient(pod.node),
      pod.lab.startProgram(pod.external, "held-connections.ts", [
        ...["server", "--host", ADDR.external.v4, "--port", String(HOLD_PORT)],
      ]),
      waitForLine(iperfServer, /Server listening/),
    ]);
    const gateway = startGateway(pod, {
      ICMP_PROBE_IPS: ADDR.external.v4,
      ICMP_PROBE_INTERVAL: "500ms",
      ICMP_PROBE_TIMEOUT: "2s",
      HEALTH_PORT: String(HEALTH_PORT),
      TELEMETRY_INTERVAL: "1s",
      DAEMON_SOCKET_PATH: socket,
    });
    await gateway.waitForLog((line) => line.msg === "health server listening", 15_000);
    prometheus = await LabPrometheus.start(pod.lab, pod.node, node, {
      listen: `${ADDR.node.v4}:9090`,
      config: labConfig(),
      ruleFiles: { "alerts.rules.yaml": labRules() },
    });
    await prometheus
      .eventually("egress_gateway_ready", (v) => v === 1, 20_000)
      .catch(async (error) => {
        const down = await prometheus.query("egress_gateway_component_ready == 0");
        const names = down.map((s) => s.metric.component).join(", ");
        const logs = gateway.logs
          .filter((l) => l.level !== "info" && l.level !== "debug")
          .map((l) => JSON.stringify(l));
        throw new Error(`${(error as Error).message}; not ready: ${names}\n${logs.join("\n")}`);
      });
  });

  after(async () => {
    for (const client of clients) client.kill("SIGTERM");
    await prometheus?.stop();
    await agent?.stop();
    pod?.destroy();
    if (agentDir) rmSync(agentDir, { recursive: true, force: true });
  });

  it("finds the gateway pod's health port through the deployed relabelling, and only it", async () => {
    const targets = await prometheus.api<{
      activeTargets: { labels: Record<string, string>; health: string; scrapeUrl: string }[];
      droppedTargets: unknown[];
    }>("/api/v1/targets");
    assert.deepEqual(
      targets.activeTargets.map((t) => [t.scrapeUrl, t.health, t.labels.namespace, t.labels.pod]),
      [[`http://${ADDR.gateway.v4}:${HEALTH_PORT}/metrics`, "up", POD.namespace, POD.pod]],
    );
    assert.equal(targets.droppedTargets.length, 2);
  });

  it("shows the conntrack entries, the SNAT ports and the bytes of the client's held connections", async () => {
    await prometheus.eventually("egress_gateway_telemetry_refreshes_total", (v) => (v ?? 0) >= 3, 10_000);
    const bytesBefore = await prometheus.value(ipv4("egress_gateway_forwarded_bytes_total"));
    assert.ok(bytesBefore !== undefined);

    pod.routeClientViaGateway(true);
    const client = await pod.lab.startProgram(pod.client, "held-connections.ts", [
      ...["client", "--host", ADDR.external.v4, "--port", String(HOLD_PORT)],
      ...["--count", String(CONNECTIONS), "--bytes", String(BYTES)],
    ]);
    clients.push(client.child);
    assert.deepEqual(JSON.parse(client.ready), { open: CONNECTIONS, echoed: CONNECTIONS * BYTES });

    const toHold = `destination="${ADDR.external.v4}",port="${HOLD_PORT}",protocol="tcp"`;
    await prometheus.eventually(
      `egress_gateway_snat_ports_in_use{${toHold}}`,
      (v) => v === CONNECTIONS,
      10_000,
    );
    const talker = `egress_gateway_top_talker_connections{client="${ADDR.client.v4}"}`;
    await prometheus.eventually(talker, (v) => v === CONNECTIONS, 10_000);
    // The table holds other entries too (the scrape's connection, the probe's pings): the gauge must
    // be the kernel's own count, and that count must hold the connections.
    let kernel = 0;
    await prometheus.eventually(
      "egress_gateway_conntrack_entries",
      (v) => v === (kernel = Number(pod.gateway.exec("cat", ["/proc/sys/net/netfilter/nf_conntrack_count"]))),
      10_000,
    );
    const held = pod.gateway.exec("conntrack", ["-L", "-p", "tcp", "--dport", String(HOLD_PORT)]);
    assert.equal(held.trim().split("\n").length, CONNECTIONS);
    assert.ok(kernel >= CONNECTIONS, `${kernel} entries`);

    // SNAT without a range: ports 1024-65535.
    const available = 64_512;
    await prometheus.eventually("egress_gateway_snat_ports_available", (v) => v === available, 10_000);
    const ratio = Math.round((CONNECTIONS / available) * 1e6) / 1e6;
    const ratioExpr = `egress_gateway_snat_port_utilization_ratio{${toHold}}`;
    await prometheus.eventually(ratioExpr, (v) => v === ratio, 10_000);
    await prometheus.eventually("egress_gateway_snat_port_utilization_max_ratio", (v) => v === ratio, 10_000);

    // Each byte crossed the gateway twice (sent, then echoed), plus TCP/IP headers and ACKs.
    const generated = 2 * CONNECTIONS * BYTES;
    const bytes = ipv4("egress_gateway_forwarded_bytes_total");
    const grew = (await prometheus.eventually(
      `${bytes} - ${bytesBefore}`,
      (v) => (v ?? 0) >= generated,
      10_000,
    ))!;
    assert.ok(grew < 1.2 * generated, `forwarded ${grew} bytes for ${generated} generated`);
  });

  it("shows the forwarded-bytes rate of a paced iperf3 stream", async (t) => {
    const run = pod.lab.run(
      pod.client,
      "iperf3",
      [
        ...["-c", ADDR.external.v4, "-p", String(IPERF_PORT), "-t", String(IPERF_SECONDS)],
        ...["-b", String(IPERF_RATE), "-J"],
      ],
      { timeoutMs: (IPERF_SECONDS + 15) * 1000 },
    );
    const result = await run;
    const report = JSON.parse(result.stdout || "{}") as {
      start?: { timestamp?: { timesecs?: number } };
      end?: { sum_sent?: { bits_per_second?: number } };
    };
    const started = report.start?.timestamp?.timesecs;
    const sent = report.end?.sum_sent?.bits_per_second;
    assert.ok(result.code === 0 && started && sent, `iperf3 failed: ${result.stderr || result.stdout}`);
    // A window inside the stream (it started within a second of `started`), where the counter's
    // samples lag by up to 2 s. The gateway also counts headers and the ACKs back (about +6 %).
    const bytes = ipv4("egress_gateway_forwarded_bytes_total");
    const window = `[${IPERF_SECONDS - 4}s] @ ${started + IPERF_SECONDS - 2}`;
    const rate = (await prometheus.value(`rate(${bytes}${window})`))!;
    const ratio = rate / (sent / 8);
    t.diagnostic(`forwarded-bytes rate / iperf3's send rate: ${ratio.toFixed(3)}`);
    if (!(ratio >= 0.85 && ratio <= 1.3)) {
      const [samples] = await prometheus.query(`${bytes}${window}`);
      assert.fail(
        `rate ${rate} B/s for iperf3's ${sent / 8} B/s (${ratio}): ${JSON.stringify(samples?.values)}`,
      );
    }
  });

  it("has every metric the alerting rules and the dashboard use, and answers each of their queries", async () => {
    const rules = parse(read("prometheus", "alerts.rules.yaml")) as {
      groups: { rules: { expr: string }[] }[];
    };
    const dashboard = JSON.parse(read("dashboard.json")) as { panels: { targets?: { expr: string }[] }[] };
    const panelQueries = dashboard.panels
      .flatMap((p) => p.targets ?? [])
      .map((t) => t.expr.replaceAll("$namespace", POD.namespace).replaceAll("$pod", POD.pod));
    const ruleQueries = rules.groups.flatMap((g) => g.rules.map((r) => r.expr));

    // Names of every series scraped so far: one scrape can lack a telemetry source its refresh could not read.
    const job = encodeURIComponent('{job="egress-gateway"}');
    const exposed = new Set(await prometheus.api<string[]>(`/api/v1/label/__name__/values?match[]=${job}`));
    const used = metricNames([...panelQueries, ...ruleQueries].join("\n"));
    assert.ok(used.length >= 20, `${used.length} names`);
    assert.deepEqual(
      used.filter((name) => !exposed.has(name)),
      [],
    );
    // Each panel shows something for a pod with traffic; a rule is a query Prometheus accepts.
    for (const expr of panelQueries) await prometheus.until(expr, (samples) => samples.length > 0, 10_000);
    for (const expr of ruleQueries) await prometheus.query(expr);
  });

  it("fires EgressGatewayUpstreamDown once the probe target stops answering, and resolves it after", async (t) => {
    const alert = `ALERTS{alertname="EgressGatewayUpstreamDown",protocol="icmp"}`;
    const firing = alert.replace("}", ',alertstate="firing"}');
    assert.equal(await prometheus.value('egress_gateway_probe_success{protocol="icmp"}'), 1);
    assert.equal(await prometheus.value(alert), undefined, "quiet while the target answers");

    const block = ["table inet egt_block {", "  chain input {", "    type filter hook input priority 0;"];
    block.push("    meta l4proto icmp drop", "  }", "}");
    pod.external.exec("nft", ["-f", "-"], `${block.join("\n")}\n`);
    const blocked = performance.now();
    try {
      await prometheus.eventually(firing, (v) => v === 1, 30_000);
      const firedAfterMs = performance.now() - blocked;
      t.diagnostic(`firing ${(firedAfterMs / 1000).toFixed(1)} s after the block (for: ${ALERT_FOR})`);
      assert.ok(firedAfterMs >= 3_000, `fired ${firedAfterMs} ms after the block, before for: ${ALERT_FOR}`);
      const [sample] = await prometheus.query(firing);
      assert.deepEqual(
        { severity: sample?.metric.severity, namespace: sample?.metric.namespace, pod: sample?.metric.pod },
        { severity: "critical", ...POD },
      );
    } finally {
      pod.external.exec("nft", ["delete", "table", "inet", "egt_block"]);
    }
    await prometheus.eventually(alert, (v) => v === undefined, 15_000);
  });
});

function waitForLine(child: ChildProcess, pattern: RegExp, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(
      () => reject(new Error(`no ${pattern.source} within ${timeoutMs} ms: ${seen}`)),
      timeoutMs,
    );
    child.stdout!.setEncoding("utf8").on("data", (s: string) => {
      seen += s;
      if (pattern.test(seen)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}
