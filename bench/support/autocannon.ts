// autocannon ships no type declarations; this is the slice of its programmatic
// API (README "Results") that the benchmarks use.
import { createRequire } from "node:module";

export interface Histogram {
  readonly average: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

export interface AutocannonResult {
  readonly requests: Histogram & { readonly total: number };
  readonly latency: Histogram;
  readonly duration: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly non2xx: number;
  readonly statusCodeStats: Readonly<Record<string, { readonly count: number }>>;
}

export interface AutocannonOptions {
  readonly url: string;
  readonly connections: number;
  readonly pipelining: number;
  readonly duration: number;
  readonly headers?: Readonly<Record<string, string>>;
}

const require = createRequire(import.meta.url);
const autocannonModule = require("autocannon") as (options: AutocannonOptions) => Promise<AutocannonResult>;

export function autocannon(options: AutocannonOptions): Promise<AutocannonResult> {
  return autocannonModule(options);
}
