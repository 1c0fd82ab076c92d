// One prober signature for every protocol, as blackbox_exporter does: the
// scheduler and the readiness window know nothing about ICMP or HTTP.

export interface ProbeFailure {
  /** Stable machine-readable reason, e.g. "TIMEOUT", "UNREACHABLE", "CONNECT_TIMEOUT". */
  readonly code: string;
  /** One human line, safe to log. */
  readonly message: string;
}

export interface ProbeResult<Detail = unknown> {
  readonly ok: boolean;
  /** Wall time from the start of the probe to its result, in milliseconds. */
  readonly durationMs: number;
  /** Present exactly when ok is false. */
  readonly failure?: ProbeFailure;
  /** What only the protocol knows (HTTP: the status and phase timings), passed on untouched. */
  readonly detail?: Detail;
}

/**
 * Probes one target once. `signal` is the probe's deadline. Must resolve
 * (never reject) by the time it aborts plus a small margin, and must not
 * leave a socket open afterwards.
 */
export type Prober<Detail = unknown> = (target: string, signal: AbortSignal) => Promise<ProbeResult<Detail>>;
