// Kernel telemetry through the built gateway, on every rule backend: real
// connections from the client pod through the gateway pod to the external
// host, and /metrics (scraped from the node, as Prometheus would) must show
// exactly what they did; promtool must accept the whole exposition.
import assert from "node:assert/strict";
import { spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { runInit, startGateway } from "../lab/gateway-pod.js";
import type { NamespaceHttpClient } from "../lab/namespace-http.js";
import { ADDR, buildPodLab, type PodLab } from "../lab/pod-lab.js";
import { ROOT, type GatewayProcess } from "../lab/gateway-process.js";

const HOLD_PORT = 7100;
const V4_CONNECTIONS = 40;
const V6_CONNECTIONS = 10;
const BYTES = 10_000;
const KERNEL_PORTS = 64_512; // 1024-65535: SNAT without an explicit range
// 40 connections out of 64512 ports is 0.00062: above this limit, below it once they are gone.
const MAX_UTILIZATION = "0.0005";

const BACKENDS = [
  { name: "nftables", env: { DATAPLANE: "nftables" } },
  { name: "iptables-nft", env: { DATAPLANE: "iptables", IPTABLES_BACKEND: "nft" } },
  { name: "iptables-legacy", env: { DATAPLANE: "iptables", IPTABLES_BACKEND: "legacy" } },
] as const;

type Samples = Map<string, number>;

/** `name{a="1",b="2"}` -> value, label order as the exposition writes it. */
function parseExposition(text: string): Samples {
  const samples: Samples = new Map();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

function value(samples: Samples, name: string, labels: Record<string, string> = {}): number {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const key = pairs.length > 0 ? `${name}{${pairs.join(",")}}` : name;
  const found = samples.get(key);
  assert.ok(found !== undefined, `no sample ${key} in:\n${[...samples.keys()].join("\n")}`);
  return found;
}

describe("kernel telemetry through the built gateway", () => {
  let pod: PodLab;
  let node: NamespaceHttpClient;
  let limit: number;

  before(async () => {
    pod = buildPodLab("telem");
    node = await pod.httpClient(pod.node);
    const hosts = [ADDR.external.v4, ADDR.external.v6].flatMap((h) => ["--host", h]);
    await pod.lab.startProgram(pod.external, "held-connections.ts", [
      "server",
      "--port",
      String(HOLD_PORT),
      ...hosts,
    ]);
    pod.routeClientViaGateway(true);
    limit = Number(pod.gateway.exec("cat", ["/proc/sys/net/netfilter/nf_conntrack_max"]).trim());
  });
  after(() => pod.destroy());

  const metricsUrl = `http://${ADDR.gateway.v4}:8080/metrics`;
  const readinessUrl = `http://${ADDR.gateway.v4}:8080/readiness`;
  const scrape = async (): Promise<{ text: string; samples: Samples }> => {
    const { body: text } = await node.get(metricsUrl);
    return { text, samples: parseExposition(text) };
  };
  /** Scrapes until a refresh that started after this call has finished, and `until` holds. */
  const scrapeAfterRefresh = async (until: (s: Samples) => boolean = () => true): Promise<Samples> => {
    const seen = value((await scrape()).samples, "egress_gateway_telemetry_refreshes_total");
    for (let i = 0; i < 100; i++) {
      const { samples } = await scrape();
      // A refresh cut off by its deadline on a loaded machine lacks some families: take the next.
      const complete =
        samples.has('egress_gateway_forwarded_packets_total{family="ipv4"}') &&
        samples.has("egress_gateway_forwarded_connections") &&
        samples.has("egress_gateway_conntrack_drop_total");
      if (
        value(samples, "egress_gateway_telemetry_refreshes_total") >= seen + 2 &&
        complete &&
        until(samples)
      ) {
        return samples;
      }
      await sleep(200);
    }
    throw new Error("no telemetry refresh within 20 s");
  };

  for (const backend of BACKENDS) {
    describe(backend.name, () => {
      let gateway: GatewayProcess;
      let clients: ChildProcess[] = [];

      before(async () => {
        pod.gateway.exec("conntrack", ["-F"]);
        const init = await runInit(pod, backend.env);
        assert.equal(init.code, 0, init.stderr);
        // Flow logs on too: promtool checks the whole exposition, telemetry, flows and runtime.
        gateway = startGateway(pod, {
          TELEMETRY_INTERVAL: "1s",
          READINESS_MAX_PORT_UTILIZATION: MAX_UTILIZATION,
          FLOW_LOGS: "true",
        });
        await gateway.waitForLog((l) => l.msg === "health server listening", 15_000);
      });
      after(async () => {
        for (const client of clients) client.kill("SIGTERM");
        clients = [];
        await gateway.kill();
      });

      it("counts the forwarded and SNATed traffic, conntrack, port use and top talkers it generated", async () => {
        const before = await scrapeAfterRefresh();
        assert.equal((await node.get(readinessUrl)).status, 200, "ready before any connection");

        for (const [host, count] of [
          [ADDR.external.v4, V4_CONNECTIONS],
          [ADDR.external.v6, V6_CONNECTIONS],
        ] as const) {
          const { child, ready } = await pod.lab.startProgram(pod.client, "held-connections.ts", [
            "client",
            "--host",
            host,
            "--port",
            String(HOLD_PORT),
            "--count",
            String(count),
            "--bytes",
            String(BYTES),
          ]);
          clients.push(child);
          assert.deepEqual(JSON.parse(ready), { open: count, echoed: count * BYTES });
        }
        const now = await scrapeAfterRefresh(
          (s) => value(s, "egress_gateway_forwarded_connections") >= V4_CONNECTIONS + V6_CONNECTIONS,
        );
        const delta = (name: string, family: string): number =>
          value(now, name, { family }) - value(before, name, { family });

        assert.equal(value(now, "egress_gateway_forwarded_connections"), V4_CONNECTIONS + V6_CONNECTIONS);
        for (const [family, count] of [
          ["ipv4", V4_CONNECTIONS],
          ["ipv6", V6_CONNECTIONS],
        ] as const) {
          assert.equal(delta("egress_gateway_snat_connections_total", family), count, family);
          // Each connection sent BYTES and got them back, so at least twice that crossed, headers aside.
          assert.ok(delta("egress_gateway_forwarded_bytes_total", family) >= 2 * count * BYTES, family);
          assert.ok(delta("egress_gateway_snat_bytes_total", family) >= 2 * count * BYTES, family);
          // Handshake, data and acks: at least 4 packets a connection, all of them SNATed.
          const packets = delta("egress_gateway_forwarded_packets_total", family);
          assert.ok(packets >= 4 * count, `${family}: ${packets} packets`);
          assert.equal(delta("egress_gateway_snat_packets_total", family), packets, family);
        }

        assert.ok(value(now, "egress_gateway_conntrack_entries") >= V4_CONNECTIONS + V6_CONNECTIONS);
        assert.equal(value(now, "egress_gateway_conntrack_entries_limit"), limit);
        for (const stat of ["insert_failed", "drop", "early_drop", "invalid"]) {
          assert.ok(value(now, `egress_gateway_conntrack_${stat}_total`) >= 0, stat);
        }

        assert.equal(value(now, "egress_gateway_snat_ports_available"), KERNEL_PORTS);
        for (const [destination, count] of [
          [ADDR.external.v4, V4_CONNECTIONS],
          [ADDR.external.v6, V6_CONNECTIONS],
        ] as const) {
          const labels = { destination, port: String(HOLD_PORT), protocol: "tcp" };
          assert.equal(value(now, "egress_gateway_snat_ports_in_use", labels), count);
          const ratio = value(now, "egress_gateway_snat_port_utilization_ratio", labels);
          assert.ok(Math.abs(ratio - count / KERNEL_PORTS) < 1e-6, `${destination}: ${ratio}`);
        }
        const max = value(now, "egress_gateway_snat_port_utilization_max_ratio");
        assert.ok(Math.abs(max - V4_CONNECTIONS / KERNEL_PORTS) < 1e-6, String(max));
        assert.equal(value(now, "egress_gateway_top_talker_connections", { client: ADDR.client.v4 }), 40);
        assert.equal(value(now, "egress_gateway_top_talker_connections", { client: ADDR.client.v6 }), 10);

        // Under a loaded machine a 1 s deadline may cut a refresh off; that it is counted is
        // tested in telemetry.test.ts. Here: the figures above came through, and the counters exist.
        for (const source of ["rules", "usage", "stats", "table"]) {
          assert.ok(value(now, "egress_gateway_telemetry_refresh_errors_total", { source }) >= 0, source);
        }
        assert.ok(value(now, "egress_gateway_telemetry_refresh_deadline_exceeded_total") >= 0);
        assert.ok(value(now, "egress_gateway_telemetry_refresh_duration_seconds") > 0);
      });

      it("turns SNATPortUtilization not ready above READINESS_MAX_PORT_UTILIZATION, ready once ports free up", async () => {
        const busy = await node.get(readinessUrl);
        assert.equal(busy.status, 503, busy.body);
        assert.match(busy.body, /SNATPortUtilization.*40 SNAT ports in use toward 203\.0\.113\.10:7100\/tcp/);
        for (const client of clients) client.kill("SIGTERM");
        clients = [];
        pod.gateway.exec("conntrack", ["-F"]);
        await scrapeAfterRefresh((s) => value(s, "egress_gateway_snat_port_utilization_max_ratio") === 0);
        const free = await node.get(readinessUrl);
        assert.equal(free.status, 200, free.body);
      });

      it("passes promtool check metrics with telemetry, flow logs and runtime metrics on", async () => {
        const { text } = await scrape();
        for (const family of [
          "egress_gateway_snat_ports_in_use",
          "egress_gateway_flow_logs_total",
          "nodejs_heap_size_used_bytes",
        ]) {
          assert.match(text, new RegExp(`^# TYPE ${family} `, "m"), family);
        }
        const checked = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
        assert.equal(checked.status, 0, checked.stdout + checked.stderr);
        assert.equal(checked.stdout + checked.stderr, "", "no lint finding");
      });
    });
  }
  // The non-root image's user: UID 65532 with NET_ADMIN and NET_RAW only (there from file capabilities,
  // here ambient, which the tools it runs inherit alike). /proc/net/nf_conntrack (0440 root) is closed to
  // it; the table is read with `conntrack -L` instead, for /metrics and for the drain.
  // UID 65532 must reach the checkout: a clone into `mktemp -d` is mode 0700,
  // so the checkout's own directory gets others' search bit for the run. A
  // closed directory above it is the machine's, and not ours to open.
  const closedAbove = ancestors(dirname(ROOT)).find((dir) => (statSync(dir).mode & 0o001) === 0);
  describe(
    "as UID 65532 with NET_ADMIN and NET_RAW only",
    { skip: closedAbove && `${closedAbove} is closed to others` },
    () => {
      const NON_ROOT = ["setpriv", "--reuid=65532", "--regid=65532", "--clear-groups"];
      const rootMode = statSync(ROOT).mode & 0o7777;
      const CAPS = ["--inh-caps=-all,+net_admin,+net_raw", "--ambient-caps=-all,+net_admin,+net_raw"];
      let gateway: GatewayProcess;
      const clients: ChildProcess[] = [];

      before(async () => {
        chmodSync(ROOT, rootMode | 0o001);
        pod.gateway.exec("conntrack", ["-F"]);
        const init = await runInit(pod, { DATAPLANE: "nftables" });
        assert.equal(init.code, 0, init.stderr);
        gateway = startGateway(pod, { TELEMETRY_INTERVAL: "1s", DRAIN_MIN: "1s", DRAIN_TIMEOUT: "4s" }, [
          ...NON_ROOT,
          ...CAPS,
          "--",
        ]);
        await gateway.waitForLog((l) => l.msg === "health server listening", 15_000);
      });
      after(async () => {
        for (const client of clients) client.kill("SIGTERM");
        await gateway?.kill();
        chmodSync(ROOT, rootMode);
      });

      it("counts the forwarded connections through conntrack -L, says so once, and drains by that count", async () => {
        const { child, ready } = await pod.lab.startProgram(pod.client, "held-connections.ts", [
          ...["client", "--host", ADDR.external.v4, "--port", String(HOLD_PORT)],
          ...["--count", String(V4_CONNECTIONS), "--bytes", String(BYTES)],
        ]);
        clients.push(child);
        assert.deepEqual(JSON.parse(ready), { open: V4_CONNECTIONS, echoed: V4_CONNECTIONS * BYTES });
        const now = await scrapeAfterRefresh(
          (s) => value(s, "egress_gateway_forwarded_connections") >= V4_CONNECTIONS,
        );
        assert.equal(value(now, "egress_gateway_forwarded_connections"), V4_CONNECTIONS);
        const labels = { destination: ADDR.external.v4, port: String(HOLD_PORT), protocol: "tcp" };
        assert.equal(value(now, "egress_gateway_snat_ports_in_use", labels), V4_CONNECTIONS);
        assert.ok(
          value(now, "egress_gateway_snat_bytes_total", { family: "ipv4" }) >= 2 * V4_CONNECTIONS * BYTES,
        );
        for (const source of ["rules", "usage", "stats", "table"]) {
          assert.equal(value(now, "egress_gateway_telemetry_source_up", { source }), 1, source);
        }
        const fallbacks = gateway.logs.filter((l) => /is not readable as uid 65532/.test(String(l.msg)));
        assert.equal(fallbacks.length, 1, gateway.dump());
        assert.match(
          String(fallbacks[0]!.msg),
          /EACCES.*reading the table with `conntrack -L -o extended` instead/,
        );

        gateway.signal("SIGTERM");
        await gateway.exited;
        const progress = gateway.logs.find((l) => l.msg === "draining: forwarded connections still live");
        assert.equal(progress?.liveConnections, V4_CONNECTIONS, gateway.dump());
        const done = gateway.logs.find((l) => l.msg === "drain complete, exiting");
        assert.equal(done?.reason, "timeout", gateway.dump());
        assert.equal(done?.liveConnections, V4_CONNECTIONS);
      });
    },
  );
});

/** `dir` and every directory above it. */
function ancestors(dir: string): string[] {
  const parent = dirname(dir);
  return parent === dir ? [dir] : [dir, ...ancestors(parent)];
}
