// How many connections the health server may hold: below the process's open
// files limit, so that an accept never fails with EMFILE and the probes, the
// policy-sync socket and the tools the gateway runs always find a descriptor.
import { readFileSync } from "node:fs";

/**
 * Descriptors kept free for everything but health connections: Node's own
 * (~20: epoll, pipes, stdio), ICMP raw sockets, the policy-sync socket, the
 * pipes of a running `ip`/`nft`, pino. The caller adds one per HTTP probe URL.
 */
export const FD_RESERVE = 128;
/** The bound never goes below this, even with an absurdly low limit. */
const MIN_CONNECTIONS = 16;
/** Node's floor when it cannot tell (it starts with the soft limit, usually 1024). */
const FALLBACK_LIMIT = 1024;

/**
 * The soft "Max open files" of a /proc/<pid>/limits text, undefined when
 * absent or unparsable. "unlimited" cannot happen for RLIMIT_NOFILE on Linux
 * (it is capped by fs.nr_open), but is read as no bound at all.
 */
export function parseOpenFilesLimit(limits: string): number | undefined {
  const line = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limits);
  if (!line) return undefined;
  if (line[1] === "unlimited") return Number.POSITIVE_INFINITY;
  const soft = Number(line[1]);
  return Number.isSafeInteger(soft) && soft > 0 ? soft : undefined;
}

/**
 * The limit in force now, read from /proc/self/limits: Node raises the soft
 * limit to the hard one at start, so this is the hard limit unless Node could
 * not raise it.
 */
export function openFilesLimit(read = (): string => readFileSync("/proc/self/limits", "utf8")): number {
  try {
    return parseOpenFilesLimit(read()) ?? FALLBACK_LIMIT;
  } catch {
    return FALLBACK_LIMIT;
  }
}

/** The connection bound in force: the configured maximum, lowered to fit under the fd limit. */
export function connectionBound(maxConnections: number, fdLimit: number, reserve = FD_RESERVE): number {
  return Math.max(MIN_CONNECTIONS, Math.min(maxConnections, fdLimit - reserve));
}
