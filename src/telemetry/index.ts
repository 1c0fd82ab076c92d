// Kernel telemetry of the gateway pod: the figures, how they are read, and
// the metric families and readiness verdict made from them.
import type { Clock } from "../clock.js";
import { ConntrackReader } from "./conntrack-reader.js";
import { readConntrackStats, readConntrackUsage, ruleCounterReader } from "./kernel.js";
import { Telemetry, type TelemetryLog } from "./telemetry.js";

export { telemetryFamilies, portUtilizationVerdict, type MetricFamily } from "./families.js";
export { Telemetry, type TelemetrySnapshot, type TelemetryLog } from "./telemetry.js";

export interface KernelTelemetryOptions {
  readonly intervalMs: number;
  readonly topN: number;
  readonly clock: Clock;
  readonly log: TelemetryLog;
}

/** The deadline of a read when telemetry is off and only the drain reads the table. */
const ON_DEMAND_DEADLINE_MS = 10_000; // 10 s

/**
 * Telemetry of the process's own network namespace; the deadline of a refresh
 * is its interval. With intervalMs 0 it is made but not started: the drain
 * still reads the live forwarded connections from it on demand.
 */
export function kernelTelemetry(options: KernelTelemetryOptions): Telemetry {
  const deadlineMs = options.intervalMs > 0 ? options.intervalMs : ON_DEMAND_DEADLINE_MS;
  const conntrack = new ConntrackReader({
    commandTimeoutMs: deadlineMs,
    onFallback: (reason) => options.log.info({ source: "table" }, reason),
  });
  return new Telemetry({
    intervalMs: options.intervalMs,
    deadlineMs,
    clock: options.clock,
    log: options.log,
    sources: {
      rules: ruleCounterReader(),
      usage: readConntrackUsage,
      stats: readConntrackStats,
      table: (signal) => conntrack.read(options.topN, signal),
      close: () => conntrack.close(),
    },
  });
}
