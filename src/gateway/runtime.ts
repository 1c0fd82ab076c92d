// The process as a soak sees it: memory, open descriptors, libuv handles and
// event-loop delay. Exposed under prom-client's default metric names, so that
// dashboards (and a later switch to prom-client) keep the same series.
import { readdirSync } from "node:fs";
import { monitorEventLoopDelay, type IntervalHistogram } from "node:perf_hooks";

export interface RuntimeSample {
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly heapTotalBytes: number;
  readonly externalBytes: number;
  /** undefined where /proc is not mounted. */
  readonly openFds: number | undefined;
  /** Active libuv handles by type (sockets, servers, pipes). */
  readonly activeHandles: ReadonlyMap<string, number>;
  /** What keeps the event loop alive, by type: handles, requests and timers (a timer leak shows here). */
  readonly activeResources: ReadonlyMap<string, number>;
  /** Event-loop delay since the previous sample, in seconds; undefined before the first measurement. */
  readonly eventLoopDelay:
    { readonly p50: number; readonly p90: number; readonly p99: number; readonly max: number } | undefined;
}

/** prom-client samples event-loop delay at 10 ms resolution too. */
const RESOLUTION_MS = 10;

export class RuntimeMonitor {
  private readonly delay: IntervalHistogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });

  constructor() {
    this.delay.enable();
  }

  /** Reads the figures and starts a new event-loop delay window (as prom-client does at each scrape). */
  sample(): RuntimeSample {
    const memory = process.memoryUsage();
    const seconds = (ns: number): number => ns / 1e9;
    const delay = this.delay;
    const eventLoopDelay =
      delay.count > 0
        ? {
            p50: seconds(delay.percentile(50)),
            p90: seconds(delay.percentile(90)),
            p99: seconds(delay.percentile(99)),
            max: seconds(delay.max),
          }
        : undefined;
    delay.reset();
    return {
      rssBytes: memory.rss,
      heapUsedBytes: memory.heapUsed,
      heapTotalBytes: memory.heapTotal,
      externalBytes: memory.external,
      openFds: openFds(),
      activeHandles: countByType((handleList?.call(process) ?? []).map((h) => h.constructor.name)),
      activeResources: countByType(process.getActiveResourcesInfo()),
      eventLoopDelay,
    };
  }

  close(): void {
    this.delay.disable();
  }
}

function openFds(): number | undefined {
  try {
    // The listing itself holds one descriptor while it runs.
    return readdirSync("/proc/self/fd").length - 1;
  } catch {
    return undefined;
  }
}

// prom-client's nodejs_active_handles counts this undocumented list; the
// documented getActiveResourcesInfo() (nodejs_active_resources) adds timers and requests.
const handleList = (process as unknown as { _getActiveHandles?: () => object[] })._getActiveHandles;

function countByType(types: readonly string[]): Map<string, number> {
  const byType = new Map<string, number>();
  for (const type of types) byType.set(type, (byType.get(type) ?? 0) + 1);
  return byType;
}
