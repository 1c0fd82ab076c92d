// How many DESTROY events the kernel dropped for the pod's listeners: the
// Drops column of /proc/net/netlink (per network namespace, world-readable),
// for conntrack sockets (protocol 12, NETLINK_NETFILTER) subscribed to the
// DESTROY group. conntrack -E only says that it hit ENOBUFS, not how often;
// the kernel counts each event it could not queue, and each lost DESTROY is a
// finished connection that will not be logged.
//
// Why events are dropped at all: the listener's socket keeps the host's
// net.core.rmem_default (212,992 bytes: about 166 DESTROY events here), since
// conntrack 1.4.7 applies --buffer-size to its other socket and the pod cannot
// write that sysctl; and the kernel's conntrack collector destroys expired
// entries in bursts, about a second's worth at a time.
import { readFileSync } from "node:fs";

const NETLINK_NETFILTER = "12";
const DESTROY_GROUP = 0x4; // NF_NETLINK_CONNTRACK_DESTROY

/** Socket inode -> drops, for the conntrack sockets subscribed to DESTROY events. Pure. */
export function destroySocketDrops(procNetNetlink: string): Map<string, number> {
  const drops = new Map<string, number>();
  // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
  for (const row of procNetNetlink.split("\n").slice(1)) {
    const cells = row.trim().split(/\s+/);
    if (cells.length < 10 || cells[1] !== NETLINK_NETFILTER) continue;
    if ((Number.parseInt(cells[3]!, 16) & DESTROY_GROUP) === 0) continue;
    drops.set(cells[9]!, Number(cells[8]));
  }
  return drops;
}

/** The sum over every DESTROY socket seen, so that a restarted listener's drops are not forgotten. */
export class DestroyDrops {
  private open = new Map<string, number>();
  /** Drops of sockets that are gone (a listener that was restarted). */
  private closed = 0;

  constructor(private readonly read: () => string = () => readFileSync("/proc/net/netlink", "utf8")) {}

  /** Reads the kernel's counters again; returns the total, or the last total when they cannot be read. */
  total(): number {
    try {
      const now = destroySocketDrops(this.read());
      for (const [inode, drops] of this.open) if (!now.has(inode)) this.closed += drops;
      this.open = now;
    } catch {
      // /proc/net/netlink unreadable: the last known total stands
    }
    let sum = this.closed;
    for (const drops of this.open.values()) sum += drops;
    return sum;
  }
}
