// Every way an ICMP probe can fail, in one place: a stable code for machines
// and one line for operators.
import { EgressGatewayError, errorMessage } from "../errors.js";
import type { ProbeFailure } from "./types.js";
import type { IpFamily } from "../ip/address.js";
import { describeEchoError, type EchoError } from "./icmp-packet.js";

export type IcmpFailureCode =
  | "TIMEOUT"
  | "UNREACHABLE"
  | "TIME_EXCEEDED"
  | "PARAMETER_PROBLEM"
  | "SEND_ERROR"
  | "SOCKET_ERROR"
  | "ICMP_PERMISSION"
  | "ICMP_UNSUPPORTED"
  | "INVALID_TARGET"
  | "BUSY"
  | "CLOSED";

export interface IcmpFailure extends ProbeFailure {
  readonly code: IcmpFailureCode;
}

// Thrown by createIcmpProber (and only there): the prober cannot work at all.

/** The process may not open raw sockets (no NET_RAW). */
export class IcmpPermissionError extends EgressGatewayError {
  readonly code = "EGW_ERR_ICMP_PERMISSION";
}

/** The raw socket could not be opened for another reason. */
export class IcmpSocketError extends EgressGatewayError {
  readonly code = "EGW_ERR_ICMP_SOCKET";
}

const failure = (code: IcmpFailureCode, message: string): IcmpFailure => Object.freeze({ code, message });

const socketName = (family: IpFamily): string => (family === 4 ? "raw ICMP socket" : "raw ICMPv6 socket");

export const PERMISSION_MESSAGE =
  "raw ICMP sockets are not permitted: the gateway container needs the NET_RAW capability " +
  '(securityContext.capabilities.add: ["NET_RAW"])';

// One frozen value per permanent condition, so a caller that logs on change logs once.
const PERMISSION = failure("ICMP_PERMISSION", PERMISSION_MESSAGE);
export const CLOSED = failure("CLOSED", "the ICMP prober is closed");

export function timedOut(target: string, afterMs: number): IcmpFailure {
  return failure("TIMEOUT", `no echo reply from ${target} within ${Math.round(afterMs)} ms`);
}

export function answeredWithError(
  target: string,
  answer: EchoError,
  family: IpFamily,
  by: string,
): IcmpFailure {
  const what = describeEchoError(family, answer.icmpType, answer.icmpCode);
  return failure(answer.code, `${what} for ${target} (reported by ${by})`);
}

export function sendFailed(target: string, error: unknown): IcmpFailure {
  return failure("SEND_ERROR", `cannot send an echo request to ${target}: ${errorMessage(error)}`);
}

export function socketFailed(family: IpFamily, error: unknown): IcmpFailure {
  return failure(
    "SOCKET_ERROR",
    `the ${socketName(family)} failed (${errorMessage(error)}); it reopens on the next probe`,
  );
}

export function invalidTarget(target: string): IcmpFailure {
  return failure("INVALID_TARGET", `${JSON.stringify(target)} is not an IPv4 or IPv6 address`);
}

export function busy(target: string): IcmpFailure {
  return failure("BUSY", `cannot probe ${target}: 65535 echo requests of this family are already in flight`);
}

/**
 * Why a raw socket could not be opened. raw-socket throws plain Errors carrying
 * strerror() text and no errno, so the text is all there is to go on.
 */
export function socketOpenFailed(family: IpFamily, error: unknown): IcmpFailure {
  const text = errorMessage(error);
  if (isPermissionDenied(error)) return PERMISSION;
  if (/address family not supported/i.test(text)) {
    return failure(
      "ICMP_UNSUPPORTED",
      `cannot open a ${socketName(family)}: ${text} (is IPv${family} disabled?)`,
    );
  }
  return failure("SOCKET_ERROR", `cannot open a ${socketName(family)}: ${text}`);
}

/** Codes that no later probe can change: the socket is not retried. */
export function isPermanent(f: IcmpFailure): boolean {
  return f.code === "ICMP_PERMISSION" || f.code === "ICMP_UNSUPPORTED";
}

export function isPermissionDenied(error: unknown): boolean {
  return /operation not permitted|permission denied/i.test(errorMessage(error));
}
