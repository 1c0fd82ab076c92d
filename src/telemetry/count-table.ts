// Counts per key of two 32-bit halves (an IPv4 address, and a port with its
// protocol), in typed arrays with open addressing: counting a quarter of a
// million conntrack entries allocates nothing per entry, where a Map keyed by
// numbers above 2^30 boxes each key and keeps the garbage collector busy.

export class CountTable {
  private high = new Uint32Array(1024);
  private low = new Uint32Array(1024);
  private counts = new Uint32Array(1024);
  private used = 0;

  /** Adds one to the count of (high, low); both unsigned 32-bit. */
  add(high: number, low: number): void {
    const mask = this.counts.length - 1;
    for (let i = slot(high, low) & mask; ; i = (i + 1) & mask) {
      const count = this.counts[i]!;
      if (count === 0) {
        this.high[i] = high;
        this.low[i] = low;
        this.counts[i] = 1;
        if (++this.used * 2 > this.counts.length) this.grow();
        return;
      }
      if (this.high[i] === high && this.low[i] === low) {
        this.counts[i] = count + 1;
        return;
      }
    }
  }

  get size(): number {
    return this.used;
  }

  /** Each key with its count, in no particular order. */
  *entries(): Generator<[high: number, low: number, count: number]> {
    for (let i = 0; i < this.counts.length; i++) {
      const count = this.counts[i]!;
      if (count > 0) yield [this.high[i]!, this.low[i]!, count];
    }
  }

  /** Twice the slots, so that probes stay short (at most half full). */
  private grow(): void {
    const entries = [...this.entries()];
    const capacity = this.counts.length * 2;
    this.high = new Uint32Array(capacity);
    this.low = new Uint32Array(capacity);
    this.counts = new Uint32Array(capacity);
    const mask = capacity - 1;
    for (const [high, low, count] of entries) {
      let i = slot(high, low) & mask;
      while (this.counts[i] !== 0) i = (i + 1) & mask;
      this.high[i] = high;
      this.low[i] = low;
      this.counts[i] = count;
    }
  }
}

/** Mixes both halves (murmur3's finaliser), so that neighbouring addresses spread over the table. */
function slot(high: number, low: number): number {
  let h = Math.imul(high ^ Math.imul(low, 0x9e3779b1), 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}
