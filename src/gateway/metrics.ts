// Prometheus text exposition (format 0.0.4), written by hand: a few dozen lines
// instead of a registry library, and nothing is computed until a scrape asks.
import type { ProbeGroup } from "../probes/group.js";
import type { ReadinessView } from "./readiness.js";

export interface MetricsSource {
  readonly groups: readonly { readonly protocol: string; readonly group: ProbeGroup }[];
  readonly readiness: () => ReadinessView;
  readonly transitions: ReadonlyMap<string, number>;
  readonly startTimeSeconds: number;
}

const escapeLabel = (v: string): string =>
  v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');

class Exposition {
  private readonly out: string[] = [];

  family(name: string, type: "gauge" | "counter", help: string): this {
    this.out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    return this;
  }

  sample(name: string, labels: Record<string, string>, value: number): this {
    const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
    this.out.push(`${name}${pairs.length ? `{${pairs.join(",")}}` : ""} ${value}`);
    return this;
  }

  toString(): string {
    return `${this.out.join("\n")}\n`;
  }
}

export function renderMetrics(source: MetricsSource): string {
  const m = new Exposition();
  const view = source.readiness();

  m.family("egress_gateway_ready", "gauge", "1 when /readiness answers 200.");
  m.sample("egress_gateway_ready", {}, view.ready ? 1 : 0);
  m.family("egress_gateway_terminating", "gauge", "1 after a termination signal, while draining.");
  m.sample("egress_gateway_terminating", {}, view.terminating ? 1 : 0);
  m.family("egress_gateway_component_ready", "gauge", "Readiness of each component (SPEC 4.1).");
  for (const c of view.components)
    m.sample("egress_gateway_component_ready", { component: c.name }, c.ready ? 1 : 0);
  m.family("egress_gateway_component_transitions_total", "counter", "Readiness transitions per component.");
  for (const c of view.components) {
    const count = source.transitions.get(c.name) ?? 0;
    m.sample("egress_gateway_component_transitions_total", { component: c.name }, count);
  }

  m.family("egress_gateway_probe_success", "gauge", "1 when the target's last probe succeeded.");
  forEachTarget(source, (labels, s) => m.sample("egress_gateway_probe_success", labels, s.up ? 1 : 0));
  m.family("egress_gateway_probe_duration_seconds", "gauge", "Duration of the target's last probe.");
  forEachTarget(source, (labels, s) =>
    m.sample("egress_gateway_probe_duration_seconds", labels, Math.round(s.lastDurationMs * 1000) / 1e6),
  );
  m.family("egress_gateway_probes_total", "counter", "Probes completed, by result.");
  forEachTarget(source, (labels, s) => {
    m.sample("egress_gateway_probes_total", { ...labels, result: "success" }, s.successes);
    m.sample("egress_gateway_probes_total", { ...labels, result: "failure" }, s.failures);
  });

  const memory = process.memoryUsage();
  const cpu = process.cpuUsage();
  m.family("process_resident_memory_bytes", "gauge", "Resident set size.");
  m.sample("process_resident_memory_bytes", {}, memory.rss);
  m.family("process_cpu_seconds_total", "counter", "User and system CPU time.");
  m.sample("process_cpu_seconds_total", {}, (cpu.user + cpu.system) / 1e6);
  m.family("process_start_time_seconds", "gauge", "Start time since the Unix epoch.");
  m.sample("process_start_time_seconds", {}, source.startTimeSeconds);
  return m.toString();
}

function forEachTarget(
  source: MetricsSource,
  fn: (labels: Record<string, string>, status: ProbeGroup["statuses"][number]) => void,
): void {
  for (const { protocol, group } of source.groups) {
    for (const status of group.statuses) {
      if (status.up !== undefined) fn({ protocol, target: status.target }, status);
    }
  }
}
