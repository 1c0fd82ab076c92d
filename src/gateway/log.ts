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
