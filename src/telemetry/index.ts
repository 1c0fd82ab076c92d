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

/** Telemetry of the process's own network namespace; the deadline of a refresh is its interval. */
export function kernelTelemetry(options: KernelTelemetryOptions): Telemetry {
  const conntrack = new ConntrackReader();
  return new Telemetry({
    intervalMs: options.intervalMs,
    deadlineMs: options.intervalMs,
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
