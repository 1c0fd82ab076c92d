// Every failure the init program reports, in one catalogue. Each is one line an
// operator can act on, with a stable code and the exit status it maps to.

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

const CODES = {
  INIT_USAGE: EXIT.usage,
  INIT_NO_ETH0: EXIT.precondition,
  INIT_POD_IP_NOT_ON_ETH0: EXIT.precondition,
  INIT_NO_DATAPLANE: EXIT.precondition,
  INIT_DETECT_FAILED: EXIT.failed,
  INIT_NO_PRIVILEGE: EXIT.privilege,
  INIT_APPLY_FAILED: EXIT.failed,
  INIT_VERIFY_FAILED: EXIT.failed,
} as const;

export type InitErrorCode = keyof typeof CODES;

/** What a container needs when the kernel says no. */
export const PRIVILEGE_HINT = "run the init container privileged (securityContext.privileged: true)";

export class InitError extends Error {
  override readonly name = "InitError";
  readonly exitCode: number;

  constructor(
    readonly code: InitErrorCode,
    message: string,
  ) {
    super(message);
    this.exitCode = CODES[code];
  }
}

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
