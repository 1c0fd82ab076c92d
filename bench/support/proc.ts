// What a benchmark reads about another process from /proc: CPU time and peak
// memory. Wrappers (`ip netns exec`, start-gateway.sh) exec, so the PID we
// spawned becomes the measured program; waitForComm says when that happened.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

const CLOCK_TICKS_PER_SECOND = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());

export function comm(pid: number): string {
  return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
}

/** Waits until `pid` runs `name` (after the wrappers' exec), or throws after timeoutMs. */
export async function waitForComm(pid: number, name: string, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  let seen = "";
  while (Date.now() < until) {
    try {
      seen = comm(pid);
      if (seen === name) return;
    } catch {
      throw new Error(`process ${pid} exited before it became ${name} (last comm: ${seen || "none"})`);
    }
    await sleep(20);
  }
  throw new Error(`process ${pid} is still ${seen}, not ${name}, after ${timeoutMs} ms`);
}

/** utime and stime of the process, in seconds (clock-tick resolution). */
export function cpuTimes(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the parenthesised comm start at field 3 (state); utime is 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return {
    user: Number(fields[11]) / CLOCK_TICKS_PER_SECOND,
    system: Number(fields[12]) / CLOCK_TICKS_PER_SECOND,
  };
}

/**
 * utime + stime of the process, of the children it has reaped (the tools it
 * ran) and of its live descendants (long-running helpers such as monitors), in
 * seconds. A process that exits between two readings moves from the live to
 * the reaped share, so differences stay right.
 */
export function cpuSecondsWithChildren(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return 0; // exited meanwhile: its time is in its parent's reaped share
  }
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime 14, stime 15, cutime 16, cstime 17 (1-based): indices 11 to 14 after comm.
  const own = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0) / CLOCK_TICKS_PER_SECOND;
  return own + liveChildren(pid).reduce((sum, child) => sum + cpuSecondsWithChildren(child), 0);
}

function liveChildren(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) =>
      readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").split(" ").filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}

export function cpuSeconds(pid: number): number {
  const { user, system } = cpuTimes(pid);
  return user + system;
}

/** Times the main thread went to sleep waiting (each is a later wake-up): epoll waits, timers. */
export function voluntarySwitches(pid: number): number {
  const match = /^voluntary_ctxt_switches:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!match) throw new Error(`no voluntary_ctxt_switches in /proc/${pid}/status`);
  return Number(match[1]);
}

function statusKiB(pid: number, key: "VmHWM" | "VmRSS"): number {
  const match = new RegExp(`^${key}:\\s+(\\d+) kB$`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!match) throw new Error(`no ${key} in /proc/${pid}/status`);
  return Number(match[1]);
}

/** Peak resident set size over the process's life, in bytes. */
export const peakRssBytes = (pid: number): number => statusKiB(pid, "VmHWM") * 1024;
export const rssBytes = (pid: number): number => statusKiB(pid, "VmRSS") * 1024;

export interface CpuWindow {
  readonly cpuSeconds: number;
  readonly wallSeconds: number;
  /** CPU seconds per wall second: the share of one core. */
  readonly coreShare: number;
  /** The part of coreShare spent in the kernel. */
  readonly systemShare: number;
  readonly wakeupsPerSecond: number;
}

/** CPU used by `pid` between this call and the returned function's call. */
export function startCpuWindow(pid: number): () => CpuWindow {
  const cpu0 = cpuTimes(pid);
  const switches0 = voluntarySwitches(pid);
  const t0 = performance.now();
  return () => {
    const cpu = cpuTimes(pid);
    const wall = (performance.now() - t0) / 1000;
    const total = cpu.user - cpu0.user + (cpu.system - cpu0.system);
    return {
      cpuSeconds: total,
      wallSeconds: wall,
      coreShare: total / wall,
      systemShare: (cpu.system - cpu0.system) / wall,
      wakeupsPerSecond: (voluntarySwitches(pid) - switches0) / wall,
    };
  };
}
