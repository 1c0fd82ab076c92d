// Prometheus text exposition (format 0.0.4), written by hand: a few dozen lines
// instead of a registry library, and nothing is computed until a scrape asks.
// prom-client was measured for the kernel telemetry's families (issue 12): its
// import took 0.4-0.8 s here (node:http 0.03-0.06 s in the same runs) and 14 MB
// of RSS, and a scrape of the same families 1.0-2.3 ms against 0.2-0.6 ms, so
// the exposition stays hand-written; telemetry hands it plain families.
import type { ReturnPathState } from "../dataplane/return-path.js";
import type { FlowLogCounters } from "../flows/index.js";
import { DRIFT_KINDS, REPAIRABLE } from "../integrity/drift.js";
import type { IntegrityState } from "../integrity/watch.js";
import type { SpawnBrokerState } from "../exec/spawn-broker.js";
import type { ProbeGroup } from "../probes/group.js";
import type { PolicySyncState } from "../sync/policy-sync.js";
import type { MetricFamily } from "../telemetry/index.js";
import type { ReadinessView } from "../readiness/readiness.js";
import { SHED_REASONS } from "./health-connections.js";
import type { RuntimeSample } from "./runtime.js";
import type { HealthServerStats } from "./server.js";
import { TIMED_PHASES, type HttpExchange } from "../probes/http-phases.js";

export interface MetricsSource {
  readonly groups: readonly { readonly protocol: string; readonly group: Pick<ProbeGroup, "statuses"> }[];
  /** The HTTP group again, typed for its protocol detail (phase timings). */
  readonly httpGroup?: ProbeGroup<HttpExchange> | undefined;
  readonly readiness: () => ReadinessView;
  readonly transitions: ReadonlyMap<string, number>;
  readonly startTimeSeconds: number;
  readonly policySync?: PolicySyncState;
  readonly returnPath?: ReturnPathState | undefined;
  /** Called once per scrape: it starts a new event-loop delay window. */
  readonly runtime?: () => RuntimeSample;
  readonly health?: HealthServerStats | undefined;
  readonly flowLogs?: FlowLogCounters | undefined;
  readonly integrity?: IntegrityState | undefined;
  readonly spawnBroker?: SpawnBrokerState | undefined;
  /** Kernel telemetry from its last refresh; absent when TELEMETRY_INTERVAL=0s. */
  readonly telemetry?: readonly MetricFamily[] | undefined;
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

  if (source.httpGroup) httpPhaseMetrics(m, source.httpGroup);

  if (source.policySync) policySyncMetrics(m, source.policySync);
  if (source.returnPath) returnPathMetrics(m, source.returnPath);
  if (source.health) healthServerMetrics(m, source.health);
  for (const f of source.telemetry ?? []) {
    m.family(f.name, f.type, f.help);
    for (const s of f.samples) m.sample(f.name, s.labels, s.value);
  }
  if (source.flowLogs) flowLogMetrics(m, source.flowLogs);
  if (source.integrity) integrityMetrics(m, source.integrity);
  if (source.spawnBroker) spawnBrokerMetrics(m, source.spawnBroker);

  const cpu = process.cpuUsage();
  const runtime = source.runtime?.();
  m.family("process_resident_memory_bytes", "gauge", "Resident set size.");
  m.sample("process_resident_memory_bytes", {}, runtime?.rssBytes ?? process.memoryUsage.rss());
  m.family("process_cpu_seconds_total", "counter", "User and system CPU time.");
  m.sample("process_cpu_seconds_total", {}, (cpu.user + cpu.system) / 1e6);
  m.family("process_start_time_seconds", "gauge", "Start time since the Unix epoch.");
  m.sample("process_start_time_seconds", {}, source.startTimeSeconds);
  if (runtime) runtimeMetrics(m, runtime);
  return m.toString();
}

// prom-client's default names, help texts and units, less its
// nodejs_active_*_total gauges: `_total` is for counters (promtool refuses
// them) and sum() gives the same.
function runtimeMetrics(m: Exposition, r: RuntimeSample): void {
  if (r.openFds !== undefined) {
    m.family("process_open_fds", "gauge", "Number of open file descriptors.");
    m.sample("process_open_fds", {}, r.openFds);
  }
  m.family("nodejs_heap_size_total_bytes", "gauge", "Process heap size from Node.js in bytes.");
  m.sample("nodejs_heap_size_total_bytes", {}, r.heapTotalBytes);
  m.family("nodejs_heap_size_used_bytes", "gauge", "Process heap size used from Node.js in bytes.");
  m.sample("nodejs_heap_size_used_bytes", {}, r.heapUsedBytes);
  m.family("nodejs_external_memory_bytes", "gauge", "Node.js external memory size in bytes.");
  m.sample("nodejs_external_memory_bytes", {}, r.externalBytes);
  byType(
    m,
    "nodejs_active_handles",
    "Number of active libuv handles grouped by handle type.",
    r.activeHandles,
  );
  byType(
    m,
    "nodejs_active_resources",
    "Number of active resources keeping the event loop alive, grouped by type.",
    r.activeResources,
  );
  if (r.eventLoopDelay) {
    for (const [name, value] of Object.entries(r.eventLoopDelay)) {
      const family = `nodejs_eventloop_lag_${name}_seconds`;
      m.family(family, "gauge", `The ${name} of the recorded event loop delays since the last scrape.`);
      m.sample(family, {}, value);
    }
  }
}

