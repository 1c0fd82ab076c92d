// One raw socket per address family, built on net-ping's Session: it keeps the
// request table, sequence allocation, packet building and per-request timers.
// What net-ping gets wrong or makes slow is replaced here:
// * it completes a request on identifier + sequence alone; we parse every
//   packet ourselves and complete only for answers about the target (source
//   of a reply, embedded destination of an error), otherwise the request stays
//   open because the real reply may still come;
// * it cannot match ICMPv6 errors (reads the identifier at the wrong offset);
// * it treats redirects as failures; redirects are advice, the packet went on;
// * its 'error' event has no listener, so one socket error would crash us;
// * it sets the IPv4 TTL option number on the IPv6 level;
// * it pauses and resumes the socket around every request and sends from the
//   next writable event: four epoll_ctl calls and two loop turns per probe.
// net-ping binds `this.onSocketMessage` (and the other handlers) when the
// socket is made, after the prototype chain is in place, so overrides here win.
import { createRequire } from "node:module";
import { MAX_TIMER_MS, systemClock, type Timer } from "../clock.js";
import {
  answeredWithError,
  busy,
  CLOSED,
  sendFailed,
  socketFailed,
  timedOut,
  type IcmpFailure,
} from "./icmp-failure.js";
import type { IpFamily } from "../ip/address.js";
import { answersTarget, icmpTypeFilter, readEchoAnswer } from "./icmp-packet.js";

/** A request as net-ping keeps it, plus what we need to judge answers. */
export interface EchoRequest {
  id: number;
  retries: number;
  timeout: number;
  target: string;
  // Filled in by net-ping later; present from the start so the object keeps one shape.
  buffer: Buffer | undefined;
  sent: Date | undefined;
  timer: NodeJS.Timeout | undefined;
  /** Set instead of `timer` for a deadline past Node's timer limit. */
  longTimer: Timer | undefined;
  /** net-ping calls this on a send error or when the request timer fires. */
  callback: (error: Error | null) => void;
  readonly targetBytes: Uint8Array;
  /** Called exactly once: undefined for a verified echo reply. */
  readonly settle: (failure: IcmpFailure | undefined) => void;
}

interface RawSocket {
  /** raw-socket's native handle; its send() is a plain sendto() that calls `done` before returning. */
  readonly wrap: {
    send(buffer: Buffer, offset: number, length: number, address: string, done: () => void): void;
  };
  setOption(level: number, option: number, value: Buffer, length: number): void;
  close(): void;
}

// The parts of net-ping's Session this module uses or overrides.
interface NetPingSession {
  readonly sessionId: number;
  readonly reqs: Partial<Record<number, EchoRequest>>;
  reqsPending: number;
  readonly socket: RawSocket;
  _generateId(): number | undefined;
  reqQueue(req: EchoRequest): void;
  // Declared so that no subclass method shadows it by accident: reqQueue calls it.
  send(req: EchoRequest): void;
  reqRemove(id: number): EchoRequest | undefined;
  close(): void;
  flush(error?: Error): void;
  onSocketMessage(buffer: Buffer, source: string): void;
  onSocketError(error: Error): void;
  onSocketClose(): void;
  onSocketSend(req: EchoRequest, error: Error | null, bytes: number): void;
  onTimeout(req: EchoRequest): void;
  setTTL(ttl: number): void;
}

interface NetPing {
  Session: new (options: {
    networkProtocol: 1 | 2;
    sessionId: number;
    retries: number;
    timeout: number;
  }) => NetPingSession;
  RequestTimedOutError: new () => Error;
}

const netPing = createRequire(import.meta.url)("net-ping") as NetPing;

/** Counters shared by a prober's sessions. */
export interface AnswerCounters {
  /** Our identifier and a sequence in flight, but not from / not about the target. */
  rejectedAnswers: number;
  /** Our identifier, no such sequence in flight: late (after the deadline) or duplicated. */
  unmatchedAnswers: number;
}

export class EchoSession extends netPing.Session {
  /** Set once the socket failed or closed; the prober opens a new session instead. */
  broken = false;
  private closing: IcmpFailure = CLOSED;

