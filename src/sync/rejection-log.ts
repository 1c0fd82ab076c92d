// Rejected routes in the log without flooding it: per reason, the first one at
// once, then at most one line per window with how many followed and the last
// of them. The metric counts every one (egress_gateway_policy_sync_rejected_routes_total).
import type { RejectReason } from "./route-check.js";

export const REJECTION_LOG_WINDOW_MS = 60_000; // 60 s

export interface RejectionLine {
  readonly reason: RejectReason;
  /** Rejections this line stands for: this one and those held back since the reason's last line. */
  readonly count: number;
  readonly detail: string;
}

export class RejectionLog {
  /** Rejections held back since the reason's last line. */
  private readonly held = new Map<RejectReason, number>();
  private readonly lastLine = new Map<RejectReason, number>();

  constructor(
    private readonly write: (line: RejectionLine) => void,
    private readonly windowMs = REJECTION_LOG_WINDOW_MS,
  ) {}

  /** Notes one rejection at `now` (ms); writes a line when the reason's window allows one. */
  note(reason: RejectReason, detail: string, now: number): void {
    const last = this.lastLine.get(reason);
    const count = (this.held.get(reason) ?? 0) + 1;
    if (last !== undefined && now - last < this.windowMs) {
      this.held.set(reason, count);
      return;
    }
    this.held.delete(reason);
    this.lastLine.set(reason, now);
    this.write({ reason, count, detail });
  }
}
