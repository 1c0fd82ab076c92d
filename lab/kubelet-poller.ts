// kubelet's readiness probe, as it polls a pod: a fresh TCP connection per
// probe (Go's prober disables keep-alive), `GET /readiness`, a timeout, on a
// fixed period whether or not the previous probe finished. A probe counts as
// answered when a complete status line and head arrive within the timeout,
// whatever the status (503 is an answer: the gateway said it is not ready).
import { connect } from "node:net";

export interface PollerOptions {
  readonly host: string;
  readonly port: number;
  readonly sourceAddress?: string;
  readonly periodMs?: number;
  readonly timeoutMs?: number;
}

export interface PollResult {
  readonly sent: number;
  readonly answered: number;
  /** Latency of each answered probe, connect included, in ms. */
  readonly latenciesMs: readonly number[];
  /** How the unanswered probes ended: "timeout", "ECONNRESET", ... */
  readonly failures: ReadonlyMap<string, number>;
}

const REQUEST = (host: string): string =>
  `GET /readiness HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: kube-probe/1.31\r\nAccept: */*\r\nConnection: close\r\n\r\n`;

/** One probe: resolves with its latency in ms, or the reason it got no answer. */
export function probeOnce(options: PollerOptions): Promise<{ ms: number } | { failure: string }> {
  const started = performance.now();
  return new Promise((resolve) => {
    let head = "";
    let settled = false;
    const finish = (result: { ms: number } | { failure: string }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const socket = connect({
      host: options.host,
      port: options.port,
      ...(options.sourceAddress ? { localAddress: options.sourceAddress } : {}),
    });
    const timer = setTimeout(() => finish({ failure: "timeout" }), options.timeoutMs ?? 1_000);
    socket.setEncoding("latin1");
    socket.on("connect", () => socket.write(REQUEST(options.host)));
    socket.on("data", (chunk: string) => {
      head += chunk;
      if (/^HTTP\/1\.1 \d{3} /.test(head) && head.includes("\r\n\r\n")) {
        finish({ ms: performance.now() - started });
      }
    });
    socket.on("error", (error: NodeJS.ErrnoException) => finish({ failure: error.code ?? error.message }));
    socket.on("close", () => finish({ failure: "closed without an answer" }));
  });
}

/** Polls until stop() is called; stop() resolves once the probes in flight have ended. */
export function pollReadiness(options: PollerOptions): { stop(): Promise<PollResult> } {
  const latenciesMs: number[] = [];
  const failures = new Map<string, number>();
  const inFlight = new Set<Promise<void>>();
  let sent = 0;
  const tick = (): void => {
    sent++;
    const probe = probeOnce(options).then((result) => {
      if ("ms" in result) latenciesMs.push(result.ms);
      else failures.set(result.failure, (failures.get(result.failure) ?? 0) + 1);
    });
    inFlight.add(probe);
    void probe.finally(() => inFlight.delete(probe));
  };
  const timer = setInterval(tick, options.periodMs ?? 100);
  tick();
  return {
    async stop() {
      clearInterval(timer);
      await Promise.all(inFlight);
      return { sent, answered: latenciesMs.length, latenciesMs, failures };
    },
  };
}

/** The q-quantile (0..1) of `values`, nearest rank; NaN for none. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}