  /** Throws what raw-socket throws when the socket cannot be opened. */
  constructor(
    readonly family: IpFamily,
    identifier: number,
    private readonly timeoutMs: number,
    private readonly counters: AnswerCounters,
  ) {
    super({ networkProtocol: family === 4 ? 1 : 2, sessionId: identifier, retries: 0, timeout: timeoutMs });
    const filter = icmpTypeFilter(family);
    try {
      this.socket.setOption(filter.level, filter.option, filter.value, filter.value.length);
    } catch {
      // Only an optimisation: readEchoAnswer drops the other types anyway.
    }
  }

  get outstanding(): number {
    return this.reqsPending;
  }

  /** Sends one echo request; `settle` may run before this returns (an immediate send error). */
  ping(
    target: string,
    targetBytes: Uint8Array,
    settle: (failure: IcmpFailure | undefined) => void,
  ): EchoRequest | IcmpFailure {
    if (this.broken) return this.closing;
    const id = this._generateId();
    if (id === undefined) return busy(target);
    const timeoutMs = this.timeoutMs;
    const request: EchoRequest = {
      id,
      retries: 0,
      timeout: timeoutMs,
      target,
      buffer: undefined,
      sent: undefined,
      timer: undefined,
      longTimer: undefined,
      targetBytes,
      settle,
      callback: (error) =>
        settle(
          error instanceof netPing.RequestTimedOutError
            ? timedOut(target, timeoutMs)
            : sendFailed(target, error),
        ),
    };
    this.reqQueue(request);
    return request;
  }

  /** Frees the request's slot: a reply that comes later finds nothing to complete. */
  cancel(request: EchoRequest): void {
    if (this.reqs[request.id] === request) this.reqRemove(request.id);
  }

  // Sends at once: a 16-byte datagram on a raw socket does not wait for
  // buffer space, and when the kernel refuses it (no route, ENOBUFS) the
  // error is this probe's SEND_ERROR, as it is for ping.
  override send(req: EchoRequest): void {
    const { buffer } = req;
    if (buffer === undefined) return;
    try {
      this.socket.wrap.send(buffer, 0, buffer.length, req.target, () => this.onSocketSend(req, null, 0));
    } catch (error) {
      this.onSocketSend(req, error as Error, 0);
    }
  }

  // net-ping arms a plain setTimeout, which Node fires after 1 ms when the delay
  // is past its 24.8-day limit; the deadline (an operator's interval, SPEC §2)
  // may be longer, and then gets the clock's chained timer instead.
  override onSocketSend(req: EchoRequest, error: Error | null, bytes: number): void {
    if (error !== null || req.timeout <= MAX_TIMER_MS) {
      super.onSocketSend(req, error, bytes);
      return;
    }
    req.sent ??= new Date();
    req.longTimer = systemClock.setTimer(req.timeout, () => this.onTimeout(req));
  }

  // As net-ping's, minus pausing the socket when nothing is in flight: the
  // socket keeps reading while the session is open, so no stale backlog
  // builds up between probes (close() releases the event loop).
  override reqRemove(id: number): EchoRequest | undefined {
    const req = this.reqs[id];
    if (req !== undefined) {
      clearTimeout(req.timer);
      req.longTimer?.cancel();
      delete this.reqs[id];
      this.reqsPending--;
    }
    return req;
  }

  override onSocketMessage(buffer: Buffer, source: string): void {
    const answer = readEchoAnswer(buffer, this.family, this.sessionId);
    if (answer === undefined) return;
    const request = this.reqs[answer.sequence];
    if (request === undefined) {
      this.counters.unmatchedAnswers++;
      return;
    }
    if (!answersTarget(answer, source, request.target, request.targetBytes)) {
      this.counters.rejectedAnswers++;
      return;
    }
    this.reqRemove(request.id);
    request.settle(
      answer.kind === "echo-reply"
        ? undefined
        : answeredWithError(request.target, answer, this.family, source),
    );
  }

  override onSocketError(error: Error): void {
    this.closing = socketFailed(this.family, error);
    this.close();
  }

  override onSocketClose(): void {
    this.broken = true;
    this.flush();
  }

  override flush(): void {
    for (const id of Object.keys(this.reqs)) this.reqRemove(Number(id))?.settle(this.closing);
  }

  // net-ping's close() deletes the socket, and its getSocket() then opens a
  // new one on the next touch, holding the process; the closed one stays.
  override close(): void {
    if (this.broken) return;
    this.broken = true;
    this.socket.close();
    this.flush();
  }

  override setTTL(): void {
    // The kernel's default hop limit, as ping uses; see the header comment.
  }
}
