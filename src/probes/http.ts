// HTTP prober (SPEC §4.2): one GET over a fresh connection, the whole exchange
// (connect included) bounded by one deadline, the body drained up to a small
// bound. The result says which phase failed, as got's timeouts do.
import net from "node:net";
import tls from "node:tls";
import { Client, type buildConnector } from "undici";
import { systemClock } from "../clock.js";
import type { ProbeFailure, ProbeResult } from "./types.js";

export type HttpPhase = "connect" | "tls" | "headers" | "body";

export type HttpFailureCode =
  | "INVALID_TARGET" // not an absolute http: or https: URL
  | "DNS"
  | "CONNECT_REFUSED"
  | "UNREACHABLE"
  | "CONNECT_TIMEOUT"
  | "TLS" // handshake or certificate verification failed
  | "TLS_TIMEOUT"
  | "CONNECTION_RESET" // reset or closed by the peer before the response completed
  | "HEADERS_TIMEOUT"
  | "BODY_TIMEOUT" // the body neither ended nor reached the read bound by the deadline
  | "PROTOCOL" // not valid HTTP/1.1
  | "STATUS" // not 2xx/3xx while success is required
  | "ERROR";

/** How long each phase took, in ms; a phase that never finished is absent. */
export interface HttpPhaseTimings {
  readonly connectMs?: number;
  readonly tlsMs?: number;
  /** From the connection being ready to the response head. */
  readonly headersMs?: number;
  /** From the response head to the end of the body or the read bound. */
  readonly bodyMs?: number;
}

export interface HttpProbeFailure extends ProbeFailure {
  readonly code: HttpFailureCode;
}

export interface HttpProbeResult extends ProbeResult {
  readonly failure?: HttpProbeFailure;
  readonly timings: HttpPhaseTimings;
}

export interface HttpProberOptions {
  /** The whole exchange, connect included, in ms; normally the probe interval. */
  readonly deadlineMs: number;
  /** Opt-in: only 2xx/3xx count. Off by default: any completed response counts, as in the commercial image. */
  readonly requireSuccessStatus?: boolean;
  /** Body bytes read before the probe stops reading; a response that reaches the bound counts as completed. */
  readonly bodyLimitBytes?: number;
}

export type HttpProber = (target: string, signal: AbortSignal) => Promise<HttpProbeResult>;

export const DEFAULT_BODY_LIMIT_BYTES = 64 * 1024; // 64 KiB
const USER_AGENT = "egress-gateway-probe";

export class HttpProberOptionError extends TypeError {
  readonly code = "ERR_HTTP_PROBER_OPTION";
}

export function validateHttpProberOptions(options: HttpProberOptions): Readonly<Required<HttpProberOptions>> {
  const { deadlineMs, requireSuccessStatus = false, bodyLimitBytes = DEFAULT_BODY_LIMIT_BYTES } = options;
  if (!Number.isSafeInteger(deadlineMs) || deadlineMs <= 0) {
    throw new HttpProberOptionError(`deadlineMs must be a positive integer (ms), got ${String(deadlineMs)}`);
  }
  if (typeof requireSuccessStatus !== "boolean") {
    throw new HttpProberOptionError(
      `requireSuccessStatus must be a boolean, got ${String(requireSuccessStatus)}`,
    );
  }
  if (!Number.isSafeInteger(bodyLimitBytes) || bodyLimitBytes <= 0) {
    throw new HttpProberOptionError(
      `bodyLimitBytes must be a positive integer, got ${String(bodyLimitBytes)}`,
    );
  }
  return Object.freeze({ deadlineMs, requireSuccessStatus, bodyLimitBytes });
}

// ---- pure core: phases, timings and failure classification ----

/** performance.now() at the start and at the end of each phase reached so far. */
export interface PhaseMarks {
  start: number;
  tcp?: number;
  tls?: number;
  headers?: number;
  body?: number;
}

export function phaseAt(marks: PhaseMarks, https: boolean): HttpPhase {
  if (marks.tcp === undefined) return "connect";
  if (https && marks.tls === undefined) return "tls";
  return marks.headers === undefined ? "headers" : "body";
}

export function timingsOf(marks: PhaseMarks): HttpPhaseTimings {
  const timings: { -readonly [K in keyof HttpPhaseTimings]: number } = {};
  const span = (from: number | undefined, to: number | undefined) =>
    from === undefined || to === undefined ? undefined : Math.round((to - from) * 10) / 10;
  const spans = {
    connectMs: span(marks.start, marks.tcp),
    tlsMs: span(marks.tcp, marks.tls),
    headersMs: span(marks.tls ?? marks.tcp, marks.headers),
    bodyMs: span(marks.headers, marks.body),
  };
  for (const [key, value] of Object.entries(spans)) {
    if (value !== undefined) timings[key as keyof HttpPhaseTimings] = value;
  }
  return timings;
}

/** The target as a URL, or why it cannot be probed. */
export function parseTarget(target: string): URL | HttpProbeFailure {
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return { code: "INVALID_TARGET", message: `${JSON.stringify(target)} is not an absolute URL` };
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return {
      code: "INVALID_TARGET",
      message: `${JSON.stringify(target)}: only http: and https: URLs can be probed`,
    };
  }
  return url;
}

/** The codes an error or the deadline can produce (the others come from the target and the status). */
export type ErrorFailureCode = Exclude<HttpFailureCode, "INVALID_TARGET" | "STATUS">;

const SUMMARIES: Readonly<Record<ErrorFailureCode, string>> = {
  CONNECT_TIMEOUT: "timed out connecting to",
  TLS_TIMEOUT: "timed out in the TLS handshake with",
  HEADERS_TIMEOUT: "timed out waiting for the response head from",
  BODY_TIMEOUT: "timed out reading the body from",
  DNS: "cannot resolve",
  CONNECT_REFUSED: "connection refused by",
  UNREACHABLE: "no route to",
  CONNECTION_RESET: "connection closed early by",
  TLS: "TLS failure with",
  PROTOCOL: "invalid HTTP from",
  ERROR: "probe failed for",
};

