// The kernel's conntrack statistics (/proc/net/stat/nf_conntrack): a header of
// field names, then one row of hexadecimal counters per CPU, summed here. The
// columns differ between kernels, so they are found by name. Pure.

export interface ConntrackStats {
  /** A new connection lost the race to insert its entry (its first packet is dropped). */
  readonly insertFailed: number;
  /** Packets dropped because the table was full or an entry could not be made. */
  readonly drop: number;
  /** Entries evicted early to make room for new ones in a full table. */
  readonly earlyDrop: number;
  /** Packets conntrack could not track (malformed, or out of the TCP window). */
  readonly invalid: number;
}

const FIELDS = {
  insertFailed: "insert_failed",
  drop: "drop",
  earlyDrop: "early_drop",
  invalid: "invalid",
} as const satisfies Record<keyof ConntrackStats, string>;

export function parseConntrackStats(text: string): ConntrackStats {
  const [header = "", ...rows] = text.split("\n").filter((line) => line.trim() !== "");
  const names = header.trim().split(/\s+/);
  const sums = new Map<string, number>();
  for (const row of rows) {
    row
      .trim()
      .split(/\s+/)
      .forEach((hex, i) => {
        const name = names[i] ?? "";
        sums.set(name, (sums.get(name) ?? 0) + Number.parseInt(hex, 16));
      });
  }
  const stats = {} as Record<keyof ConntrackStats, number>;
  for (const [key, name] of Object.entries(FIELDS) as [keyof ConntrackStats, string][]) {
    const sum = sums.get(name);
    if (sum === undefined || Number.isNaN(sum)) {
      throw new Error(`the conntrack statistics have no ${name} column (header: ${header.trim()})`);
    }
    stats[key] = sum;
  }
  return stats;
}
