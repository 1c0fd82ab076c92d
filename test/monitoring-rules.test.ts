// deploy/monitoring: the alerting rules pass promtool's own checks and unit
// tests, the Operator's PrometheusRule carries exactly the plain rule file, and
// every metric the rules and the dashboard use is one the README documents.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parse, parseAllDocuments, stringify } from "yaml";
import { ROOT } from "../lab/run-lab.js";
import { workloadOf } from "./helpers/image-manifests.js";

const PROMETHEUS = join(ROOT, "deploy", "monitoring", "prometheus");
const read = (...path: string[]): string => readFileSync(join(ROOT, ...path), "utf8");

interface Rule {
  readonly alert: string;
  readonly expr: string;
  readonly annotations: Record<string, string>;
}
interface RuleFile {
  readonly groups: readonly { readonly name: string; readonly rules: readonly Rule[] }[];
}

interface PodMonitor {
  readonly spec: {
    readonly selector: { readonly matchLabels: Record<string, string> };
    readonly podMetricsEndpoints: readonly { readonly port: string; readonly path: string }[];
  };
}

interface Dashboard {
  readonly panels: readonly {
    readonly id: number;
    readonly type: string;
    readonly title: string;
    readonly datasource?: { readonly uid: string };
    readonly targets?: readonly unknown[];
  }[];
}

const rules = parse(read("deploy", "monitoring", "prometheus", "alerts.rules.yaml")) as RuleFile;
const alerts = rules.groups.flatMap((g) => g.rules);

