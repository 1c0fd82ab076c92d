// The data plane at run time (fail closed): every check reads what init set up,
// repairs what the gateway container can with init's own plan and steps (the
// ruleset, vxlan0), and reports the rest through the DataplaneIntegrity
// readiness component (forwarding, redirects, rp_filter: /proc/sys is read-only
// there; conntrack accounting off is only noted, it costs flow logs detail, not
// safety). One log line per drift, counters for /metrics. Checks run one at a
// time. Spawning the tools a check needs costs far more than reading them
// (bench/integrity.ts), so on nftables and iptables-nft a full check runs when
// the kernel says the ruleset or a link changed (events.ts); every `intervalMs`
// only the sysctls are read (no tool runs), with a full check every
// FULL_CHECK_EVERY rounds as a backstop. On iptables-legacy, or when the
// monitors are lost, every round is a full check.
import type { Clock, Timer } from "../clock.js";
import { formatDuration } from "../config/index.js";
import { errorMessage } from "../errors.js";
import { COMPONENT as COMPONENTS } from "../readiness/components.js";
import { applyStep } from "../init/apply.js";
import { detect } from "../init/detect.js";
import { planInit } from "../init/plan.js";
import { describePorts, FAMILIES } from "../init/rules.js";
import type { Family, InitPlan } from "../init/types.js";
import type { PortRange } from "../config/index.js";
import {
  detectedFrom,
  initConfigFor,
  learnBaseline,
  initSnatOf,
  type Baseline,
  type WatchConfig,
} from "./baseline.js";
import {
  DRIFT_KINDS,
  findDrift,
  REPAIRABLE,
  repairSteps,
  sysctlMismatch,
  TELEMETRY_ONLY,
  type Drift,
  type DriftKind,
} from "./drift.js";
import { watchKernelEvents, type KernelEvents } from "./events.js";
import { readLinks, readRules, readSysctls } from "./read.js";

const COMPONENT = COMPONENTS.dataplaneIntegrity;

/** With kernel events, a full check every this many rounds anyway (a minute at the default 5 s). */
const FULL_CHECK_EVERY = 12;
/** A burst of changes (nft -f, ip -batch) is one check. */
const EVENT_SETTLE_MS = 50;
// setpriv: the monitors die with the gateway, even when it is killed (a leftover
// `nft monitor` would hold the pod's network namespace).
const MONITORS = [
  ["setpriv", "--pdeathsig", "KILL", "ip", "monitor", "link"],
  ["setpriv", "--pdeathsig", "KILL", "nft", "monitor"],
];

const CANNOT_WRITE_PROC_SYS =
  "the gateway container cannot write /proc/sys: delete the pod so that its init container runs again";
const FLOW_LOGS_INCOMPLETE =
  "flow logs lack byte counts or times until the pod is recreated (the gateway stays ready)";
const hintFor = (kind: DriftKind): string =>
  TELEMETRY_ONLY.has(kind) ? FLOW_LOGS_INCOMPLETE : CANNOT_WRITE_PROC_SYS;

/** The subset of pino's Logger the watch writes to. */
export interface IntegrityLog {
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
}

export interface IntegrityComponent {
  report(ready: boolean, detail?: string): void;
}

export interface IntegrityOptions {
  readonly config: WatchConfig;
  readonly intervalMs: number;
  readonly readiness: {
    register(name: string, options?: { timeoutMs?: number; staleDetail?: string }): IntegrityComponent;
  };
  readonly log: IntegrityLog;
  readonly clock: Clock;
  /** vxlan0 was recreated or set up again: what was programmed on it (FDB, neighbours, routes) is gone. */
  readonly onVxlanRepaired?: () => void;
}

type Counts = Record<DriftKind, number>;

export interface IntegrityState {
  readonly checks: number;
  readonly lastCheckMs: number | undefined;
  readonly drifts: Readonly<Counts>;
  readonly repairs: Readonly<Counts>;
  readonly repairFailures: Readonly<Counts>;
}

export interface IntegrityWatch {
  state(): IntegrityState;
  /** Cancels the next check and waits for a running one. */
  stop(): Promise<void>;
}

const samePorts = (a: PortRange, b: PortRange): boolean => a.first === b.first && a.last === b.last;
const describePod = (pod: { podIPv4?: string | undefined; podIPv6?: string | undefined }): string =>
  [pod.podIPv4, pod.podIPv6].filter((a) => a !== undefined).join(", ") || "none";
const zero = (): Counts => Object.fromEntries(DRIFT_KINDS.map((k) => [k, 0])) as Counts;
const describeDrift = (d: Drift): string => d.problems.join("; ");

