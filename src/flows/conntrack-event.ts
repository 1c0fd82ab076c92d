// One line of `conntrack -E -o timestamp,extended,id,ktimestamp` (or of
// /proc/net/nf_conntrack, which is the same without the first two fields),
// parsed. Pure.
//
//   [1796572553.265486]	[DESTROY] ipv4     2 tcp      6 119 TIME_WAIT src=C dst=D sport=X dport=P
//     packets=5 bytes=268 src=D dst=G sport=P dport=Y packets=4 bytes=219 [ASSURED] delta-time=1
//     [start=Sun Dec  6 15:55:52 2026] [stop=Sun Dec  6 15:55:53 2026] id=2711608577
//
// The first tuple is the original direction (client to destination), the
// second the reply (destination to the SNAT address). Counters are there when
// nf_conntrack_acct is on, start and stop when nf_conntrack_timestamp is on;
// conntrack prints those with ctime(), in the zone of its TZ, to the second.

export type EventType = "NEW" | "UPDATE" | "DESTROY";

export interface Tuple {
  readonly src: string;
  readonly dst: string;
  /** TCP, UDP, SCTP, DCCP; absent for ICMP and others. */
  readonly sport?: number;
  readonly dport?: number;
  /** Present when nf_conntrack_acct is on. */
  readonly packets?: number;
  readonly bytes?: number;
}

export interface ConntrackEvent {
  readonly type: EventType | undefined;
  /** When conntrack received the event, ms since the epoch (µs precision); absent without `-o timestamp`. */
  readonly at: number | undefined;
  readonly family: 4 | 6;
  readonly protocol: string;
  /** Seconds left before the entry expires (0 when it expired). */
  readonly timeout: number;
  /** TCP (and SCTP, DCCP) state. */
  readonly state: string | undefined;
  readonly original: Tuple;
  readonly reply: Tuple;
  /** The kernel's start timestamp, ms since the epoch, to the second; absent without ktimestamp. */
  readonly start: number | undefined;
  readonly id: number | undefined;
}

const TUPLE_KEYS = new Set(["src", "dst", "sport", "dport", "type", "code", "id", "packets", "bytes"]);
const HEAD = /^(?:\[(\d+)\.(\d+)\]\s+)?(?:\[(NEW|UPDATE|DESTROY)\]\s+)?/;
const KTIME = /\[(start|stop)=([^\]]*)\]/g;
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** The entry or event on `line`, or undefined when it is not one (a summary line, a warning). */
export function parseConntrackLine(line: string): ConntrackEvent | undefined {
  const head = HEAD.exec(line);
  if (head === null) return undefined;
  const at = head[1] === undefined ? undefined : Number(head[1]) * 1000 + Number(head[2]) / 1000;
  let start: number | undefined;
  const rest = line.slice(head[0].length).replace(KTIME, (_all, which: string, text: string) => {
    if (which === "start") start = parseCtime(text);
    return "";
  });
  const tokens = rest.split(/\s+/).filter((t) => t !== "");
  const [l3, , l4] = tokens;
  if ((l3 !== "ipv4" && l3 !== "ipv6") || l4 === undefined) return undefined;
  let index = 4;
  // An entry that expired has no timeout left to print.
  const timeout = /^\d+$/.test(tokens[index] ?? "") ? Number(tokens[index++]) : 0;
  let state: string | undefined;
  if (tokens[index] !== undefined && /^[A-Z_]+$/.test(tokens[index]!)) state = tokens[index++];

  const tuples: Record<string, string>[] = [];
  let current: Record<string, string> | undefined;
  let id: number | undefined;
  for (; index < tokens.length; index++) {
    const token = tokens[index]!;
    const eq = token.indexOf("=");
    if (eq <= 0) {
      // [UNREPLIED] sits between the tuples; any other flag ends them.
      if (token !== "[UNREPLIED]") current = undefined;
      continue;
    }
    const key = token.slice(0, eq);
    const value = token.slice(eq + 1);
    if (key === "src" && tuples.length < 2) {
      current = { src: value };
      tuples.push(current);
    } else if (current !== undefined && TUPLE_KEYS.has(key) && !(key in current)) {
      current[key] = value;
    } else {
      current = undefined;
      if (key === "id") id = Number(value);
    }
  }
  const [original, reply] = tuples;
  if (original?.dst === undefined || reply?.dst === undefined) return undefined;
  return {
    type: head[3] as EventType | undefined,
    at,
    family: l3 === "ipv4" ? 4 : 6,
    protocol: l4,
    timeout,
    state,
    original: tuple(original),
    reply: tuple(reply),
    start,
    id,
  };
}

function tuple(fields: Record<string, string>): Tuple {
  const number = (key: string): number | undefined =>
    fields[key] === undefined ? undefined : Number(fields[key]);
  return {
    src: fields.src!,
    dst: fields.dst!,
    ...(fields.sport === undefined ? {} : { sport: number("sport"), dport: number("dport") }),
    ...(fields.packets === undefined ? {} : { packets: number("packets"), bytes: number("bytes") }),
  };
}

/** "Sun Dec  6 15:55:52 2026" (ctime in UTC: the listener runs conntrack with TZ=UTC) to ms since the epoch. */
export function parseCtime(text: string): number | undefined {
  const m = /^\w{3} (\w{3}) +(\d+) (\d\d):(\d\d):(\d\d) (\d{4})$/.exec(text.trim());
  if (m === null) return undefined;
  const month = MONTHS.indexOf(m[1]!);
  if (month === -1) return undefined;
  return Date.UTC(Number(m[6]), month, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]));
}

const HEAD_TIME = /^\[(\d+)\.(\d+)\]/;
const ENTRY_ID = / id=(\d+)/;

/**
 * A TCP close event (`-p tcp`, UPDATE to TIME_WAIT or CLOSE) read for its two
 * facts only, the event's time and the entry's id: the close listeners get a
 * line per closing connection, and the full parse is for DESTROY's counters.
 * (A TCP tuple has no `id=` of its own, so the first one is the entry's.)
 */
export function parseCloseEvent(line: string): { at: number | undefined; id: number } | undefined {
  const id = ENTRY_ID.exec(line);
  if (id === null) return undefined;
  const head = HEAD_TIME.exec(line);
  return {
    at: head === null ? undefined : Number(head[1]) * 1000 + Number(head[2]) / 1000,
    id: Number(id[1]),
  };
}
