// Readiness is the AND of components (SPEC §4.1). A component is ready when its
// last report said so and, if it has a staleness timeout, that report is younger
// than the timeout at the moment of the question. Evaluation is cheap and pure
// over the stored state, so a request never waits for a probe.
import type { Clock, Timer } from "../clock.js";
import { formatDuration } from "../config/duration.js";
import { TERMINATION } from "./components.js";

export interface ComponentView {
  readonly name: string;
  /** Staleness timeout in ms, undefined when reports never go stale. */
  readonly timeoutMs: number | undefined;
  readonly ready: boolean;
  readonly detail: string;
}

export interface ReadinessView {
  readonly ready: boolean;
  readonly terminating: boolean;
  readonly components: readonly ComponentView[];
  /** Changes whenever any field above may have changed; lets renderers cache. */
  readonly version: string;
}

export interface Transition {
  readonly component: string;
  readonly ready: boolean;
  readonly detail: string;
}

interface ComponentState {
  readonly name: string;
  readonly timeoutMs: number | undefined;
  readonly staleDetail: string;
  reported: boolean;
  reportedAt: number;
  detail: string;
  /** Readiness as last announced to listeners, to emit each transition once. */
  announced: boolean;
  expiry: Timer | undefined;
}

export interface Component {
  readonly name: string;
  /** Records the component's state; a ready report refreshes its staleness window. */
  report(ready: boolean, detail?: string): void;
  /** Changes the detail shown without a new report (keeps the staleness window). */
  describe(detail: string): void;
}

const isFresh = (c: ComponentState, now: number): boolean =>
  c.reported && (c.timeoutMs === undefined || now - c.reportedAt < c.timeoutMs);

export class Readiness {
  private readonly components: ComponentState[] = [];
  private terminating = false;
  private revision = 0;
  private readonly listeners: ((t: Transition) => void)[] = [];

  constructor(private readonly clock: Clock) {}

  register(
    name: string,
    options: { timeoutMs?: number; detail?: string; staleDetail?: string } = {},
  ): Component {
    const state: ComponentState = {
      name,
      timeoutMs: options.timeoutMs,
      staleDetail:
        options.staleDetail ??
        (options.timeoutMs === undefined
          ? ""
          : `no sign of life within ${formatDuration(options.timeoutMs)}`),
      reported: false,
      reportedAt: 0,
      detail: options.detail ?? "starting",
      announced: false,
      expiry: undefined,
    };
    this.components.push(state);
    this.revision++;
    return {
      name,
      report: (ready, detail) => this.report(state, ready, detail),
      describe: (detail) => this.describe(state, detail),
    };
  }

  /** Called once per transition of a component and of termination. */
  onTransition(listener: (t: Transition) => void): void {
    this.listeners.push(listener);
  }

  /** SIGTERM: not ready from now on, whatever the components say. */
  terminate(): void {
    if (this.terminating) return;
    this.terminating = true;
    this.revision++;
    this.emit({ component: TERMINATION.name, ready: false, detail: TERMINATION.detail });
  }

  evaluate(now = this.clock.now()): ReadinessView {
    let ready = !this.terminating;
    let staleMask = "";
    const components = this.components.map((c): ComponentView => {
      const fresh = isFresh(c, now);
      const stale = c.reported && !fresh;
      staleMask += stale ? "1" : "0";
      ready &&= fresh;
      return {
        name: c.name,
        timeoutMs: c.timeoutMs,
        ready: fresh,
        detail: stale ? c.staleDetail : c.detail,
      };
    });
    return { ready, terminating: this.terminating, components, version: `${this.revision}:${staleMask}` };
  }

  /** Stops expiry timers (shutdown). */
  close(): void {
    for (const c of this.components) c.expiry?.cancel();
  }

  private report(c: ComponentState, ready: boolean, detail?: string): void {
    const now = this.clock.now();
    const wasFresh = isFresh(c, now);
    if (ready) {
      c.reported = true;
      c.reportedAt = now;
    } else {
      c.reported = false;
    }
    if (detail !== undefined) this.describe(c, detail);
    if (wasFresh !== ready) this.revision++;
    this.announce(c, now);
    if (ready && c.timeoutMs !== undefined && c.expiry === undefined) this.armExpiry(c, c.timeoutMs);
  }

  private describe(c: ComponentState, detail: string): void {
    if (detail === c.detail) return;
    c.detail = detail;
    this.revision++;
  }

  // One timer per component, re-armed lazily: a burst of ready reports (1,000
  // probe successes a second) costs no timer churn, yet the transition to stale
  // is announced within the timer's precision.
  private armExpiry(c: ComponentState, inMs: number): void {
    c.expiry = this.clock.setTimer(inMs, () => {
      c.expiry = undefined;
      const now = this.clock.now();
      if (!c.reported || c.timeoutMs === undefined) return;
      const left = c.reportedAt + c.timeoutMs - now;
      if (left > 0) {
        this.armExpiry(c, left);
        return;
      }
      this.revision++;
      this.announce(c, now);
    });
  }

  private announce(c: ComponentState, now: number): void {
    const ready = isFresh(c, now);
    if (ready === c.announced) return;
    c.announced = ready;
    const stale = c.reported && !ready;
    this.emit({ component: c.name, ready, detail: stale ? c.staleDetail : c.detail });
  }

  private emit(t: Transition): void {
    for (const listener of this.listeners) listener(t);
  }
}
