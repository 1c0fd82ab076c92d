// A finished conntrack entry as one flow-log record: who (client) reached what
// (destination) through which SNAT address and port, how much, and when. Pure.
import type { ConntrackEvent } from "./conntrack-event.js";

export interface FlowRecord {
  readonly protocol: string;
  readonly family: 4 | 6;
  readonly clientIp: string;
  readonly clientPort?: number;
  readonly destinationIp: string;
  readonly destinationPort?: number;
  readonly snatIp: string;
  readonly snatPort?: number;
  /** Client to destination; absent when conntrack accounting is off. */
  readonly packetsOut?: number;
  readonly bytesOut?: number;
  /** Destination to client. */
  readonly packetsIn?: number;
  readonly bytesIn?: number;
  /** ISO 8601; the kernel's start timestamp, to the second. */
  readonly start?: string;
  /** ISO 8601: the TCP close (FIN or RST) when seen, else when the kernel dropped the entry. */
  readonly end: string;
  readonly durationSeconds?: number;
  /** The TCP state the entry ended in (TIME_WAIT after a normal close). */
  readonly state?: string;
  readonly conntrackId?: number;
  /** Still open when the gateway stopped: `end` is that moment, not the connection's end. */
  readonly open?: boolean;
}

/**
 * Forwarded connections only: translated to one of the pod's addresses (the
 * reply goes to it) and not from the pod itself (its probes, its health
 * answers). Without known pod addresses, any translated entry counts.
 */
export function isForwarded(event: ConntrackEvent, podAddresses: ReadonlySet<string>): boolean {
  const { original, reply } = event;
  if (podAddresses.size === 0) return reply.dst !== original.src;
  return podAddresses.has(reply.dst) && !podAddresses.has(original.src);
}

/** `closedAt`: when the TCP connection closed, if a close event was seen; else the event's own time. */
export function flowRecord(event: ConntrackEvent, closedAt: number | undefined, now: number): FlowRecord {
  const { original, reply } = event;
  const end = closedAt ?? event.at ?? now;
  const record: Record<string, unknown> = {
    protocol: event.protocol,
    family: event.family,
    clientIp: original.src,
    clientPort: original.sport,
    destinationIp: original.dst,
    destinationPort: original.dport,
    snatIp: reply.dst,
    snatPort: reply.dport,
    packetsOut: original.packets,
    bytesOut: original.bytes,
    packetsIn: reply.packets,
    bytesIn: reply.bytes,
    start: event.start === undefined ? undefined : new Date(event.start).toISOString(),
    end: new Date(end).toISOString(),
    durationSeconds:
      event.start === undefined ? undefined : Math.max(0, Math.round(end - event.start) / 1000),
    state: event.state,
    conntrackId: event.id,
  };
  for (const key of Object.keys(record)) if (record[key] === undefined) delete record[key];
  return record as unknown as FlowRecord;
}
