// Every way an HTTP probe can fail, in one place (as icmp-failure.ts is for
// ICMP): pure functions from a target, an error or a status to a stable code
// and one line for operators, naming the phase that failed as got's timeouts do.
import { errorMessage } from "../errors.js";
import type { ProbeFailure } from "./types.js";

/** Where an exchange was when it failed; resolving a name counts as connecting. */
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

export interface HttpProbeFailure extends ProbeFailure {
  readonly code: HttpFailureCode;
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

export function oneLine(error: unknown): string {
  // OpenSSL's messages embed source paths; its `reason` is the readable part.
  const reason = (error as { reason?: unknown } | undefined)?.reason;
  // An Error without a message still has a name ("AbortError"), which String() gives.
  const text = typeof reason === "string" ? reason : errorMessage(error) || String(error);
  return text.replace(/\s+/g, " ").trim();
}
