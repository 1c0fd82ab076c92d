// One abuse run against a running gateway's health port, shared by the test
// (CI sizes) and bench/health-abuse.ts (full sizes): kubelet's probe alone as
// the baseline, then the same probe while lab/health-attack.ts attacks from
// another address, then the attacker gone and the gateway's open fds and RSS
// read again once its timeouts have closed what the attack left.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { getPriority, setPriority } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { spawnAttack, type AttackCounts, type AttackPlan } from "./health-attack.js";
import { pollReadiness, quantile, type PollResult } from "./kubelet-poller.js";

export interface AbuseRunOptions {
  readonly host: string;
  readonly port: number;
  /** The gateway's PID (node, after start-gateway.sh's exec). */
  readonly pid: number;
  readonly attack: Omit<AttackPlan, "host" | "port">;
  readonly kubeletSource?: string;
  readonly baselineMs: number;
  /** How long kubelet is measured under attack, after the ramp. */
  readonly attackMs: number;
  /** kubelet is measured once the attacker holds this many connections (it starts slowly on a busy machine)... */
  readonly holding: number;
  /** ...and this much later. */
  readonly rampMs: number;
  /** Longest wait for the open fds to return to the baseline after the attack. */
  readonly settleTimeoutMs: number;
  /**
   * Longest wait, from the attacker's exit, for RSS to come back within
   * `rssSettledBytes` of where it was before. What the attack's 4,000
   * connections made V8 and malloc take stays resident until V8's memory
   * reducer runs, 5-25 s after allocation stops (measured): reading RSS at
   * once measures that delay, not what the gateway keeps.
   */
  readonly rssSettleTimeoutMs: number;
  readonly rssSettledBytes: number;
  /**
   * Scheduling priority (nice) of the gateway, the attacker and this process
   * (kubelet) for the run, all alike: on a machine shared with unrelated work
   * it stands in for the CPU the pods' requests would reserve. Default: as started.
   */
  readonly nice?: number;
}

export interface PollSummary {
  readonly sent: number;
  readonly answered: number;
  readonly answeredShare: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly failures: string;
}

export interface AbuseRunResult {
  readonly baseline: PollSummary;
  readonly attacked: PollSummary;
  readonly fdsBefore: number;
  readonly fdsPeak: number;
  readonly fdsAfter: number;
  /** Socket descriptors before the attack and after it (./openSockets). */
  readonly socketsBefore: number;
  readonly socketsAfter: number;
  /** From the attacker's exit to the sockets back at the baseline (or the settle timeout). */
  readonly settleMs: number;
  readonly rssBeforeBytes: number;
  readonly rssPeakBytes: number;
  /** RSS right after the attack, and once settled (or at the RSS settle timeout). */
  readonly rssAtStopBytes: number;
  readonly rssAfterBytes: number;
  /** From the attacker's exit to `rssAfterBytes`. */
  readonly rssSettleMs: number;
  /** The gateway's CPU seconds per second while kubelet was measured under attack (1 = one core). */
  readonly attackCoreShare: number;
  readonly attacker: AttackCounts & { held: number; heldPeak: number };
  /** Whether the gateway process was alive at the end. */
  readonly alive: boolean;
}

const SAMPLE_MS = 100;
const RSS_SAMPLE_MS = 500;
const HOLDING_TIMEOUT_MS = 30_000;

/** utime + stime of `pid`, in clock ticks (100 a second on Linux). */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}
const TICKS_PER_SECOND = 100;

export const openFds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

/**
 * The process's socket descriptors: what the attack opens and what must come
 * back to the baseline. The other descriptors come and go on their own
 * schedules (the telemetry worker's threads start after the first refresh and
 * again after a read missed its deadline; the spawn broker's pipes after a
 * restart), so a total taken during the baseline can differ from one taken
 * later with nothing leaked.
 */
export function openSockets(pid: number): number {
  let sockets = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("socket:")) sockets++;
    } catch {
      // closed between the listing and the read
    }
  }
  return sockets;
}

export function rssOf(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!match) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return readFileSync(`/proc/${pid}/status`, "utf8").includes("State:\tZ") === false;
  } catch {
    return false;
  }
}

