// Structured JSON logs on stdout with stable field names: `msg`, `component`,
// `protocol`, `target`, `ready`, `up`, `code`, `detail`.
import pino, { type Logger } from "pino";
import type { LogLevel } from "../config/types.js";

export type { Logger };

export function createLogger(level: LogLevel, destination = pino.destination({ sync: true })): Logger {
  return pino(
    {
      level,
      base: { name: "egress-gateway" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

/**
 * Flow logs (FLOW_LOGS): a logger of their own, on the same stdout, always at
 * info whatever LOG_SEVERITY says: they are audit records, not diagnostics.
 */
export function createFlowLogger(destination: pino.DestinationStream): Logger {
  return pino(
    {
      level: "info",
      base: { name: "egress-gateway.flows" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
