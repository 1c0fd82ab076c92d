// Durations of the gateway: probe intervals and windows, the datastore timeout,
// the drain. What the vendor's operator renders must run (SPEC §2): it writes
// whole seconds from 0 to 2147483647, so a value that cannot be honoured
// literally (0s, a window shorter than the interval, an interval below the
// scheduler's floor) is adjusted with a warning instead of a crash loop. Only
// syntax errors and negative values are configuration errors. Everything else
// is honoured as written, also past Node's 24.8-day timer limit: the clock
// chains timers (src/clock.ts).

import { formatDuration, parseDuration } from "./duration.js";
import { describe, invalid, read, type Environment, type Setting } from "./setting.js";
import type { Adjustment, ProbeTiming } from "./types.js";
import type { VariableName } from "./variables.js";

/** The probe scheduler's floor; a shorter interval is raised to it, with a warning. */
export const MIN_PROBE_INTERVAL_MS = 100; // 100 ms
/**
 * Policy sync refreshes its component every third of this timeout; a shorter one
 * would be a timer every few milliseconds for no gain.
 */
export const MIN_DATASTORE_TIMEOUT_MS = 1_000; // 1 s
/** Past an hour a drain is a hung pod; Kubernetes' grace period bounds it anyway. */
export const MAX_DRAIN_MS = 3_600_000; // 1 h

const EXPECTED_DURATION = "a duration such as 500ms, 5s or 1m30s";
const EXPECTED_SECONDS = "a duration such as 90s or 1m30s, or a number of seconds such as 90";

/** Collects the adjustments made while parsing; the gateway logs each as one warning. */
export class Adjustments {
  readonly list: Adjustment[] = [];

  add(setting: Setting, reason: string, usedMs: number): void {
    const used = formatDuration(usedMs);
    this.list.push({
      variable: setting.name,
      given: setting.isDefault ? `${setting.text} (default)` : setting.raw,
      used,
      message: `${describe(setting)} ${reason}; using ${used}`,
    });
  }
}

/** Milliseconds exact to the nanosecond; a syntax error or a negative value is a ConfigError. */
function exactDuration(setting: Setting, bareSeconds: boolean): number {
  const parsed = parseDuration(setting.text, bareSeconds ? "s" : undefined);
  if (!parsed.ok) throw invalid(setting, parsed.problem, bareSeconds ? EXPECTED_SECONDS : EXPECTED_DURATION);
  return parsed.ms;
}

// Timers have millisecond resolution. Rounding up keeps a positive duration from
// becoming 0 and never makes a deadline or window shorter than the one asked for.
const wholeMs = (ms: number): number => Math.ceil(ms);

/** `0s` means the default (the operator writes 0 for "not set"); below `floorMs`, the floor. */
function positiveDuration(
  setting: Setting,
  adjustments: Adjustments,
  options: { readonly floorMs: number; readonly bareSeconds: boolean },
): number {
  const ms = exactDuration(setting, options.bareSeconds);
  if (ms === 0) {
    const fallback = wholeMs(exactDuration(read({}, setting.name), options.bareSeconds));
    adjustments.add(setting, "means the default", fallback);
    return fallback;
  }
  if (ms < options.floorMs) {
    adjustments.add(setting, `is shorter than the ${formatDuration(options.floorMs)} floor`, options.floorMs);
    return options.floorMs;
  }
  return wholeMs(ms);
}

/**
 * A probe group's interval and readiness window. A window shorter than the
 * interval would hold no probe part of the time, so the group would flap with a
 * healthy upstream: it is widened to twice the interval (one missed probe is
 * tolerated, as with the defaults). Warnings only for a group that runs.
 */
export function probeTiming(
  env: Environment,
  intervalName: VariableName,
  timeoutName: VariableName,
  active: boolean,
  adjustments: Adjustments,
): ProbeTiming {
  const own = active ? adjustments : new Adjustments();
  const interval = read(env, intervalName);
  const timeout = read(env, timeoutName);
  const intervalMs = positiveDuration(interval, own, { floorMs: MIN_PROBE_INTERVAL_MS, bareSeconds: false });
  const givenTimeoutMs = positiveDuration(timeout, own, { floorMs: 0, bareSeconds: false });
  if (givenTimeoutMs >= intervalMs) return { intervalMs, timeoutMs: givenTimeoutMs };
  // After "0s means the default" the value in force is not the one written: say which.
  const inForce =
    givenTimeoutMs === wholeMs(exactDuration(timeout, false)) ? "" : `(${formatDuration(givenTimeoutMs)}) `;
  const timeoutMs = 2 * intervalMs;
  own.add(
    timeout,
    `${inForce}is shorter than the ${intervalName} of ${formatDuration(intervalMs)}: ` +
      "the window is widened to twice the interval",
    timeoutMs,
  );
  return { intervalMs, timeoutMs };
}

/** HEALTH_TIMEOUT_DATASTORE: a bare number means seconds (as it always has). */
export function datastoreTimeout(env: Environment, adjustments: Adjustments): number {
  return positiveDuration(read(env, "HEALTH_TIMEOUT_DATASTORE"), adjustments, {
    floorMs: MIN_DATASTORE_TIMEOUT_MS,
    bareSeconds: true,
  });
}