export function startIntegrityWatch(options: IntegrityOptions): IntegrityWatch {
  const { config, clock, log, intervalMs } = options;
  /** The pod's families as init set them up (learned at the first check). */
  let families: readonly Family[] = FAMILIES.filter(
    (family) => (family === 4 ? config.podIPv4 : config.podIPv6) !== undefined,
  );
  // Fail closed if the checks stop (a tool that hangs): stale after three missed rounds.
  const timeoutMs = 3 * intervalMs + 10_000;
  const component = options.readiness.register(COMPONENT, {
    timeoutMs,
    staleDetail: `no completed data-plane check within ${formatDuration(timeoutMs)}`,
  });
  const counts = { drifts: zero(), repairs: zero(), repairFailures: zero() };
  let checks = 0;
  let lastCheckMs: number | undefined;
  let baseline: Baseline | undefined;
  /** Kinds drifted at the end of the last check: a drift is counted and logged when it starts. */
  let active = new Set<DriftKind>();
  let lastFailure: string | undefined;
  let stopped = false;
  let timer: Timer | undefined;
  let running: Promise<void> | undefined;
  let events: KernelEvents | undefined;
  /** The plan of the last full check: which sysctls a light round reads. */
  let lastPlan: InitPlan | undefined;
  /** The sysctls off at the last full check: a light round that reads the same needs no tools. */
  let lastMismatch = "";
  let lastReport: { ready: boolean; detail: string } | undefined;
  let roundsSinceFull = 0;
  let fullWanted = false;

  const look = async (pinned: Baseline): Promise<{ plan: InitPlan; drifts: Drift[]; mismatch: string }> => {
    const [links, rules] = await Promise.all([readLinks(), readRules(pinned.dataplane, families)]);
    const plan = planInit(initConfigFor(config, pinned), detectedFrom(links, rules));
    const sysctls = await readSysctls(plan.expect.sysctls.map((w) => w.key));
    return {
      plan,
      drifts: findDrift(plan, { links, rules, sysctls }),
      mismatch: sysctlMismatch(plan, sysctls),
    };
  };

  const learn = async (): Promise<Baseline> => {
    // Both families' dumps: init may have set up one the gateway was not told about.
    const found = learnBaseline(config, await detect([4, 6]));
    const snat = found.rulesetFound ? initSnatOf(await readRules(found.dataplane, [4, 6])) : undefined;
    const learned: Baseline = snat === undefined ? found : { ...found, snat };
    const init = initConfigFor(config, learned);
    families = FAMILIES.filter((family) => (family === 4 ? init.podIPv4 : init.podIPv6) !== undefined);
    const differs = [
      init.podIPv4 !== config.podIPv4 || init.podIPv6 !== config.podIPv6
        ? `SNAT to ${describePod(init)} where EGRESS_POD_IP(S) here say ${describePod(config)}`
        : undefined,
      samePorts(init.snatPorts, config.snatPorts)
        ? undefined
        : `ports ${describePorts(init.snatPorts)} where SNAT_PORT_RANGE here is ${describePorts(config.snatPorts)}`,
    ].filter((d) => d !== undefined);
    if (differs.length > 0) {
      log.warn(
        { component: COMPONENT },
        `init's SNAT rules differ from this container's configuration (${differs.join("; ")}): ` +
          "repairs keep init's; give both containers the same values",
      );
    }
    const where =
      learned.dataplane.kind === "nftables" ? "nftables" : `iptables-${learned.dataplane.flavour}`;
    log.info(
      {
        component: COMPONENT,
        dataplane: where,
        vxlanPort: learned.vxlanPort,
        rulesetFound: learned.rulesetFound,
      },
      learned.rulesetFound
        ? `watching init's data plane (${where} ruleset) every ${formatDuration(intervalMs)}`
        : `no ruleset of init's found: watching the one init would write (${where})`,
    );
    if (learned.dataplane.kind === "nftables" || learned.dataplane.flavour === "nft") {
      events = watchKernelEvents(MONITORS, changed, (why) => {
        if (!stopped)
          log.warn(
            { component: COMPONENT },
            `kernel change notifications lost (${why}): a full check every round`,
          );
      });
    }
    return learned;
  };

  /**
   * A light round: only the sysctls (file reads). Sysctls that changed since
   * the last full check, a repair still owed, or no events to rely on make it
   * a full check; otherwise the last result stands (and is refreshed).
   */
  const round = async (): Promise<void> => {
    const plan = lastPlan;
    const owed = [...active].some((kind) => REPAIRABLE.has(kind));
    const trusted = events?.alive === true && !owed && lastFailure === undefined;
    if (plan === undefined || lastReport === undefined || !trusted || ++roundsSinceFull >= FULL_CHECK_EVERY)
      return check();
    const sysctls = await readSysctls(plan.expect.sysctls.map((w) => w.key));
    if (sysctlMismatch(plan, sysctls) !== lastMismatch) return check();
    component.report(lastReport.ready, lastReport.detail);
  };

  const check = async (): Promise<void> => {
    const started = clock.now();
    roundsSinceFull = 0;
    baseline ??= await learn();
    let seen = await look(baseline);
    const toRepair = seen.drifts.filter((d) => REPAIRABLE.has(d.kind));
    let repairError: string | undefined;
    if (toRepair.length > 0) {
      const steps = repairSteps(seen.plan, toRepair);
      try {
        for (const [index, step] of steps.entries()) await applyStep(index + 1, step);
      } catch (error) {
        repairError = errorMessage(error);
      }
      if (steps.some((step) => step.kind === "link")) options.onVxlanRepaired?.();
      seen = await look(baseline);
    }
    lastPlan = seen.plan;
    lastMismatch = seen.mismatch;
    checks++;
    lastCheckMs = clock.now() - started;
    settle(toRepair, seen.drifts, repairError, lastCheckMs);
  };

  const settle = (
    repaired: readonly Drift[],
    left: readonly Drift[],
    repairError: string | undefined,
    ms: number,
  ) => {
    const leftKinds = new Set(left.map((d) => d.kind));
    const counted = new Set<DriftKind>();
    for (const drift of repaired) {
      const fields = { component: COMPONENT, kind: drift.kind, drift: drift.problems };
      const isNew = !active.has(drift.kind);
      if (isNew) counts.drifts[drift.kind]++;
      counted.add(drift.kind);
      if (!leftKinds.has(drift.kind)) {
        counts.repairs[drift.kind]++;
        log.warn(
          { ...fields, repaired: true, checkMs: Math.round(ms) },
          `data plane drift repaired: ${describeDrift(drift)}`,
        );
        continue;
      }
      counts.repairFailures[drift.kind]++;
      if (isNew) {
        log.error(
          { ...fields, repaired: false, err: repairError },
          `data plane drift not repaired: ${describeDrift(drift)}`,
        );
      }
    }
    for (const drift of left) {
      if (active.has(drift.kind) || counted.has(drift.kind)) continue;
      counts.drifts[drift.kind]++;
      const hint = REPAIRABLE.has(drift.kind) ? "" : ` (${hintFor(drift.kind)})`;
      log.warn(
        { component: COMPONENT, kind: drift.kind, drift: drift.problems },
        `data plane drift: ${describeDrift(drift)}${hint}`,
      );
    }
    active = leftKinds;
    lastFailure = undefined;
    lastReport = {
      ready: left.every((d) => TELEMETRY_ONLY.has(d.kind)),
      detail: detail(left, repairError),
    };
    component.report(lastReport.ready, lastReport.detail);
  };

  const detail = (left: readonly Drift[], repairError: string | undefined): string => {
    const serving = left.filter((d) => !TELEMETRY_ONLY.has(d.kind));
    const telemetry = left.filter((d) => TELEMETRY_ONLY.has(d.kind)).map(describeDrift);
    if (telemetry.length > 0) telemetry.push(FLOW_LOGS_INCOMPLETE);
    if (serving.length === 0) {
      const repairs = DRIFT_KINDS.reduce((sum, kind) => sum + counts.repairs[kind], 0);
      const kept = "ruleset, vxlan0, forwarding and redirect suppression as init set them up";
      const head = repairs === 0 ? kept : `${kept} (${repairs} drift${repairs === 1 ? "" : "s"} repaired)`;
      return [head, ...telemetry].join("; ");
    }
    const parts = serving.map(describeDrift);
    if (serving.some((d) => !REPAIRABLE.has(d.kind))) parts.push(CANNOT_WRITE_PROC_SYS);
    if (repairError !== undefined) parts.push(`repair failed: ${repairError}`);
    return [...parts, ...telemetry].join("; ");
  };

  const schedule = (ms: number): void => {
    timer?.cancel();
    timer = clock.setTimer(ms, run);
  };

  const run = (): void => {
    timer = undefined;
    const full = fullWanted;
    fullWanted = false;
    running = (full ? check() : round())
      .catch((error: unknown) => {
        const why = `cannot check the data plane: ${errorMessage(error)}`;
        if (why !== lastFailure) log.error({ component: COMPONENT }, why);
        lastFailure = why;
        component.report(false, why);
      })
      .finally(() => {
        running = undefined;
        if (!stopped) schedule(fullWanted ? EVENT_SETTLE_MS : intervalMs);
      });
  };

  function changed(): void {
    fullWanted = true;
    if (running === undefined && !stopped) schedule(EVENT_SETTLE_MS);
  }

  run();

  return {
    state: () => ({
      checks,
      lastCheckMs,
      drifts: counts.drifts,
      repairs: counts.repairs,
      repairFailures: counts.repairFailures,
    }),
    async stop() {
      stopped = true;
      events?.stop();
      timer?.cancel();
      timer = undefined;
      await running;
    },
  };
}
