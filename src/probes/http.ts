// HTTP prober (SPEC §4.2): one GET over a fresh connection, the whole exchange
// (connect included) bounded by the caller's signal, the body drained up to a
// small bound. This file is the undici shell; what a failure is called lives
// in http-failure.ts and the phase accounting in http-phases.ts, both pure.
import net from "node:net";
import tls from "node:tls";
import { Client, type buildConnector } from "undici";
import { InvalidOptionError } from "../errors.js";
import {
  classifyError,
  deadlineFailure,
  oneLine,
  parseTarget,
  statusFailure,
  type HttpPhase,
  type HttpProbeFailure,
} from "./http-failure.js";
import { phaseAt, phaseTimings, type HttpExchange, type PhaseMarks } from "./http-phases.js";
import type { ProbeResult } from "./types.js";

export type { HttpFailureCode, HttpPhase, HttpProbeFailure } from "./http-failure.js";
export type { HttpExchange, HttpPhaseTimings, TimedPhase } from "./http-phases.js";

export interface HttpProbeResult extends ProbeResult<HttpExchange> {
  readonly failure?: HttpProbeFailure;
  readonly detail: HttpExchange;
}

export interface HttpProberOptions {
  /** Opt-in: only 2xx/3xx count. Off by default: any completed response counts, as in the commercial image. */
  readonly requireSuccessStatus?: boolean;
  /** Body bytes read before the probe stops reading; a response that reaches the bound counts as completed. */
  readonly bodyLimitBytes?: number;
}

/**
 * Probes one URL. `signal` is the probe's one deadline (the scheduler's, one
 * interval after the start): the prober has no timer of its own.
 */
export type HttpProber = (target: string, signal: AbortSignal) => Promise<HttpProbeResult>;

export const DEFAULT_BODY_LIMIT_BYTES = 64 * 1024; // 64 KiB
const USER_AGENT = "egress-gateway-probe";

export function validateHttpProberOptions(options: HttpProberOptions): Readonly<Required<HttpProberOptions>> {
  const { requireSuccessStatus = false, bodyLimitBytes = DEFAULT_BODY_LIMIT_BYTES } = options;
  if (typeof requireSuccessStatus !== "boolean") {
    throw new InvalidOptionError(
      `requireSuccessStatus must be a boolean, got ${String(requireSuccessStatus)}`,
    );
  }
  if (!Number.isSafeInteger(bodyLimitBytes) || bodyLimitBytes <= 0) {
    throw new InvalidOptionError(`bodyLimitBytes must be a positive integer, got ${String(bodyLimitBytes)}`);
  }
  return Object.freeze({ requireSuccessStatus, bodyLimitBytes });
}

interface Verdict {
  readonly failure?: HttpProbeFailure;
  readonly status?: number;
}

export function createHttpProber(options: HttpProberOptions): HttpProber {
  const settings = validateHttpProberOptions(options);
  return async (target, signal) => {
    const marks: PhaseMarks = { start: performance.now() };
    let verdict: Verdict;
    try {
      verdict = await probe(target, signal, settings, marks);
    } catch (error) {
      // Unreachable by design; a probe must still never reject past its scheduler.
      verdict = { failure: { code: "ERROR", message: `internal HTTP prober error: ${oneLine(error)}` } };
    }
    const { failure, status } = verdict;
    const phases = phaseTimings(marks);
    const detail: HttpExchange = status === undefined ? { phases } : { status, phases };
    const durationMs = performance.now() - marks.start;
    return failure === undefined
      ? { ok: true, durationMs, detail }
      : { ok: false, durationMs, failure, detail };
  };
}

/** What the exchange has seen so far; read when the deadline wins the race. */
interface Progress {
  status?: number;
}

