// Every failure the init program reports, in one catalogue. Each is one line an
// operator can act on, with a stable code and the exit status it maps to.
import { EgressGatewayError } from "../errors.js";

/** Exit statuses of init-gateway.sh (2 is shared with configuration errors, see src/config). */
export const EXIT = {
  ok: 0,
  /** A step failed while applying, or the read-back did not match the plan. */
  failed: 1,
  /** Bad configuration or command line: nothing was changed. */
  usage: 2,
  /** The pod's network does not fit (no eth0, pod IP not on eth0, no usable rule tool): nothing was changed. */
  precondition: 3,
  /** Missing privilege (CAP_NET_ADMIN, writable /proc/sys): nothing was changed. */
  privilege: 4,
} as const;

/** What a container needs when the kernel says no. */
export const PRIVILEGE_HINT = "run the init container privileged (securityContext.privileged: true)";

/** Every failure init reports: one class each, with the exit status it maps to. */
export abstract class InitError extends EgressGatewayError {
  abstract readonly exitCode: number;
}

/** The class of one init failure: its stable code and the exit status it maps to. */
function initFailure(code: `EGW_ERR_INIT_${string}`, exitCode: number) {
  return class extends InitError {
    readonly code = code;
    readonly exitCode = exitCode;
  };
}

export class InitUsageError extends initFailure("EGW_ERR_INIT_USAGE", EXIT.usage) {}
export class NoEth0Error extends initFailure("EGW_ERR_INIT_NO_ETH0", EXIT.precondition) {}
export class PodIpNotOnEth0Error extends initFailure("EGW_ERR_INIT_POD_IP_NOT_ON_ETH0", EXIT.precondition) {}
/** No rule tool (nft, iptables-nft, iptables-legacy) that was asked for, or none at all, works. */
export class NoRuleToolError extends initFailure("EGW_ERR_INIT_NO_DATAPLANE", EXIT.precondition) {}
export class DetectFailedError extends initFailure("EGW_ERR_INIT_DETECT_FAILED", EXIT.failed) {}
export class NoPrivilegeError extends initFailure("EGW_ERR_INIT_NO_PRIVILEGE", EXIT.privilege) {}
export class ApplyFailedError extends initFailure("EGW_ERR_INIT_APPLY_FAILED", EXIT.failed) {}
export class VerifyFailedError extends initFailure("EGW_ERR_INIT_VERIFY_FAILED", EXIT.failed) {}

const MAX_DETAIL_CHARS = 400;

/**
 * A command's stderr as one line: lines trimmed and joined, nft's caret
 * markers dropped, cut short. Keeps one-line error output one line.
 */
export function oneLine(text: string): string {
  const joined = text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !/^[\s^~]+$/.test(line))
    .join(" | ");
  return joined.length > MAX_DETAIL_CHARS ? `${joined.slice(0, MAX_DETAIL_CHARS)}…` : joined;
}

/** True when a kernel or tool message means "not allowed", so the privilege hint applies. */
export function looksLikePrivilegeProblem(text: string): boolean {
  return /operation not permitted|permission denied|read-only file system|EPERM|EACCES|EROFS|you must be root/i.test(
    text,
  );
}