// As blackbox_exporter's probe_http_duration_seconds{phase}, for the last probe
// of each URL; a phase that does not apply or was not reached has no sample.
function httpPhaseMetrics(m: Exposition, group: ProbeGroup<HttpExchange>): void {
  const name = "egress_gateway_probe_http_phase_duration_seconds";
  m.family(name, "gauge", "Duration of each phase of the URL's last HTTP probe.");
  for (const status of group.statuses) {
    const phases = status.lastResult?.detail?.phases;
    if (phases === undefined) continue;
    for (const phase of TIMED_PHASES) {
      const ms = phases[phase];
      if (ms !== undefined) m.sample(name, { target: status.target, phase }, Math.round(ms * 1000) / 1e6);
    }
  }
}

function byType(m: Exposition, name: string, help: string, counts: ReadonlyMap<string, number>): void {
  m.family(name, "gauge", help);
  for (const [type, count] of counts) m.sample(name, { type }, count);
}

function policySyncMetrics(m: Exposition, s: PolicySyncState): void {
  m.family(
    "egress_gateway_policy_sync_mode",
    "gauge",
    "1 for the mode in use: agent, or none (no socket mounted).",
  );
  m.sample("egress_gateway_policy_sync_mode", { mode: s.mode }, 1);
  if (s.mode === "none") return;
  m.family("egress_gateway_policy_sync_connected", "gauge", "1 while a policy-sync stream is open.");
  m.sample("egress_gateway_policy_sync_connected", {}, s.connected ? 1 : 0);
  m.family("egress_gateway_policy_sync_in_sync", "gauge", "1 once InSync arrived on the current stream.");
  m.sample("egress_gateway_policy_sync_in_sync", {}, s.inSync ? 1 : 0);
  m.family(
    "egress_gateway_policy_sync_reconnects_total",
    "counter",
    "Dial attempts after the first, including those that found no socket.",
  );
  m.sample("egress_gateway_policy_sync_reconnects_total", {}, s.reconnects);
  m.family("egress_gateway_policy_sync_messages_total", "counter", "Messages received from the node agent.");
  m.sample(
    "egress_gateway_policy_sync_messages_total",
    { handled: "true" },
    s.messagesReceived - s.messagesIgnored,
  );
  m.sample("egress_gateway_policy_sync_messages_total", { handled: "false" }, s.messagesIgnored);
  m.family("egress_gateway_policy_sync_routes", "gauge", "Routes kept from the node agent, by kind.");
  m.sample("egress_gateway_policy_sync_routes", { kind: "tunnel" }, s.routes.tunnels);
  m.sample("egress_gateway_policy_sync_routes", { kind: "remote_workload" }, s.routes.remoteWorkloads);
  m.sample("egress_gateway_policy_sync_routes", { kind: "our_workload" }, s.routes.ourRoute ? 1 : 0);
  m.family(
    "egress_gateway_policy_sync_incomplete_routes",
    "gauge",
    "Routes skipped for lack of a node IP or name.",
  );
  m.sample("egress_gateway_policy_sync_incomplete_routes", {}, s.incompleteRoutes);
  m.family(
    "egress_gateway_policy_sync_rejected_routes_total",
    "counter",
    "Route updates rejected as unsafe or invalid, never programmed, by reason.",
  );
  for (const [reason, count] of s.rejectedRoutes) {
    m.sample("egress_gateway_policy_sync_rejected_routes_total", { reason }, count);
  }
}

function flowLogMetrics(m: Exposition, s: FlowLogCounters): void {
  m.family("egress_gateway_flow_logs_total", "counter", "Flow-log lines written.");
  m.sample("egress_gateway_flow_logs_total", {}, s.logged);
  m.family(
    "egress_gateway_flow_logs_dropped_total",
    "counter",
    "Finished connections not logged, by reason.",
  );
  for (const [reason, count] of Object.entries(s.dropped))
    m.sample("egress_gateway_flow_logs_dropped_total", { reason }, count);
  m.family(
    "egress_gateway_flow_log_event_overflows_total",
    "counter",
    "Times the kernel dropped conntrack events because a listener fell behind (ENOBUFS).",
  );
  m.sample("egress_gateway_flow_log_event_overflows_total", {}, s.overflows);
  m.family(
    "egress_gateway_flow_log_listener_restarts_total",
    "counter",
    "conntrack event listeners restarted.",
  );
  m.sample("egress_gateway_flow_log_listener_restarts_total", {}, s.restarts);
  m.family("egress_gateway_flow_log_listeners_up", "gauge", "conntrack event listeners running (of 3).");
  m.sample("egress_gateway_flow_log_listeners_up", {}, s.listenersUp);
}