async function probe(
  target: string,
  signal: AbortSignal,
  settings: Readonly<Required<HttpProberOptions>>,
  marks: PhaseMarks,
): Promise<Verdict> {
  const url = parseTarget(target);
  if (!(url instanceof URL)) return { failure: url };
  const https = url.protocol === "https:";
  if (signal.aborted) return { failure: deadlineFailure("connect", url.host, 0) };

  // The caller's signal is the one deadline for the whole exchange; undici's
  // own timeouts are off. request() ignores its signal while the TCP connect
  // is pending, so on abort the probe settles at once and tears the connection
  // down itself. A controller of our own relays the abort to undici, so that
  // whatever undici leaves on a signal never lands on the scheduler's, which
  // is shared by a sweep's probes and reused once they have all settled.
  const stop = new AbortController();
  const deadline = new Promise<HttpPhase>((resolve) =>
    stop.signal.addEventListener("abort", () => resolve(phaseAt(marks, https)), { once: true }),
  );
  const abort = () => stop.abort();
  signal.addEventListener("abort", abort, { once: true });

  let connection: Connection | undefined;
  const client = new Client(url.origin, {
    // A connector of our own: a fresh socket per probe (no TLS session cache
    // either), phase marks, and a handle on a connect still pending so that
    // the deadline can close it.
    connect: (_options, callback) => {
      connection = connectFresh(url, marks, callback);
    },
    headersTimeout: 0,
    bodyTimeout: 0,
  });
  const progress: Progress = {};
  try {
    const outcome = await Promise.race([
      exchange(client, url, stop.signal, settings.bodyLimitBytes, marks, progress),
      deadline,
    ]);
    const status = progress.status === undefined ? {} : { status: progress.status };
    if (typeof outcome === "string") {
      return { failure: deadlineFailure(outcome, url.host, performance.now() - marks.start), ...status };
    }
    const failure = outcome.error
      ? classifyError(outcome.error.cause, outcome.error.phase, url.host)
      : statusFailure(outcome.status, settings.requireSuccessStatus, url.host);
    return failure ? { failure, ...status } : status;
  } finally {
    signal.removeEventListener("abort", abort);
    await release(client, connection);
  }
}

type Outcome = { status: number; error?: undefined } | { error: { cause: unknown; phase: HttpPhase } };

async function exchange(
  client: Client,
  url: URL,
  signal: AbortSignal,
  bodyLimitBytes: number,
  marks: PhaseMarks,
  progress: Progress,
): Promise<Outcome> {
  try {
    const { statusCode, body } = await client.request({
      method: "GET",
      path: url.pathname + url.search,
      headers: { "user-agent": USER_AGENT },
      signal,
      reset: true, // "connection: close": nothing about this connection outlives the probe
    });
    marks.headers = performance.now();
    progress.status = statusCode;
    await drainBody(body, bodyLimitBytes);
    marks.body = performance.now();
    return { status: statusCode };
  } catch (cause) {
    return { error: { cause, phase: phaseAt(marks, url.protocol === "https:") } };
  }
}

/**
 * Reads and discards the body up to the bound. Not undici's body.dump(): it
 * swallows stream errors and resolves on close either way, so a body cut by a
 * reset or a body timeout would pass for a completed response.
 */
async function drainBody(body: AsyncIterable<Buffer>, limit: number): Promise<void> {
  let read = 0;
  for await (const chunk of body) {
    read += chunk.length;
    // Leaving the loop destroys the body stream and with it the connection.
    if (read >= limit) return;
  }
}

interface Connection {
  readonly socket: net.Socket;
  /** Resolves on the socket's 'close', which net emits only once the handle is gone. */
  readonly closed: Promise<void>;
}

function connectFresh(url: URL, marks: PhaseMarks, callback: buildConnector.Callback): Connection {
  const https = url.protocol === "https:";
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = Number(url.port) || (https ? 443 : 80);
  // Certificates are verified (rejectUnauthorized defaults to true); SNI only for names, never for IP literals.
  const socket = https
    ? tls.connect({ host, port, servername: net.isIP(host) ? "" : host, ALPNProtocols: ["http/1.1"] })
    : net.connect({ host, port });
  socket.setNoDelay(true);
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  let settled = false;
  // Emitted once a name lookup ended, failed or not; never for an IP literal.
  socket.once("lookup", () => {
    marks.lookup = performance.now();
  });
  socket.once("connect", () => {
    marks.tcp = performance.now();
  });
  socket.once(https ? "secureConnect" : "connect", () => {
    if (https) marks.tls = performance.now();
    settled = true;
    callback(null, socket);
  });
  // Stays attached after the connect: undici adds its own handler, this one
  // only guarantees that a late error on a torn-down socket is never unhandled.
  socket.on("error", (error: Error) => {
    if (settled) return;
    settled = true;
    callback(error, null);
  });
  return { socket, closed };
}

/** Closes everything the probe opened and waits until the socket is really gone. */
async function release(client: Client, connection: Connection | undefined): Promise<void> {
  // undici's destroy() does not know a socket whose connect is still pending.
  connection?.socket.destroy();
  await client.destroy().catch(() => undefined);
  await connection?.closed;
}
