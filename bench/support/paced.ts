// An open-loop client: requests leave at a fixed rate whether or not earlier
// ones have answered, spread over a keep-alive pool, timed in microseconds.
// autocannon's overallRate bursts each connection's quota at the start of every
// second and back-fills latencies for coordinated omission, which at 1 ms
// resolution turns a fast server's p99 into the length of the burst.
import { Agent, request } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";

export interface PacedResult {
  readonly sent: number;
  readonly answered: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

const TICK_MS = 1; // sends what is due every millisecond

export async function pacedLatency(
  url: string,
  options: { rate: number; seconds: number; connections: number },
): Promise<PacedResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.connections });
  const latencies: number[] = [];
  let non2xx = 0;
  let errors = 0;
  let sent = 0;
  const inFlight = new Set<Promise<void>>();
  const send = (): void => {
    const started = performance.now();
    const done = new Promise<void>((resolve) => {
      const req = request(url, { agent }, (res) => {
        if (res.statusCode === undefined || res.statusCode < 200 || res.statusCode > 299) non2xx++;
        res.resume();
        res.on("end", () => {
          latencies.push(performance.now() - started);
          resolve();
        });
      });
      req.on("error", () => {
        errors++;
        resolve();
      });
      req.end();
    });
    inFlight.add(done);
    void done.then(() => inFlight.delete(done));
  };

  const start = performance.now();
  const end = start + options.seconds * 1000;
  for (let now = start; now < end; now = performance.now()) {
    const due = Math.floor(((now - start) * options.rate) / 1000);
    for (; sent < due; sent++) send();
    await sleep(TICK_MS);
  }
  await Promise.all(inFlight);
  agent.destroy();

  const sorted = latencies.sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  return {
    sent,
    answered: sorted.length,
    non2xx,
    errors,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    maxMs: sorted.at(-1) ?? NaN,
  };
}