export function summarise(result: PollResult): PollSummary {
  return {
    sent: result.sent,
    answered: result.answered,
    answeredShare: result.sent === 0 ? 0 : result.answered / result.sent,
    p50Ms: quantile(result.latenciesMs, 0.5),
    p99Ms: quantile(result.latenciesMs, 0.99),
    failures: [...result.failures].map(([why, n]) => `${why} ${n}`).join(", "),
  };
}

export async function abuseRun(options: AbuseRunOptions): Promise<AbuseRunResult> {
  const { host, port, pid } = options;
  const kubelet = { host, port, ...(options.kubeletSource ? { sourceAddress: options.kubeletSource } : {}) };

  const ownNice = getPriority();
  if (options.nice !== undefined) {
    setPriority(pid, options.nice);
    setPriority(options.nice);
  }
  try {
    return await measured(options, kubelet);
  } finally {
    setPriority(ownNice);
  }
}

async function measured(
  options: AbuseRunOptions,
  kubelet: { host: string; port: number; sourceAddress?: string },
): Promise<AbuseRunResult> {
  const { host, port, pid } = options;
  const quiet = pollReadiness(kubelet);
  await sleep(options.baselineMs);
  const baseline = summarise(await quiet.stop());
  const fdsBefore = openFds(pid);
  const socketsBefore = openSockets(pid);
  const rssBeforeBytes = rssOf(pid);

  let fdsPeak = fdsBefore;
  let rssPeakBytes = rssBeforeBytes;
  let heldPeak = 0;
  const attack = spawnAttack({ host, port, ...options.attack });
  if (options.nice !== undefined) setPriority(attack.pid, options.nice);
  const sampler = setInterval(() => {
    if (!isAlive(pid)) return;
    fdsPeak = Math.max(fdsPeak, openFds(pid));
    rssPeakBytes = Math.max(rssPeakBytes, rssOf(pid));
    heldPeak = Math.max(heldPeak, attack.last().held);
  }, SAMPLE_MS);
  let attacked: PollSummary;
  let attackCoreShare = Number.NaN;
  let attacker: AttackCounts & { held: number };
  try {
    await attack.holding(options.holding, HOLDING_TIMEOUT_MS);
    await sleep(options.rampMs);
    const ticks = cpuTicks(pid);
    const underAttack = pollReadiness(kubelet);
    await sleep(options.attackMs);
    attackCoreShare = (cpuTicks(pid) - ticks) / TICKS_PER_SECOND / (options.attackMs / 1000);
    attacked = summarise(await underAttack.stop());
  } finally {
    clearInterval(sampler);
    attacker = await attack.stop();
  }

  const stoppedAt = performance.now();
  const rssAtStopBytes = isAlive(pid) ? rssOf(pid) : 0;
  let socketsAfter = isAlive(pid) ? openSockets(pid) : 0;
  while (
    isAlive(pid) &&
    socketsAfter > socketsBefore &&
    performance.now() - stoppedAt < options.settleTimeoutMs
  ) {
    await sleep(SAMPLE_MS);
    socketsAfter = openSockets(pid);
  }
  const fdsAfter = isAlive(pid) ? openFds(pid) : 0;
  const settleMs = performance.now() - stoppedAt;
  let rssAfterBytes = isAlive(pid) ? rssOf(pid) : 0;
  while (
    isAlive(pid) &&
    rssAfterBytes - rssBeforeBytes > options.rssSettledBytes &&
    performance.now() - stoppedAt < options.rssSettleTimeoutMs
  ) {
    await sleep(RSS_SAMPLE_MS);
    rssAfterBytes = rssOf(pid);
  }
  const rssSettleMs = performance.now() - stoppedAt;
  const alive = isAlive(pid);
  return {
    baseline,
    attacked,
    fdsBefore,
    fdsPeak,
    fdsAfter,
    socketsBefore,
    socketsAfter,
    settleMs,
    rssBeforeBytes,
    rssPeakBytes,
    rssAtStopBytes,
    rssAfterBytes: alive ? rssAfterBytes : 0,
    rssSettleMs,
    attackCoreShare,
    attacker: { ...attacker, heldPeak },
    alive,
  };
}
