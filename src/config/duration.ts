// Go duration syntax (time.ParseDuration), because that is what users already write
// in these manifests: a sequence of decimal numbers, each with a unit, such as
// "1m30s", "1.5s", "300µs". Negative durations are refused: nothing here runs backwards.

import { quote } from "./errors.js";

export type ParsedDuration =
  { readonly ok: true; readonly ms: number } | { readonly ok: false; readonly problem: string };

const NS_PER_UNIT: ReadonlyMap<string, bigint> = new Map([
  ["ns", 1n],
  ["us", 1_000n],
  ["µs", 1_000n], // U+00B5 micro sign
  ["μs", 1_000n], // U+03BC Greek mu; Go accepts both
  ["ms", 1_000_000n],
  ["s", 1_000_000_000n],
  ["m", 60_000_000_000n],
  ["h", 3_600_000_000_000n],
]);

// As in Go, the unit is everything up to the next digit or dot, so "5sec" names the unit "sec".
const TERM = /(\d*)(?:\.(\d*))?([^\d.]*)/y;
const BARE_NUMBER = /^(?:\d+(?:\.\d*)?|\.\d+)$/;
// Go's own limit (int64 nanoseconds, about 292 years).
const MAX_NS = 2n ** 63n - 1n;

const NOT_A_DURATION: ParsedDuration = { ok: false, problem: "is not a duration" };

/**
 * Parses a Go duration into milliseconds. Work happens in whole nanoseconds, as in Go:
 * digits below a nanosecond are truncated, so the result is exact to the nanosecond and
 * may be fractional ("300us" gives 0.3). Rounding to timer resolution is the caller's
 * decision. "0" needs no unit (Go allows that too); `bareNumberUnit` lets a variable
 * accept any bare number in that unit ("90" as 90 s).
 */
export function parseDuration(text: string, bareNumberUnit?: "s"): ParsedDuration {
  if (text.startsWith("-")) return { ok: false, problem: "is negative" };
  let rest = text.startsWith("+") ? text.slice(1) : text;
  if (rest === "0") return { ok: true, ms: 0 };
  if (bareNumberUnit !== undefined && BARE_NUMBER.test(rest)) rest += bareNumberUnit;
  if (rest === "") return NOT_A_DURATION;

  let ns = 0n;
  for (let position = 0; position < rest.length;) {
    TERM.lastIndex = position;
    const [term = "", whole = "", fraction, unit = ""] = TERM.exec(rest) ?? [];
    if (whole === "" && (fraction ?? "") === "") return NOT_A_DURATION;
    if (unit === "") return { ok: false, problem: "has a number without a unit" };
    const unitNs = NS_PER_UNIT.get(unit);
    if (unitNs === undefined) return { ok: false, problem: `has an unknown unit ${quote(unit)}` };
    ns += BigInt(whole || "0") * unitNs + fractionNs(fraction ?? "", unitNs);
    if (ns > MAX_NS) return { ok: false, problem: "is too long to be a duration" };
    position += term.length;
  }
  return { ok: true, ms: Number(ns) / 1e6 };
}

function fractionNs(digits: string, unitNs: bigint): bigint {
  return digits === "" ? 0n : (BigInt(digits) * unitNs) / 10n ** BigInt(digits.length);
}

/** Formats milliseconds the way Go prints durations, without zero parts: "100ms", "1m30s", "24h". */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  if (ms < 1000) return `${ms}ms`;
  const hours = Math.floor(ms / 3_600_000);
  const minutes = Math.floor((ms % 3_600_000) / 60_000);
  const seconds = (ms % 60_000) / 1000;
  return `${hours > 0 ? `${hours}h` : ""}${minutes > 0 ? `${minutes}m` : ""}${seconds > 0 ? `${seconds}s` : ""}`;
}