/** DRAIN_TIMEOUT and DRAIN_MIN (ours, not rendered by the operator): 0s to 1h, strictly. */
export function drainTimeout(
  env: Environment,
  name: "DRAIN_TIMEOUT" | "DRAIN_MIN" = "DRAIN_TIMEOUT",
): number {
  const setting = read(env, name);
  const expected = `a duration from 0s to ${formatDuration(MAX_DRAIN_MS)}, such as 0s, 25s or 1m30s`;
  const parsed = parseDuration(setting.text);
  if (!parsed.ok) throw invalid(setting, parsed.problem, expected);
  if (parsed.ms > MAX_DRAIN_MS)
    throw invalid(setting, `is longer than ${formatDuration(MAX_DRAIN_MS)}`, expected);
  return wholeMs(parsed.ms);
}

/** The health server's clients send their request at once; waiting longer only helps one that holds connections on purpose. */
export const MAX_HEADER_TIMEOUT_MS = 60_000; // 1 m
export const MAX_KEEPALIVE_TIMEOUT_MS = 600_000; // 10 m
const MIN_HEALTH_TIMEOUT_MS = 100; // 100 ms

/** HEALTH_HEADER_TIMEOUT and HEALTH_KEEPALIVE_TIMEOUT (ours, not rendered by the operator): 100ms to `maxMs`, strictly. */
export function healthTimeout(env: Environment, name: VariableName, maxMs: number): number {
  const setting = read(env, name);
  const expected = `a duration from ${formatDuration(MIN_HEALTH_TIMEOUT_MS)} to ${formatDuration(maxMs)}, such as 3s`;
  const parsed = parseDuration(setting.text);
  if (!parsed.ok) throw invalid(setting, parsed.problem, expected);
  if (parsed.ms === 0) throw invalid(setting, "is zero", expected);
  if (parsed.ms < MIN_HEALTH_TIMEOUT_MS)
    throw invalid(setting, `is shorter than ${formatDuration(MIN_HEALTH_TIMEOUT_MS)}`, expected);
  if (parsed.ms > maxMs) throw invalid(setting, `is longer than ${formatDuration(maxMs)}`, expected);
  return wholeMs(parsed.ms);
}

/** Between 1 s and 1 h: tighter is a busy loop of tool runs, looser leaves drift unnoticed for too long. */
export const MIN_DATAPLANE_CHECK_MS = 1_000; // 1 s
export const MAX_DATAPLANE_CHECK_MS = 3_600_000; // 1 h

/** DATAPLANE_CHECK_INTERVAL (ours, not rendered by the operator): 0s turns the check off, else 1s to 1h, strictly. */
export function dataplaneCheckInterval(env: Environment): number {
  const setting = read(env, "DATAPLANE_CHECK_INTERVAL");
  const expected = `0s (off) or a duration from ${formatDuration(MIN_DATAPLANE_CHECK_MS)} to ${formatDuration(MAX_DATAPLANE_CHECK_MS)}, such as 5s`;
  const parsed = parseDuration(setting.text);
  if (!parsed.ok) throw invalid(setting, parsed.problem, expected);
  if (parsed.ms !== 0 && parsed.ms < MIN_DATAPLANE_CHECK_MS)
    throw invalid(setting, `is shorter than ${formatDuration(MIN_DATAPLANE_CHECK_MS)}`, expected);
  if (parsed.ms > MAX_DATAPLANE_CHECK_MS)
    throw invalid(setting, `is longer than ${formatDuration(MAX_DATAPLANE_CHECK_MS)}`, expected);
  return wholeMs(parsed.ms);
}

/** Below a second, reads of a large conntrack table (~0.5 s at 250k entries) would follow each other with no pause. */
export const MIN_TELEMETRY_INTERVAL_MS = 1_000; // 1 s
export const MAX_TELEMETRY_INTERVAL_MS = 3_600_000; // 1 h

/** TELEMETRY_INTERVAL (ours): 0s turns kernel telemetry off; otherwise 1s to 1h, strictly. */
export function telemetryInterval(env: Environment): number {
  const setting = read(env, "TELEMETRY_INTERVAL");
  const expected =
    `0s (off) or a duration from ${formatDuration(MIN_TELEMETRY_INTERVAL_MS)} ` +
    `to ${formatDuration(MAX_TELEMETRY_INTERVAL_MS)}, such as 15s`;
  const parsed = parseDuration(setting.text);
  if (!parsed.ok) throw invalid(setting, parsed.problem, expected);
  if (parsed.ms === 0) return 0;
  if (parsed.ms < MIN_TELEMETRY_INTERVAL_MS)
    throw invalid(setting, `is shorter than ${formatDuration(MIN_TELEMETRY_INTERVAL_MS)}`, expected);
  if (parsed.ms > MAX_TELEMETRY_INTERVAL_MS)
    throw invalid(setting, `is longer than ${formatDuration(MAX_TELEMETRY_INTERVAL_MS)}`, expected);
  return wholeMs(parsed.ms);
}