const promtool = (...args: string[]): string =>
  execFileSync("promtool", args, { cwd: PROMETHEUS, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

/** Metric names an expression or dashboard mentions (ours only). */
const metricNames = (text: string): string[] => [...new Set(text.match(/\begress_gateway_[a-z_]+\b/g) ?? [])];

describe("alerting rules", () => {
  it("pass promtool check rules", () => {
    assert.match(
      promtool("check", "rules", "alerts.rules.yaml"),
      new RegExp(`SUCCESS: ${alerts.length} rules`),
    );
  });

  it("pass their promtool unit tests (alerts.test.yaml)", () => {
    assert.match(promtool("test", "rules", "alerts.test.yaml"), /SUCCESS/);
  });

  it("each alert has a unit test that expects it to fire", () => {
    const tests = parse(read("deploy", "monitoring", "prometheus", "alerts.test.yaml")) as {
      tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[];
    };
    const firing = new Set(
      tests.tests.flatMap((t) =>
        t.alert_rule_test.filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname),
      ),
    );
    for (const { alert } of alerts) assert.ok(firing.has(alert), `${alert} has no test where it fires`);
  });

  it("cover what the issue asks to alert on", () => {
    const names = alerts.map((a) => a.alert).sort();
    assert.deepEqual(names, [
      "EgressGatewayConntrackInsertFailures",
      "EgressGatewayConntrackNearLimit",
      "EgressGatewayDataplaneDrift",
      "EgressGatewayNotReady",
      "EgressGatewayPolicySyncDisconnected",
      "EgressGatewaySNATPortsHigh",
      "EgressGatewayUpstreamDown",
    ]);
  });

  it("each alert links a runbook paragraph that deploy/README.md has", () => {
    const anchors = new Set(
      [...read("deploy", "README.md").matchAll(/^#+ (.+)$/gm)].map((m) =>
        m[1]!
          .toLowerCase()
          .replace(/[^a-z0-9 -]/g, "")
          .replace(/ /g, "-"),
      ),
    );
    for (const { alert, annotations } of alerts) {
      const anchor = alert.toLowerCase();
      assert.equal(annotations.runbook_url, `deploy/README.md#${anchor}`, alert);
      assert.ok(anchors.has(anchor), `deploy/README.md has no heading for ${alert}`);
    }
  });

  it("prometheus.yaml passes promtool check config with its pod discovery swapped for a static target", () => {
    // Debian's promtool (and prometheus) are built without Kubernetes discovery and refuse
    // kubernetes_sd_configs; everything else, the relabelling and the rule file included, is checked.
    const config = parse(read("deploy", "monitoring", "prometheus", "prometheus.yaml")) as {
      scrape_configs: Record<string, unknown>[];
    };
    const [job] = config.scrape_configs;
    assert.ok(job && "kubernetes_sd_configs" in job);
    delete job.kubernetes_sd_configs;
    job.static_configs = [{ targets: ["198.51.100.2:8080"] }];
    const dir = mkdtempSync(join(tmpdir(), "egt-promcfg-"));
    try {
      writeFileSync(join(dir, "prometheus.yaml"), stringify(config));
      copyFileSync(join(PROMETHEUS, "alerts.rules.yaml"), join(dir, "alerts.rules.yaml"));
      const out = promtool("check", "config", join(dir, "prometheus.yaml"));
      assert.match(out, /SUCCESS: 1 rule files found/);
      assert.match(out, new RegExp(`SUCCESS: ${alerts.length} rules found`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("are the same in the Prometheus Operator's PrometheusRule", () => {
    const docs = parseAllDocuments(read("deploy", "monitoring", "prometheus-rule.yaml")).map(
      (d) => d.toJS() as { kind: string; spec: unknown },
    );
    assert.equal(docs.length, 1);
    assert.equal(docs[0]!.kind, "PrometheusRule");
    assert.deepEqual(docs[0]!.spec, rules);
  });
});

describe("monitoring objects", () => {
  it("render with kustomize: the PodMonitor, the PrometheusRule and the dashboard's ConfigMap", () => {
    const out = execFileSync("kubectl", ["kustomize", join(ROOT, "deploy", "monitoring")], {
      encoding: "utf8",
    });
    const docs = parseAllDocuments(out).map(
      (d) =>
        d.toJS() as {
          kind: string;
          metadata: { labels?: Record<string, string> };
          data?: Record<string, string>;
        },
    );
    assert.deepEqual(docs.map((d) => d.kind).sort(), ["ConfigMap", "PodMonitor", "PrometheusRule"]);
    const configMap = docs.find((d) => d.kind === "ConfigMap")!;
    assert.equal(configMap.metadata.labels?.grafana_dashboard, "1");
    assert.deepEqual(
      JSON.parse(configMap.data?.["dashboard.json"] ?? ""),
      JSON.parse(read("deploy", "monitoring", "dashboard.json")),
    );
  });

  it("the PodMonitor scrapes the gateway pods of the Deployment on their health port", () => {
    const monitor = parse(read("deploy", "monitoring", "podmonitor.yaml")) as PodMonitor;
    const { pod } = workloadOf("egress-gateway.yaml");
    const deployment = parse(read("deploy", "egress-gateway.yaml")) as {
      spec: { template: { metadata: { labels: Record<string, string> } } };
    };
    const podLabels = deployment.spec.template.metadata.labels;
    for (const [key, value] of Object.entries(monitor.spec.selector.matchLabels)) {
      assert.equal(podLabels[key], value, `pod label ${key}`);
    }
    const ports = pod.containers.flatMap((c) => (c.ports ?? []).map((p) => p.name));
    for (const endpoint of monitor.spec.podMetricsEndpoints) {
      assert.ok(ports.includes(endpoint.port), `no container port named ${endpoint.port}`);
      assert.equal(endpoint.path, "/metrics");
    }
  });

  it("the dashboard is Grafana JSON whose panels all query the chosen data source", () => {
    const dashboard = JSON.parse(read("deploy", "monitoring", "dashboard.json")) as Dashboard;
    const ids = dashboard.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, "panel ids are unique");
    const queries = dashboard.panels.filter((p) => p.type !== "row");
    assert.ok(queries.length >= 15);
    for (const p of queries) {
      assert.equal(p.datasource?.uid, "${datasource}", p.title);
      assert.ok((p.targets ?? []).length > 0, p.title);
    }
  });

  it("every metric the rules and the dashboard use is documented in the README", () => {
    const readme = read("README.md");
    const used = metricNames(
      read("deploy", "monitoring", "prometheus", "alerts.rules.yaml") +
        read("deploy", "monitoring", "dashboard.json"),
    );
    assert.ok(used.length >= 20);
    const undocumented = used.filter((name) => !readme.includes(`\`${name}\``));
    assert.deepEqual(undocumented, []);
  });
});