const TIMEOUT_CODES: Readonly<Record<HttpPhase, ErrorFailureCode>> = {
  connect: "CONNECT_TIMEOUT",
  tls: "TLS_TIMEOUT",
  headers: "HEADERS_TIMEOUT",
  body: "BODY_TIMEOUT",
};

/** The deadline (or the caller's abort, which is the same thing to a probe) hit during `phase`. */
export function deadlineFailure(phase: HttpPhase, authority: string, elapsedMs: number): HttpProbeFailure {
  const code = TIMEOUT_CODES[phase];
  return {
    code,
    message: `${SUMMARIES[code]} ${authority} (${phase} phase) after ${Math.round(elapsedMs)} ms`,
  };
}

const DNS_ERRORS = new Set(["ENOTFOUND", "EAI_AGAIN", "EAI_FAIL", "EAI_NODATA", "EAI_NONAME"]);
const UNREACHABLE_ERRORS = new Set(["EHOSTUNREACH", "ENETUNREACH", "EHOSTDOWN", "ENETDOWN"]);
const RESET_ERRORS = new Set(["ECONNRESET", "EPIPE", "ECONNABORTED", "UND_ERR_SOCKET"]);
const PROTOCOL_ERRORS = new Set([
  "UND_ERR_HEADERS_OVERFLOW",
  "UND_ERR_RES_CONTENT_LENGTH_MISMATCH",
  "UND_ERR_INFO",
]);
// OpenSSL's verification codes (CERT_HAS_EXPIRED, DEPTH_ZERO_SELF_SIGNED_CERT…) and Node's own TLS errors.
const TLS_ERROR = /CERT|^ERR_TLS_|^ERR_SSL_|^EPROTO$/;

/** The failure code for an error (by its Node, OpenSSL or undici code) raised during `phase`. */
export function failureCode(errorCode: string, phase: HttpPhase): ErrorFailureCode {
  // undici's own timeouts are backstops of the same deadline: name them by phase too.
  if (errorCode === "UND_ERR_CONNECT_TIMEOUT") return phase === "tls" ? "TLS_TIMEOUT" : "CONNECT_TIMEOUT";
  if (errorCode === "UND_ERR_HEADERS_TIMEOUT") return "HEADERS_TIMEOUT";
  if (errorCode === "UND_ERR_BODY_TIMEOUT") return "BODY_TIMEOUT";
  if (DNS_ERRORS.has(errorCode)) return "DNS";
  if (errorCode === "ECONNREFUSED") return "CONNECT_REFUSED";
  if (UNREACHABLE_ERRORS.has(errorCode)) return "UNREACHABLE";
  if (RESET_ERRORS.has(errorCode)) return "CONNECTION_RESET";
  if (TLS_ERROR.test(errorCode) || phase === "tls") return "TLS";
  if (errorCode.startsWith("HPE_") || PROTOCOL_ERRORS.has(errorCode)) return "PROTOCOL";
  return "ERROR";
}

/** Maps an error raised during `phase` to a stable failure code and one line. */
export function classifyError(error: unknown, phase: HttpPhase, authority: string): HttpProbeFailure {
  const code = failureCode(errorCode(error), phase);
  return { code, message: `${SUMMARIES[code]} ${authority} (${phase} phase): ${oneLine(error)}` };
}

/** Undefined when `status` counts as success under the given policy. */
export function statusFailure(
  status: number,
  requireSuccessStatus: boolean,
  authority: string,
): HttpProbeFailure | undefined {
  if (!requireSuccessStatus || (status >= 200 && status < 400)) return undefined;
  return {
    code: "STATUS",
    message: `${authority} answered ${status}; only 2xx/3xx count when success is required`,
  };
}

function errorCode(error: unknown): string {
  for (let e = error, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") return code;
  }
  return "";
}

function oneLine(error: unknown): string {
  // OpenSSL's messages embed source paths; its `reason` is the readable part.
  const reason = (error as { reason?: unknown } | undefined)?.reason;
  const text =
    typeof reason === "string"
      ? reason
      : error instanceof Error
        ? error.message || error.name
        : String(error);
  return text.replace(/\s+/g, " ").trim();
}

// ---- the I/O shell ----

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
    return {
      ok: verdict.failure === undefined,
      durationMs: performance.now() - marks.start,
      ...verdict,
      timings: timingsOf(marks),
    };
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

  // One deadline for the whole exchange. undici's own timeouts are only
  // backstops: request() ignores its signal while the TCP connect is pending,
  // so on abort the probe settles at once and tears the connection down itself.
  const stop = new AbortController();
  const deadline = new Promise<HttpPhase>((resolve) =>
    stop.signal.addEventListener("abort", () => resolve(phaseAt(marks, https)), { once: true }),
  );
  const abort = () => stop.abort();
  signal.addEventListener("abort", abort, { once: true });
  // The clock's timer: the deadline may be past Node's 24.8-day limit (SPEC §2).
  const timer = systemClock.setTimer(settings.deadlineMs, abort);

  let connection: Connection | undefined;
  const client = new Client(url.origin, {
    // A connector of our own: a fresh socket per probe (no TLS session cache
    // either), phase marks, and a handle on a connect still pending so that
    // the deadline can close it.
    connect: (_options, callback) => {
      connection = connectFresh(url, marks, callback);
    },
    headersTimeout: settings.deadlineMs,
    bodyTimeout: settings.deadlineMs,
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
    timer.cancel();
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
