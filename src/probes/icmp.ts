// The ICMP prober: echo request, and success only for an echo reply from the
// target itself (SPEC 4.2). One long-lived raw socket per address family,
// opened on first use of that family and shared by every target, so 1,000
// targets cost 2 sockets and one small request record each per probe.
import { randomInt } from "node:crypto";
import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";
import { errorMessage, InvalidOptionError } from "../errors.js";
import {
  CLOSED,
  IcmpPermissionError,
  IcmpSocketError,
  invalidTarget,
  isPermanent,
  isPermissionDenied,
  PERMISSION_MESSAGE,
  sendFailed,
  socketOpenFailed,
  timedOut,
  type IcmpFailure,
} from "./icmp-failure.js";
import { EchoSession, type AnswerCounters, type EchoRequest } from "./icmp-session.js";
import { parseIpBytes, type IpFamily } from "../ip/address.js";
import type { ProbeResult, Prober } from "./types.js";

export {
  IcmpPermissionError,
  IcmpSocketError,
  type IcmpFailure,
  type IcmpFailureCode,
} from "./icmp-failure.js";

export interface IcmpProberOptions {
  /**
   * Longest wait for an answer when the probe's signal has not aborted by
   * then. The signal is the deadline; this only bounds a request whose signal
   * never aborts. Default 5_000 (5 s, the default probe interval).
   */
  readonly timeoutMs?: number;
  /** Echo identifier (1..65534) for both families. Default: random per prober. */
  readonly identifier?: number;
}

export interface IcmpProberStats extends Readonly<AnswerCounters> {
  /** Echo requests awaiting an answer, both families. */
  readonly outstanding: number;
}

export interface IcmpProber {
  readonly probe: Prober;
  /** The echo identifier this prober's requests carry. */
  readonly identifier: number;
  /** Counters since creation. */
  stats(): IcmpProberStats;
  /**
   * Fails probes in flight with CLOSED and closes the sockets, which hold the
   * event loop while open; later probes fail with CLOSED.
   */
  close(): void;
}

const DEFAULT_TIMEOUT_MS = 5_000; // 5 s
const ADDRESS_CACHE_SIZE = 4096;
// Past Node's 24.8-day timer limit the session chains timers (an operator may write 2147483647s).
const MAX_TIMEOUT_MS = Number.MAX_SAFE_INTEGER;

/**
 * Creates the prober. Throws up front, and only here: IcmpPermissionError
 * when the process may not open raw sockets (no NET_RAW), IcmpSocketError
 * when the check socket cannot be opened for another reason,
 * InvalidOptionError for a bad option. Probes never throw.
 */
export function createIcmpProber(options: IcmpProberOptions = {}): IcmpProber {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_TIMEOUT_MS) {
    throw new InvalidOptionError(
      `timeoutMs must be an integer from 1 to ${MAX_TIMEOUT_MS}, got ${String(timeoutMs)}`,
    );
  }
  // 0 would make net-ping fall back to the process id, shared by every
  // prober in the process; 65535 would become 0 (it takes the id mod 65535).
  const identifier = options.identifier ?? randomInt(1, 65535);
  if (!Number.isInteger(identifier) || identifier < 1 || identifier > 65534) {
    throw new InvalidOptionError(`identifier must be an integer from 1 to 65534, got ${String(identifier)}`);
  }
  checkRawSocketPermission();

  const counters: AnswerCounters = { rejectedAnswers: 0, unmatchedAnswers: 0 };
  const sessions = new Map<IpFamily, EchoSession>();
  const unavailable = new Map<IpFamily, IcmpFailure>();
  let closed = false;

  // Targets repeat every interval, and parsing was a twentieth of a probe's
  // cost; the bound only matters for a caller that probes arbitrary targets.
  const addresses = new Map<string, Uint8Array | undefined>();
  const addressOf = (target: string): Uint8Array | undefined => {
    if (addresses.has(target)) return addresses.get(target);
    if (addresses.size >= ADDRESS_CACHE_SIZE) addresses.clear();
    const bytes = parseIpBytes(target);
    addresses.set(target, bytes);
    return bytes;
  };

  // Sessions are held here for the prober's lifetime: an unreferenced
  // net-ping session can be collected before its request is sent.
  const sessionFor = (family: IpFamily): EchoSession | IcmpFailure => {
    const current = sessions.get(family);
    if (current !== undefined && !current.broken) return current;
    const known = unavailable.get(family);
    if (known !== undefined) return known;
    try {
      const session = new EchoSession(family, identifier, timeoutMs, counters);
      sessions.set(family, session);
      return session;
    } catch (error) {
      const failure = socketOpenFailed(family, error);
      if (isPermanent(failure)) unavailable.set(family, failure);
      return failure;
    }
  };

  const probe: Prober = (target, signal) => {
    const started = performance.now();
    const result = (failure: IcmpFailure | undefined): ProbeResult => {
      const durationMs = performance.now() - started;
      return failure === undefined ? { ok: true, durationMs } : { ok: false, durationMs, failure };
    };
    if (closed) return Promise.resolve(result(CLOSED));
    if (signal.aborted) return Promise.resolve(result(timedOut(target, 0)));
    const targetBytes = addressOf(target);
    if (targetBytes === undefined) return Promise.resolve(result(invalidTarget(target)));
    const family = targetBytes.length === 4 ? 4 : 6;
    const session = sessionFor(family);
    if (!(session instanceof EchoSession)) return Promise.resolve(result(session));

    return new Promise<ProbeResult>((resolve) => {
      let request: EchoRequest | undefined;
      let settled = false;
      const settle = (failure: IcmpFailure | undefined): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener("abort", onAbort);
        resolve(result(failure));
      };
      const onAbort = (): void => {
        if (request !== undefined) session.cancel(request);
        settle(timedOut(target, performance.now() - started));
      };
      signal.addEventListener("abort", onAbort);
      try {
        const sent = session.ping(target, targetBytes, settle);
        if ("code" in sent) settle(sent);
        else request = sent;
      } catch (error) {
        // raw-socket throws synchronously on misuse only; still a result, not a rejection.
        settle(sendFailed(target, error));
      }
    });
  };

  return {
    probe,
    identifier,
    stats: () => ({
      ...counters,
      outstanding: [...sessions.values()].reduce((sum, s) => sum + (s.broken ? 0 : s.outstanding), 0),
    }),
    close: () => {
      closed = true;
      for (const session of sessions.values()) session.close();
      sessions.clear();
    },
  };
}

const raw = createRequire(import.meta.url)("raw-socket") as {
  createSocket(options: { protocol: number }): { close(): void };
};

// Capabilities do not change while the process runs, so one IPv4 socket
// opened and closed at start answers for both families, and the gateway can
// report the missing NET_RAW once instead of failing every probe.
function checkRawSocketPermission(): void {
  try {
    raw.createSocket({ protocol: 1 }).close();
  } catch (error) {
    if (isPermissionDenied(error)) throw new IcmpPermissionError(PERMISSION_MESSAGE);
    throw new IcmpSocketError(`cannot open a raw ICMP socket: ${errorMessage(error)}`);
  }
}
