// Phase accounting of one HTTP exchange, pure: the shell stamps marks as the
// exchange goes, these functions turn them into the phase a failure happened
// in and into per-phase durations, named as blackbox_exporter's
// probe_http_duration_seconds{phase} names them.
import type { HttpPhase } from "./http-failure.js";

/** performance.now() at the start and at the end of each step reached so far. */
export interface PhaseMarks {
  start: number;
  /** The name lookup ended; never set for an IP literal. */
  lookup?: number;
  tcp?: number;
  tls?: number;
  headers?: number;
  body?: number;
}

/** The timed phases, in order; a phase that does not apply (tls for http:) or was not reached is absent. */
export const TIMED_PHASES = ["resolve", "connect", "tls", "processing", "transfer"] as const;

export type TimedPhase = (typeof TIMED_PHASES)[number];

/**
 * Milliseconds per phase: `resolve` the name lookup, `connect` the TCP
 * handshake, `tls` the TLS handshake, `processing` from the connection being
 * ready to the response head, `transfer` from the head to the end of the body
 * or the read bound.
 */
export type HttpPhaseTimings = { readonly [P in TimedPhase]?: number };

/** What only an HTTP probe knows, carried as the result's protocol detail. */
export interface HttpExchange {
  /** The response status, when a response head arrived. */
  readonly status?: number;
  readonly phases: HttpPhaseTimings;
}

/** The phase an exchange is in, for naming a failure or a deadline. */
export function phaseAt(marks: PhaseMarks, https: boolean): HttpPhase {
  if (marks.tcp === undefined) return "connect";
  if (https && marks.tls === undefined) return "tls";
  return marks.headers === undefined ? "headers" : "body";
}

export function phaseTimings(marks: PhaseMarks): HttpPhaseTimings {
  const timings: { -readonly [P in TimedPhase]?: number } = {};
  const span = (phase: TimedPhase, from: number | undefined, to: number | undefined): void => {
    if (from !== undefined && to !== undefined) timings[phase] = Math.round((to - from) * 10) / 10;
  };
  span("resolve", marks.start, marks.lookup);
  span("connect", marks.lookup ?? marks.start, marks.tcp);
  span("tls", marks.tcp, marks.tls);
  span("processing", marks.tls ?? marks.tcp, marks.headers);
  span("transfer", marks.headers, marks.body);
  return timings;
}
