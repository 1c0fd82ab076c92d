// The soak's arithmetic, kept pure for its unit test: least-squares slopes of
// the per-minute samples after warm-up, and the verdict against the targets.

/** One sample of the gateway, taken once a minute. */
export interface SoakSample {
  /** Minutes since the gateway started. */
  readonly minute: number;
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly openFds: number;
  readonly activeHandles: number;
  readonly activeResources: number;
  /** p99 of the event-loop delay over the minute before the sample. */
  readonly eventLoopP99Seconds: number;
}

export type SeriesKey = Exclude<keyof SoakSample, "minute">;

export interface Series {
  readonly key: SeriesKey;
  readonly label: string;
  readonly unit: string;
  /** Sample value to the unit shown. */
  readonly scale: number;
  /**
   * "slope": |least-squares slope| below `limit` units per 10 minutes.
   * "max": every sample after warm-up below `limit` units.
   */
  readonly target: { readonly kind: "slope" | "max"; readonly limit: number };
}

const MB = 1e6;

export const SOAK_SERIES: readonly Series[] = [
  { key: "rssBytes", label: "RSS", unit: "MB", scale: 1 / MB, target: { kind: "slope", limit: 1 } },
  {
    key: "heapUsedBytes",
    label: "V8 heap used",
    unit: "MB",
    scale: 1 / MB,
    target: { kind: "slope", limit: 1 },
  },
  // "Flat": less than one more descriptor or handle per 10 minutes, on the fitted line.
  { key: "openFds", label: "open fds", unit: "fds", scale: 1, target: { kind: "slope", limit: 1 } },
  {
    key: "activeHandles",
    label: "active handles",
    unit: "handles",
    scale: 1,
    target: { kind: "slope", limit: 1 },
  },
  {
    key: "activeResources",
    label: "active resources",
    unit: "resources",
    scale: 1,
    target: { kind: "slope", limit: 1 },
  },
  {
    key: "eventLoopP99Seconds",
    label: "event-loop delay p99",
    unit: "ms",
    scale: 1000,
    target: { kind: "max", limit: 20 },
  },
];

/** Least-squares slope of y over x; NaN with fewer than two distinct x. */
export function leastSquaresSlope(points: readonly (readonly [number, number])[]): number {
  const n = points.length;
  if (n < 2) return NaN;
  const meanX = points.reduce((sum, [x]) => sum + x, 0) / n;
  const meanY = points.reduce((sum, [, y]) => sum + y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (const [x, y] of points) {
    sxy += (x - meanX) * (y - meanY);
    sxx += (x - meanX) ** 2;
  }
  return sxx === 0 ? NaN : sxy / sxx;
}

/** The fitted line y = intercept + slope * x. */
export function leastSquaresLine(points: readonly (readonly [number, number])[]): {
  slope: number;
  intercept: number;
} {
  const slope = leastSquaresSlope(points);
  const n = points.length;
  const meanX = points.reduce((sum, [x]) => sum + x, 0) / n;
  const meanY = points.reduce((sum, [, y]) => sum + y, 0) / n;
  return { slope, intercept: meanY - slope * meanX };
}

export interface SeriesSummary {
  readonly series: Series;
  /** In the series' unit per 10 minutes, over the samples after warm-up. */
  readonly slopePer10Min: number;
  readonly intercept: number;
  readonly first: number;
  readonly last: number;
  readonly min: number;
  readonly max: number;
  readonly met: boolean;
}

/** The samples the verdict reads: those taken at or after `warmupMinutes`. */
export function afterWarmup(samples: readonly SoakSample[], warmupMinutes: number): SoakSample[] {
  return samples.filter((s) => s.minute >= warmupMinutes);
}

export function summarize(samples: readonly SoakSample[], warmupMinutes: number): SeriesSummary[] {
  const kept = afterWarmup(samples, warmupMinutes);
  return SOAK_SERIES.map((series) => {
    // A minute whose /metrics scrape failed has NaN for the gateway's own figures.
    const points = kept
      .map((s) => [s.minute, s[series.key] * series.scale] as const)
      .filter(([, y]) => Number.isFinite(y));
    const values = points.map(([, y]) => y);
    const { slope, intercept } = leastSquaresLine(points);
    const slopePer10Min = slope * 10;
    const max = Math.max(...values);
    const met =
      series.target.kind === "slope"
        ? Math.abs(slopePer10Min) < series.target.limit
        : values.length > 0 && max < series.target.limit;
    return {
      series,
      slopePer10Min,
      intercept,
      first: values[0] ?? NaN,
      last: values.at(-1) ?? NaN,
      min: Math.min(...values),
      max,
      met,
    };
  });
}

/** What the target says, for the report: "< 1 MB per 10 min" or "< 20 ms". */
export function targetText(series: Series): string {
  return series.target.kind === "slope"
    ? `|slope| < ${series.target.limit} ${series.unit} per 10 min`
    : `every sample < ${series.target.limit} ${series.unit}`;
}
