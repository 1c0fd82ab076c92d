// Flags, statistics and plain-text tables shared by the benchmarks.
import { loadavg } from "node:os";
import { parseArgs } from "node:util";

/** Parses `--name N` flags that must be positive integers, with defaults. */
export function integerFlags<K extends string>(defaults: Record<K, number>): Record<K, number> {
  const { values } = parseArgs({
    options: Object.fromEntries(Object.keys(defaults).map((k) => [k, { type: "string" as const }])),
    strict: true,
  });
  const parsed = { ...defaults };
  for (const key of Object.keys(defaults) as K[]) {
    const raw = values[key];
    if (raw === undefined) continue;
    const n = Number(raw);
    if (!Number.isInteger(n) || n <= 0) {
      throw new Error(`--${key} must be a positive integer, got ${JSON.stringify(raw)}`);
    }
    parsed[key] = n;
  }
  return parsed;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export const fixed = (n: number, digits = 1): string => (Number.isFinite(n) ? n.toFixed(digits) : "n/a");
export const mebibytes = (bytes: number): string => `${fixed(bytes / 2 ** 20)} MiB`;
export const percent = (share: number): string => `${fixed(share * 100, 2)} %`;
export const verdict = (ok: boolean): string => (ok ? "met" : "NOT MET");

/** Left-aligned first column, right-aligned others, two spaces apart. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows
    .map((r) =>
      r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  "),
    )
    .join("\n");
}

/**
 * Runs `cleanup` once on SIGINT/SIGTERM (then exits 130/143) and returns it for
 * the caller's `finally`. Cleanup must be synchronous: a signal handler cannot wait.
 */
export function cleanupOnSignal(cleanup: () => void): () => void {
  let done = false;
  const once = (): void => {
    if (done) return;
    done = true;
    cleanup();
  };
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: cleaning up`);
      once();
      process.exit(code);
    });
  }
  return once;
}

/** The machine's 1-minute load average, printed beside results: other work on 2 cores skews them. */
export const loadLine = (): string => `load average (1 min): ${fixed(loadavg()[0] ?? NaN, 2)}`;
