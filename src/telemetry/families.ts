// The metric families of the kernel telemetry, as plain data from the last
// snapshot: the gateway's exposition writes them. Pure. Every label set is
// bounded: per address family, per source, or the top N.
import type { Destination } from "./conntrack-tally.js";
import { KERNEL_PORT_RANGE, type RuleCounters } from "./rule-counters.js";
import { SOURCE_NAMES, type RefreshRecord, type TelemetrySnapshot } from "./telemetry.js";

export interface Sample {
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface MetricFamily {
  readonly name: string;
  readonly type: "gauge" | "counter";
  readonly help: string;
  readonly samples: readonly Sample[];
}

const family = (
  name: string,
  type: MetricFamily["type"],
  help: string,
  samples: readonly Sample[],
): MetricFamily => ({ name, type, help, samples });

const one = (value: number | undefined): Sample[] => (value === undefined ? [] : [{ labels: {}, value }]);

const KERNEL_PORTS = KERNEL_PORT_RANGE.last - KERNEL_PORT_RANGE.first + 1;

/** Ports the SNAT rule of the destination's address family allocates from. */
export function portsAvailable(rules: RuleCounters | undefined, address: string): number {
  const perFamily = rules?.[address.includes(":") ? "ipv6" : "ipv4"];
  return perFamily?.snatPorts ?? KERNEL_PORTS;
}

export interface Utilization {
  readonly destination: Destination;
  readonly ratio: number;
}

/** Port utilisation of the top destinations, highest ratio first. */
export function utilizations(snapshot: TelemetrySnapshot): Utilization[] {
  return (snapshot.table?.destinations ?? [])
    .map((destination) => ({
      destination,
      ratio: destination.portsInUse / portsAvailable(snapshot.rules, destination.address),
    }))
    .sort((a, b) => b.ratio - a.ratio);
}

export function telemetryFamilies(snapshot: TelemetrySnapshot, record: RefreshRecord): MetricFamily[] {
  const { rules, usage, stats, table } = snapshot;
  const perFamily = (pick: (c: NonNullable<RuleCounters["ipv4"]>) => number): Sample[] =>
    (["ipv4", "ipv6"] as const).flatMap((name) => {
      const counters = rules?.[name];
      return counters ? [{ labels: { family: name }, value: pick(counters) }] : [];
    });
  const destinationLabels = (d: Destination): Record<string, string> => ({
    destination: d.address,
    port: String(d.port),
    protocol: d.protocol,
  });
  const used = utilizations(snapshot);
  return [
    family(
      "egress_gateway_forwarded_packets_total",
      "counter",
      "Packets forwarded by the gateway, both directions, per address family.",
      perFamily((c) => c.forwarded.packets),
    ),
    family(
      "egress_gateway_forwarded_bytes_total",
      "counter",
      "Bytes forwarded by the gateway, both directions, per address family.",
      perFamily((c) => c.forwarded.bytes),
    ),
    family(
      "egress_gateway_snat_packets_total",
      "counter",
      "Packets of SNATed connections, both directions, per address family.",
      perFamily((c) => c.snat.packets),
    ),
    family(
      "egress_gateway_snat_bytes_total",
      "counter",
      "Bytes of SNATed connections, both directions, per address family.",
      perFamily((c) => c.snat.bytes),
    ),
    family(
      "egress_gateway_snat_connections_total",
      "counter",
      "Connections SNATed to the gateway's address, per address family.",
      perFamily((c) => c.snatConnections),
    ),
    family(
      "egress_gateway_conntrack_entries",
      "gauge",
      "Conntrack entries in the pod's network namespace.",
      one(usage?.entries),
    ),
    family(
      "egress_gateway_conntrack_entries_limit",
      "gauge",
      "Conntrack table limit (nf_conntrack_max).",
      one(usage?.limit),
    ),
    family(
      "egress_gateway_conntrack_insert_failed_total",
      "counter",
      "New connections whose conntrack entry lost an insert race (their packet is dropped).",
      one(stats?.insertFailed),
    ),
    family(
      "egress_gateway_conntrack_drop_total",
      "counter",
      "Packets dropped because conntrack could not make an entry (table full).",
      one(stats?.drop),
    ),
    family(
      "egress_gateway_conntrack_early_drop_total",
      "counter",
      "Conntrack entries evicted early to make room in a full table.",
      one(stats?.earlyDrop),
    ),
    family(
      "egress_gateway_conntrack_invalid_total",
      "counter",
      "Packets conntrack could not track (malformed or outside the TCP window).",
      one(stats?.invalid),
    ),
    family(
      "egress_gateway_forwarded_connections",
      "gauge",
      "Live forwarded (SNATed) connections, TCP's TIME_WAIT and CLOSE excluded.",
      one(table?.liveForwarded),
    ),
    family(
      "egress_gateway_snat_ports_available",
      "gauge",
      "Source ports the SNAT rule allocates from: the size of its port range, available toward each destination ip, port and protocol.",
      table ? one(rules?.ipv4?.snatPorts ?? rules?.ipv6?.snatPorts ?? KERNEL_PORTS) : [],
    ),
    family(
      "egress_gateway_snat_ports_in_use",
      "gauge",
      "SNAT source ports in use toward each of the top N destinations (TIME_WAIT included).",
      (table?.destinations ?? []).map((d) => ({ labels: destinationLabels(d), value: d.portsInUse })),
    ),
    family(
      "egress_gateway_snat_port_utilization_ratio",
      "gauge",
      "SNAT source ports in use over those available, toward each of the top N destinations.",
      used.map((u) => ({ labels: destinationLabels(u.destination), value: round(u.ratio) })),
    ),
    family(
      "egress_gateway_snat_port_utilization_max_ratio",
      "gauge",
      "The highest SNAT port utilisation toward any single destination.",
      table ? one(round(used[0]?.ratio ?? 0)) : [],
    ),
    family(
      "egress_gateway_top_talker_connections",
      "gauge",
      "Live forwarded connections of each of the top N client addresses.",
      (table?.talkers ?? []).map((t) => ({ labels: { client: t.client }, value: t.connections })),
    ),
    family(
      "egress_gateway_telemetry_refreshes_total",
      "counter",
      "Kernel telemetry refreshes.",
      one(record.refreshes),
    ),
    family(
      "egress_gateway_telemetry_refresh_duration_seconds",
      "gauge",
      "Duration of the last kernel telemetry refresh.",
      one(record.lastDurationSeconds === undefined ? undefined : round(record.lastDurationSeconds)),
    ),
    family(
      "egress_gateway_telemetry_refresh_deadline_exceeded_total",
      "counter",
      "Refreshes cut off by their deadline.",
      one(record.deadlineExceeded),
    ),
    family(
      "egress_gateway_telemetry_source_up",
      "gauge",
      "1 when the last refresh read the source (rules, usage, stats, table), 0 when it failed.",
      record.refreshes === 0
        ? []
        : SOURCE_NAMES.map((source) => ({
            labels: { source },
            value: snapshot[source] === undefined ? 0 : 1,
          })),
    ),
    family(
      "egress_gateway_telemetry_refresh_errors_total",
      "counter",
      "Failed reads per telemetry source (rules, usage, stats, table), deadline cut-offs included.",
      Object.entries(record.errors).map(([source, value]) => ({ labels: { source }, value })),
    ),
  ];
}

const round = (value: number): number => Math.round(value * 1e6) / 1e6;

export interface PortVerdict {
  readonly ready: boolean;
  readonly detail: string;
}

/**
 * READINESS_MAX_PORT_UTILIZATION's verdict. Unknown utilisation (the table
 * could not be read) keeps the gateway ready: a telemetry failure must not
 * take a working gateway out of service.
 */
export function portUtilizationVerdict(snapshot: TelemetrySnapshot, max: number): PortVerdict {
  if (snapshot.table === undefined) return { ready: true, detail: "utilisation unknown: conntrack not read" };
  const [top] = utilizations(snapshot);
  if (top === undefined) return { ready: true, detail: "no SNATed connection" };
  const d = top.destination;
  const where = `${d.address.includes(":") ? `[${d.address}]` : d.address}:${d.port}/${d.protocol}`;
  const text = `${d.portsInUse} SNAT ports in use toward ${where}, ${percent(top.ratio)} (limit ${percent(max)})`;
  return { ready: top.ratio <= max, detail: text };
}

const percent = (ratio: number): string => `${Math.round(ratio * 1000) / 10}%`;
