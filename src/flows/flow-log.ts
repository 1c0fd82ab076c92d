// Flow logs: one record per finished forwarded connection, fed by conntrack
// events (never by polling the table), rate limited.
//
// The kernel reports a connection's counters only when it drops the entry
// (DESTROY), and for TCP that is after TIME_WAIT (120 s) or CLOSE (10 s). The
// moment the connection really ended comes from a second and third listener,
// filtered in the kernel to TCP entries entering TIME_WAIT or CLOSE; their
// times wait in `closes` until the DESTROY of the same entry (conntrack id).
import type { Clock } from "../clock.js";
import { parseConntrackLine } from "./conntrack-event.js";
import { isLive, listTranslated } from "./conntrack-table.js";
import { EventStream, type EventStreamLog } from "./event-stream.js";
import { flowRecord, isForwarded, type FlowRecord } from "./record.js";
import { TokenBucket } from "./token-bucket.js";

export type DropReason = "rate_limit" | "unparsable";

export interface FlowLogCounters {
  readonly logged: number;
  readonly dropped: Readonly<Record<DropReason, number>>;
  /** Times the kernel dropped events for a listener that fell behind (how many is unknown). */
  readonly overflows: number;
  readonly restarts: number;
  /** Listeners running now, of `listeners`. */
  readonly listenersUp: number;
  readonly listeners: number;
}

export interface FlowLogOptions {
  /** The pod's own addresses: what forwarded connections are translated to. */
  readonly podAddresses: readonly string[];
  /** Records a second; 0 for no limit. */
  readonly ratePerSecond: number;
  readonly burst: number;
  readonly clock: Clock;
  /** Wall time in ms since the epoch, for events without their own timestamp. */
  readonly wallClock: () => number;
  readonly write: (record: FlowRecord) => void;
  readonly log: EventStreamLog;
  /** The conntrack program (tests). */
  readonly command?: string;
}

// 8 MiB of socket buffer absorbs a burst of a few tens of thousands of events
// while Node is busy; the kernel only charges what is queued.
const BUFFER = ["--buffer-size", String(8 * 1024 * 1024)];
// Only translated entries: the pod's own probes and health answers never reach Node.
const SNAT_ONLY = ["--src-nat"];
const OUTPUT = ["-o", "timestamp,extended,id,ktimestamp"];
/** TCP states in which a connection is over: after FIN both ways, or after a reset. */
const CLOSED_STATES = ["TIME_WAIT", "CLOSE"] as const;
// Bounds for closes whose DESTROY never comes (lost events): the table's own
// size here, and far longer than TIME_WAIT.
const MAX_PENDING_CLOSES = 262_144;
const PENDING_CLOSE_MS = 600_000; // 10 min

export class FlowLog {
  private readonly closes = new Map<number, number>();
  private readonly streams: EventStream[];
  private readonly bucket: TokenBucket | undefined;
  private readonly pod: ReadonlySet<string>;
  private logged = 0;
  private readonly dropped: Record<DropReason, number> = { rate_limit: 0, unparsable: 0 };
  private overflows = 0;

  constructor(private readonly options: FlowLogOptions) {
    this.pod = new Set(options.podAddresses);
    const { clock, log, command } = options;
    this.bucket =
      options.ratePerSecond > 0
        ? new TokenBucket(options.ratePerSecond, options.burst, clock.now())
        : undefined;
    const onOverflow = (): void => {
      this.overflows += 1;
    };
    this.streams = [
      new EventStream({
        args: ["-E", "-e", "DESTROY", ...SNAT_ONLY, ...OUTPUT, ...BUFFER],
        onLine: (line) => this.finished(line),
        onOverflow,
        clock,
        log,
        command,
      }),
      ...CLOSED_STATES.map(
        (state) =>
          new EventStream({
            args: ["-E", "-e", "UPDATE", "-p", "tcp", "--state", state, ...SNAT_ONLY, ...OUTPUT, ...BUFFER],
            onLine: (line) => this.closed(line),
            onOverflow,
            clock,
            log,
            command,
          }),
      ),
    ];
  }

  start(): void {
    for (const stream of this.streams) stream.start();
  }

  /**
   * Stops listening, then writes a record for every forwarded connection still
   * in the table, so that none goes unlogged when the pod's namespace goes away:
   * finished ones (TIME_WAIT, CLOSE) as usual, live ones with `open: true`.
   */
  async stop(): Promise<void> {
    for (const stream of this.streams) stream.stop();
    const entries = await listTranslated(this.pod, this.options.command).catch((error: unknown) => {
      this.options.log.warn(
        { detail: error instanceof Error ? error.message : String(error) },
        "flow logs: cannot list the connections left at exit",
      );
      return [];
    });
    const now = this.options.wallClock();
    for (const entry of entries) {
      const closedAt = entry.id === undefined ? undefined : this.closes.get(entry.id);
      const record = flowRecord(entry, closedAt ?? now, now);
      this.emit(isLive(entry) ? { ...record, open: true } : record);
    }
  }

  counters(): FlowLogCounters {
    return {
      logged: this.logged,
      dropped: { ...this.dropped },
      overflows: this.overflows,
      restarts: this.streams.reduce((sum, s) => sum + s.restarts, 0),
      listenersUp: this.streams.filter((s) => s.running).length,
      listeners: this.streams.length,
    };
  }

  private closed(line: string): void {
    const event = parseConntrackLine(line);
    if (event?.id === undefined || this.closes.has(event.id)) return;
    const at = event.at ?? this.options.wallClock();
    for (const [id, time] of this.closes) {
      if (this.closes.size < MAX_PENDING_CLOSES && at - time < PENDING_CLOSE_MS) break;
      this.closes.delete(id);
    }
    this.closes.set(event.id, at);
  }

  private finished(line: string): void {
    const event = parseConntrackLine(line);
    if (event === undefined) {
      this.dropped.unparsable += 1;
      return;
    }
    const closedAt = event.id === undefined ? undefined : this.closes.get(event.id);
    if (closedAt !== undefined) this.closes.delete(event.id!);
    if (!isForwarded(event, this.pod)) return;
    this.emit(flowRecord(event, closedAt, this.options.wallClock()));
  }

  private emit(record: FlowRecord): void {
    if (this.bucket !== undefined && !this.bucket.take(this.options.clock.now())) {
      this.dropped.rate_limit += 1;
      return;
    }
    this.logged += 1;
    this.options.write(record);
  }
}
