// Flow logs: one record per finished forwarded connection, fed by conntrack
// events (never by polling the table), rate limited.
//
// The kernel reports a connection's counters only when it drops the entry
// (DESTROY), and for TCP that is after TIME_WAIT (120 s) or CLOSE (10 s). The
// moment the connection really ended comes from a second and third listener
// of UPDATE events, which conntrack (in user space: 1.4.7 attaches no kernel
// filter) narrows to TCP entries entering TIME_WAIT or CLOSE; their times wait
// in `closes` until the DESTROY of the same entry (conntrack id).
import type { Clock, Timer } from "../clock.js";
import { parseCloseEvent, parseConntrackLine } from "./conntrack-event.js";
import { isLive, listTranslated } from "./conntrack-table.js";
import { EventStream, type EventStreamLog } from "./event-stream.js";
import { DestroyDrops } from "./netlink-drops.js";
import { flowRecord, isForwarded, type FlowRecord } from "./record.js";
import { TokenBucket } from "./token-bucket.js";

/** `kernel_buffer`: the kernel dropped the DESTROY event (the listener's socket was full). */
export type DropReason = "rate_limit" | "unparsable" | "kernel_buffer";

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
  /** /proc/net/netlink of the pod's namespace, for the kernel's drop counts (tests). */
  readonly readNetlink?: () => string;
}

// No --buffer-size: conntrack 1.4.7 applies it to its query socket, not to the
// event socket (strace: SO_RCVBUFFORCE on the socket bound to no group), so the
// listeners read with the host's net.core.rmem_default, which a pod cannot
// change. What that loses is counted (netlink-drops.ts).
// Only translated entries: the pod's own probes and health answers never reach Node.
const SNAT_ONLY = ["--src-nat"];
const OUTPUT = ["-o", "timestamp,extended,id,ktimestamp"];
/** TCP states in which a connection is over: after FIN both ways, or after a reset. */
const CLOSED_STATES = ["TIME_WAIT", "CLOSE"] as const;
// Bounds for closes whose DESTROY never comes (lost events): the table's own
// size here, and far longer than TIME_WAIT.
const MAX_PENDING_CLOSES = 262_144;
const PENDING_CLOSE_MS = 600_000; // 10 min
/** At most one warning line about lost flows per this long; the counters have every one. */
const LOSS_REPORT_MS = 60_000; // 1 min
const LOSS_SETTLE_MS = 1_000; // 1 s

interface LossCounts {
  readonly kernel: number;
  readonly rateLimited: number;
  readonly overflows: number;
}

export class FlowLog {
  private readonly closes = new Map<number, number>();
  private readonly streams: EventStream[];
  private readonly bucket: TokenBucket | undefined;
  private readonly pod: ReadonlySet<string>;
  private logged = 0;
  private readonly dropped: Record<Exclude<DropReason, "kernel_buffer">, number> = {
    rate_limit: 0,
    unparsable: 0,
  };
  private overflows = 0;
  private readonly destroyDrops: DestroyDrops;
  private reported: LossCounts = { kernel: 0, rateLimited: 0, overflows: 0 };
  private reportedAt: number | undefined;
  private lossReport: Timer | undefined;

  constructor(private readonly options: FlowLogOptions) {
    this.destroyDrops = new DestroyDrops(options.readNetlink);
    this.pod = new Set(options.podAddresses);
    const { clock, log, command } = options;
    this.bucket =
      options.ratePerSecond > 0
        ? new TokenBucket(options.ratePerSecond, options.burst, clock.now())
        : undefined;
    const onOverflow = (): void => {
      this.overflows += 1;
      this.noteLoss();
    };
    this.streams = [
      new EventStream({
        args: ["-E", "-e", "DESTROY", ...SNAT_ONLY, ...OUTPUT],
        onLine: (line) => this.finished(line),
        onOverflow,
        clock,
        log,
        command,
      }),
      ...CLOSED_STATES.map(
        (state) =>
          new EventStream({
            args: ["-E", "-e", "UPDATE", "-p", "tcp", "--state", state, ...SNAT_ONLY, ...OUTPUT],
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
    this.lossReport?.cancel();
    this.reportLoss();
  }

  counters(): FlowLogCounters {
    return {
      logged: this.logged,
      dropped: { ...this.dropped, kernel_buffer: this.destroyDrops.total() },
      overflows: this.overflows,
      restarts: this.streams.reduce((sum, s) => sum + s.restarts, 0),
      listenersUp: this.streams.filter((s) => s.running).length,
      listeners: this.streams.length,
    };
  }

  private closed(line: string): void {
    const event = parseCloseEvent(line);
    if (event === undefined || this.closes.has(event.id)) return;
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
      this.noteLoss();
      return;
    }
    this.logged += 1;
    this.options.write(record);
  }

  /** A loss happened: warn now, or once the last warning is a minute old, with what was lost meanwhile. */
  private noteLoss(): void {
    if (this.lossReport !== undefined) return;
    const { clock } = this.options;
    const wait = this.reportedAt === undefined ? 0 : this.reportedAt + LOSS_REPORT_MS - clock.now();
    // Even "now" waits a moment: the kernel counts a burst's drops before
    // conntrack reports ENOBUFS, but the burst may not be over.
    this.lossReport = clock.setTimer(Math.max(LOSS_SETTLE_MS, wait), () => {
      this.lossReport = undefined;
      this.reportLoss();
    });
  }

  private reportLoss(): void {
    const now: LossCounts = {
      kernel: this.destroyDrops.total(),
      rateLimited: this.dropped.rate_limit,
      overflows: this.overflows,
    };
    const kernelDropped = now.kernel - this.reported.kernel;
    const rateLimited = now.rateLimited - this.reported.rateLimited;
    const eventOverflows = now.overflows - this.reported.overflows;
    if (kernelDropped + rateLimited + eventOverflows === 0) return;
    this.reported = now;
    this.reportedAt = this.options.clock.now();
    const lost = kernelDropped + rateLimited;
    const why = [
      kernelDropped > 0 ? `${kernelDropped} dropped by the kernel (the listener fell behind)` : undefined,
      rateLimited > 0 ? `${rateLimited} over FLOW_LOGS_RATE` : undefined,
    ].filter((part) => part !== undefined);
    this.options.log.warn(
      { kernelDropped, rateLimited, eventOverflows },
      lost > 0
        ? `flow logs: ${lost} finished connections not logged: ${why.join(", ")}`
        : "flow logs: the kernel dropped TCP close events (a listener fell behind): those connections end when their entry was destroyed",
    );
  }
}
