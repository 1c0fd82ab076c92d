// The health server's open connections, bounded. Any pod can reach the health
// port, so a full table must never cost kubelet or a node agent its answer:
// at the bound, a new connection is always admitted and an older one closed
// instead, taken from the peer address that holds the most connections, and
// among its connections the oldest one that is not being answered. A poller
// holds one short connection; a flood holds hundreds from a few addresses.

/** What the table needs of a socket. */
export interface HeldSocket {
  destroy(): void;
}

/** Why the server closed a connection or refused a request before answering it normally. */
export const SHED_REASONS = [
  "limit", // closed to admit a newer connection at the bound
  "timeout", // no complete request head within the header timeout
  "headers_too_large", // request line and headers over the size limit
  "malformed", // not HTTP/1.x
  "request_body", // a request with a body: answered 413, connection closed
  "requests_per_connection", // more requests on one connection than the limit (a pipelined flood)
  "accept_error", // the kernel handed over a connection the process could not take (EMFILE, ENFILE)
] as const;
export type ShedReason = (typeof SHED_REASONS)[number];

export interface ConnectionStats {
  readonly open: number;
  readonly bound: number;
  readonly shed: Readonly<Record<ShedReason, number>>;
}

interface Held<S> {
  readonly socket: S;
  readonly peer: string;
  closed: boolean;
}

export class HealthConnections<S extends HeldSocket> {
  private readonly byPeer = new Map<string, Set<Held<S>>>();
  /** Peers by how many connections they hold: finds the heaviest in O(1). */
  private readonly peersBySize = new Map<number, Set<string>>();
  private heaviest = 0;
  private count = 0;
  private readonly shedCounts = Object.fromEntries(SHED_REASONS.map((r) => [r, 0])) as Record<
    ShedReason,
    number
  >;

  /**
   * @param bound most connections held at once
   * @param busy whether a connection has a request being answered; such a one is closed last
   */
  constructor(
    readonly bound: number,
    private readonly busy: (socket: S) => boolean,
  ) {}

  /** Admits a new connection, closing older ones first if the table is full. Returns its handle for `closed`. */
  admit(socket: S, peer: string): Held<S> {
    while (this.count >= this.bound) {
      if (!this.evictOne()) break;
    }
    const held: Held<S> = { socket, peer, closed: false };
    let set = this.byPeer.get(peer);
    if (!set) {
      set = new Set();
      this.byPeer.set(peer, set);
    }
    this.resize(peer, set.size, set.size + 1);
    set.add(held);
    this.count++;
    return held;
  }

  /** The connection ended, whoever closed it. Idempotent. */
  closed(held: Held<S>): void {
    if (held.closed) return;
    held.closed = true;
    const set = this.byPeer.get(held.peer);
    if (!set?.delete(held)) return;
    this.count--;
    this.resize(held.peer, set.size + 1, set.size);
    if (set.size === 0) this.byPeer.delete(held.peer);
  }

  countShed(reason: ShedReason): void {
    this.shedCounts[reason]++;
  }

  stats(): ConnectionStats {
    return { open: this.count, bound: this.bound, shed: { ...this.shedCounts } };
  }

  private evictOne(): boolean {
    const peer = this.peersBySize.get(this.heaviest)?.values().next().value;
    const set = peer === undefined ? undefined : this.byPeer.get(peer);
    if (!set) return false;
    let victim: Held<S> | undefined;
    for (const held of set) {
      if (!this.busy(held.socket)) {
        victim = held;
        break;
      }
    }
    victim ??= set.values().next().value;
    if (!victim) return false;
    this.closed(victim);
    this.countShed("limit");
    victim.socket.destroy();
    return true;
  }

  private resize(peer: string, from: number, to: number): void {
    if (from > 0) {
      const bucket = this.peersBySize.get(from);
      bucket?.delete(peer);
      if (bucket?.size === 0) this.peersBySize.delete(from);
    }
    if (to > 0) {
      let bucket = this.peersBySize.get(to);
      if (!bucket) {
        bucket = new Set();
        this.peersBySize.set(to, bucket);
      }
      bucket.add(peer);
    }
    if (to > this.heaviest) this.heaviest = to;
    while (this.heaviest > 0 && !this.peersBySize.has(this.heaviest)) this.heaviest--;
  }
}
