// How many forwarded connections are live in the pod right now: read from the
// conntrack table on a cadence of its own (never on a request path) and on
// demand while draining.
import type { Clock, Timer } from "../clock.js";
import { countLiveForwarded } from "./conntrack-table.js";
import type { EventStreamLog } from "./event-stream.js";

export class LiveConnections {
  private last: number | undefined;
  private timer: Timer | undefined;
  private failing = false;
  private readonly pod: ReadonlySet<string>;

  constructor(
    podAddresses: readonly string[],
    private readonly options: {
      readonly clock: Clock;
      readonly log: EventStreamLog;
      readonly refreshMs: number;
      readonly command?: string;
    },
  ) {
    this.pod = new Set(podAddresses);
  }

  /** The last count read, undefined until one succeeded. */
  get current(): number | undefined {
    return this.last;
  }

  start(): void {
    const tick = (): void => {
      void this.refresh().finally(() => {
        if (this.timer !== undefined) this.timer = this.options.clock.setTimer(this.options.refreshMs, tick);
      });
    };
    this.timer = this.options.clock.setTimer(0, tick);
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** Reads the table now; undefined when it cannot (logged once until it works again). */
  async refresh(): Promise<number | undefined> {
    try {
      this.last = await countLiveForwarded(this.pod, this.options.command);
      if (this.failing) this.options.log.info({}, "forwarded connections readable again");
      this.failing = false;
      return this.last;
    } catch (error) {
      if (!this.failing) {
        const detail = error instanceof Error ? error.message : String(error);
        this.options.log.warn({ detail }, "cannot count forwarded connections (conntrack -L)");
      }
      this.failing = true;
      return undefined;
    }
  }
}
