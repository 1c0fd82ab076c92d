// One prober signature for every protocol, as blackbox_exporter does: the
// scheduler and the readiness window know nothing about ICMP or HTTP.

export interface ProbeFailure {
  /** Stable machine-readable reason, e.g. "TIMEOUT", "UNREACHABLE", "CONNECT_TIMEOUT". */
  readonly code: string;
  /** One human line, safe to log. */
  readonly message: string;
}

export interface ProbeResult {
  readonly ok: boolean;
  /** Wall time from the start of the probe to its result, in milliseconds. */
  readonly durationMs: number;
  /** Present exactly when ok is false. */
  readonly failure?: ProbeFailure;
  /** HTTP only: the response status, when a response head arrived. */
  readonly status?: number;
}

/**
 * Probes one target once. Must resolve (never reject) by the time `signal`
 * aborts plus a small margin, and must not leave a socket open afterwards.
 */
export type Prober = (target: string, signal: AbortSignal) => Promise<ProbeResult>;