function returnPathMetrics(m: Exposition, s: ReturnPathState): void {
  m.family(
    "egress_gateway_return_path_entries",
    "gauge",
    "Entries programmed by the last successful reconcile.",
  );
  m.sample("egress_gateway_return_path_entries", { kind: "neighbour" }, s.neighbours);
  m.sample("egress_gateway_return_path_entries", { kind: "fdb" }, s.fdb);
  m.sample("egress_gateway_return_path_entries", { kind: "route" }, s.routes);
  m.sample("egress_gateway_return_path_entries", { kind: "exit_route" }, s.exitRoutes);
  m.family("egress_gateway_return_path_reconciles_total", "counter", "Reconcile passes, by result.");
  m.sample("egress_gateway_return_path_reconciles_total", { result: "success" }, s.passes - s.failures);
  m.sample("egress_gateway_return_path_reconciles_total", { result: "failure" }, s.failures);
  m.family(
    "egress_gateway_return_path_reconcile_duration_seconds",
    "gauge",
    "Duration of the last reconcile.",
  );
  m.sample("egress_gateway_return_path_reconcile_duration_seconds", {}, (s.lastDurationMs ?? 0) / 1000);
  m.family(
    "egress_gateway_return_path_skipped_routes",
    "gauge",
    "Incomplete routes skipped by the last reconcile.",
  );
  m.sample("egress_gateway_return_path_skipped_routes", {}, s.incompleteSkipped);
}

function healthServerMetrics(m: Exposition, s: HealthServerStats): void {
  m.family("egress_gateway_health_connections", "gauge", "Connections the health server holds open.");
  m.sample("egress_gateway_health_connections", {}, s.open);
  m.family(
    "egress_gateway_health_connections_max",
    "gauge",
    "Most connections the health server holds: HEALTH_MAX_CONNECTIONS, lowered to fit under the fd limit.",
  );
  m.sample("egress_gateway_health_connections_max", {}, s.bound);
  m.family(
    "egress_gateway_health_open_files_limit",
    "gauge",
    "The open files limit (RLIMIT_NOFILE) in force.",
  );
  m.sample("egress_gateway_health_open_files_limit", {}, s.fdLimit);
  m.family(
    "egress_gateway_health_connections_shed_total",
    "counter",
    "Connections closed or requests refused by the health server's limits, by reason.",
  );
  for (const reason of SHED_REASONS) {
    m.sample("egress_gateway_health_connections_shed_total", { reason }, s.shed[reason]);
  }
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

function integrityMetrics(m: Exposition, s: IntegrityState): void {
  m.family(
    "egress_gateway_dataplane_drifts_total",
    "counter",
    "Drifts from what init set up, by kind (ruleset, vxlan: repaired; forwarding, redirects, rp_filter: reported; conntrack: noted).",
  );
  for (const kind of DRIFT_KINDS) m.sample("egress_gateway_dataplane_drifts_total", { kind }, s.drifts[kind]);
  m.family("egress_gateway_dataplane_repairs_total", "counter", "Drifts put back with init's plan, by kind.");
  for (const kind of REPAIRABLE)
    m.sample("egress_gateway_dataplane_repairs_total", { kind }, s.repairs[kind]);
  m.family(
    "egress_gateway_dataplane_repair_failures_total",
    "counter",
    "Repair attempts after which the drift was still there, by kind.",
  );
  for (const kind of REPAIRABLE) {
    m.sample("egress_gateway_dataplane_repair_failures_total", { kind }, s.repairFailures[kind]);
  }
  m.family("egress_gateway_dataplane_checks_total", "counter", "Data-plane integrity checks completed.");
  m.sample("egress_gateway_dataplane_checks_total", {}, s.checks);
  if (s.lastCheckMs !== undefined) {
    m.family(
      "egress_gateway_dataplane_check_duration_seconds",
      "gauge",
      "Duration of the last check, repair included.",
    );
    m.sample("egress_gateway_dataplane_check_duration_seconds", {}, Math.round(s.lastCheckMs * 1000) / 1e6);
  }
}

function spawnBrokerMetrics(m: Exposition, s: SpawnBrokerState): void {
  m.family("egress_gateway_spawn_broker_up", "gauge", "1 while the spawn broker runs the gateway's tools.");
  m.sample("egress_gateway_spawn_broker_up", {}, s.up ? 1 : 0);
  m.family(
    "egress_gateway_spawn_broker_restarts_total",
    "counter",
    "Times the spawn broker was started again after it died.",
  );
  m.sample("egress_gateway_spawn_broker_restarts_total", {}, s.restarts);
  m.family(
    "egress_gateway_spawn_broker_direct_commands_total",
    "counter",
    "Tools the gateway ran from its own process because the spawn broker was not running.",
  );
  m.sample("egress_gateway_spawn_broker_direct_commands_total", {}, s.directRuns);
}
