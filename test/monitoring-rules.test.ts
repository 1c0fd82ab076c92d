// deploy/monitoring: the alerting rules pass promtool's own checks and unit
// tests, the Operator's PrometheusRule carries exactly the plain rule file, and
// every metric the rules and the dashboard use is one the README documents.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parse, parseAllDocuments } from "yaml";
import { ROOT } from "../lab/run-lab.js";

const MONITORING = join(ROOT, "deploy", "monitoring");
const read = (...path: string[]): string => readFileSync(join(ROOT, ...path), "utf8");

interface Rule {
  readonly alert: string;
  readonly expr: string;
  readonly annotations: Record<string, string>;
}
interface RuleFile {
  readonly groups: readonly { readonly name: string; readonly rules: readonly Rule[] }[];
}

const rules = parse(read("deploy", "monitoring", "alerts.rules.yaml")) as RuleFile;
const alerts = rules.groups.flatMap((g) => g.rules);

const promtool = (...args: string[]): string =>
  execFileSync("promtool", args, { cwd: MONITORING, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

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
    const tests = parse(read("deploy", "monitoring", "alerts.test.yaml")) as {
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

  it("are the same in the Prometheus Operator's PrometheusRule", () => {
    const docs = parseAllDocuments(read("deploy", "monitoring", "prometheus-rule.yaml")).map((d) => d.toJS());
    assert.equal(docs.length, 1);
    assert.equal(docs[0].kind, "PrometheusRule");
    assert.deepEqual(docs[0].spec, rules);
  });
});

describe("monitoring objects", () => {
  it("the PodMonitor scrapes the gateway pods of the Deployment on their health port", () => {
    const monitor = parse(read("deploy", "monitoring", "podmonitor.yaml"));
    const deployment = parse(read("deploy", "egress-gateway.yaml"));
    const podLabels = deployment.spec.template.metadata.labels as Record<string, string>;
    for (const [key, value] of Object.entries(monitor.spec.selector.matchLabels as Record<string, string>)) {
      assert.equal(podLabels[key], value, `pod label ${key}`);
    }
    const ports = deployment.spec.template.spec.containers.flatMap((c: { ports?: { name: string }[] }) =>
      (c.ports ?? []).map((p) => p.name),
    );
    for (const endpoint of monitor.spec.podMetricsEndpoints) {
      assert.ok(ports.includes(endpoint.port), `no container port named ${endpoint.port}`);
      assert.equal(endpoint.path, "/metrics");
    }
  });

  it("the dashboard is Grafana JSON whose panels all query the chosen data source", () => {
    const dashboard = JSON.parse(read("deploy", "monitoring", "dashboard.json"));
    const ids = dashboard.panels.map((p: { id: number }) => p.id);
    assert.equal(new Set(ids).size, ids.length, "panel ids are unique");
    const queries = dashboard.panels.filter((p: { type: string }) => p.type !== "row");
    assert.ok(queries.length >= 15);
    for (const p of queries) {
      assert.equal(p.datasource.uid, "${datasource}", p.title);
      assert.ok(p.targets.length > 0, p.title);
    }
  });

  it("every metric the rules and the dashboard use is documented in the README", () => {
    const readme = read("README.md");
    const used = metricNames(
      read("deploy", "monitoring", "alerts.rules.yaml") + read("deploy", "monitoring", "dashboard.json"),
    );
    assert.ok(used.length >= 20);
    const undocumented = used.filter((name) => !readme.includes(`\`${name}\``));
    assert.deepEqual(undocumented, []);
  });
});
