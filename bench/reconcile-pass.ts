// The JavaScript side of a reconcile pass at agent-chaos size, without a
// kernel (batches go to a kernel that accepts everything at once): what one
// pass costs the gateway's event loop, the incremental pass (the gateway's
// Reconciler: desired entries kept up to date at the changed keys) against the
// whole-view pass it replaced (desiredState over the whole view, diffed against
// the last one, after a copy of the view's map as the copy-on-write store made
// once per pass), in alternating rounds in one process.
//   1. InSync of --routes remote-workload /32s over --nodes nodes (one pass);
//   2. removals down to --keep, --batch messages per pass;
//   3. --flaps update/remove flaps, --flap-batch per pass.
// Per side: the median and slowest pass, the sum over the phase, and the time
// V8 spent collecting garbage during it.
//   node --import tsx bench/reconcile-pass.ts [--rounds 3] [--routes 30000] [--nodes 3000] [--keep 10]
//                                             [--batch 1000] [--flaps 5000] [--flap-batch 125]
import { PerformanceObserver } from "node:perf_hooks";
import { desiredState } from "../src/dataplane/desired.js";
import { changeCount, diff } from "../src/dataplane/diff.js";
import type { Kernel } from "../src/dataplane/kernel.js";
import { Reconciler } from "../src/dataplane/reconcile.js";
import type { DesiredState } from "../src/dataplane/types.js";
import { decodeRoute } from "../src/sync/codec.js";
import { RouteStore } from "../src/sync/route-store.js";
import type { SyncEvent } from "../src/sync/types.js";
import { flaps, fleetRoutes, OUR_ROUTE } from "../lab/agent-chaos.js";
import { routeUpdateMessage, type FakeRoute } from "../lab/fake-agent.js";
import { ADDR } from "../lab/pod-lab.js";
import { fixed, integerFlags, loadLine, median, table } from "./support/report.js";

const flags = integerFlags({
  rounds: 3,
  routes: 30_000,
  nodes: 3_000,
  keep: 10,
  batch: 1_000,
  flaps: 5_000,
  "flap-batch": 125,
});
const VNI = 4097;
const POD_GATEWAY = "169.254.1.1";
const PHASES = ["snapshot", "removals", "flaps"] as const;
type Phase = (typeof PHASES)[number];
const SIDES = ["incremental", "whole view"] as const;
type Side = (typeof SIDES)[number];

interface PhaseFigures {
  readonly passes: number[];
  gcMs: number;
}

const update = (fake: FakeRoute): SyncEvent => ({
  kind: "routeUpdate",
  sequence: 0n,
  route: decodeRoute(routeUpdateMessage(fake))!,
});
const remove = (dst: string): SyncEvent => ({ kind: "routeRemove", sequence: 0n, dst });

/** The three phases as batches of events, one pass after each batch. */
function script(round: number): Record<Phase, SyncEvent[][]> {
  const fleet = fleetRoutes(flags.routes, flags.nodes);
  const chunks = (events: SyncEvent[], size: number): SyncEvent[][] =>
    Array.from({ length: Math.ceil(events.length / size) }, (_, i) => events.slice(i * size, (i + 1) * size));
  const removals = fleet.slice(flags.keep).map((r) => remove(r.dst));
  const flapEvents = flaps(flags.flaps, flags.nodes, flags.nodes, 11 + round).map((f) =>
    f.kind === "update" ? update(f.route) : remove(f.dst),
  );
  return {
    snapshot: [[update(OUR_ROUTE), ...fleet.map(update), { kind: "inSync", sequence: 0n }]],
    removals: chunks(removals, flags.batch),
    flaps: chunks(flapEvents, flags["flap-batch"]),
  };
}

/** A kernel that is empty when read and takes every batch at once. */
const acceptingKernel: Kernel = {
  read: () => Promise.resolve({ owned: { routes: [], neighbours: [], fdb: [] }, podGateway: POD_GATEWAY }),
  apply: () => Promise.resolve(),
};

/** A pass as it was before: the whole view copied, computed and diffed against the last pass's state. */
function wholeViewPass(): (store: RouteStore) => number {
  let last: DesiredState = desiredState({
    view: { ourRoute: undefined, tunnels: new Map(), remoteWorkloads: new Map() },
    vni: VNI,
    podGateway: POD_GATEWAY,
  });
  return (store) => {
    const live = store.view!;
    const view = {
      ourRoute: live.ourRoute,
      tunnels: new Map(live.tunnels),
      remoteWorkloads: new Map(live.remoteWorkloads),
    };
    const desired = desiredState({ view, vni: VNI, podGateway: POD_GATEWAY });
    const count = changeCount(diff(desired, last));
    last = desired;
    return count;
  };
}

async function side(
  which: Side,
  phases: Record<Phase, SyncEvent[][]>,
  gc: { ms: number },
): Promise<Record<Phase, PhaseFigures>> {
  const store = new RouteStore(ADDR.gateway.v4);
  const reconciler = new Reconciler(acceptingKernel, { vni: VNI });
  const whole = wholeViewPass();
  const figures = {} as Record<Phase, PhaseFigures>;
  for (const phase of PHASES) {
    const passes: number[] = [];
    const gcBefore = gc.ms;
    for (const batch of phases[phase]) {
      for (const event of batch) store.apply(event);
      const started = performance.now();
      if (which === "incremental") await reconciler.pass(store.feed);
      else whole(store);
      passes.push(performance.now() - started);
    }
    // The GC observer's entries arrive on a later turn of the event loop.
    await new Promise((resolve) => setTimeout(resolve, 20));
    figures[phase] = { passes, gcMs: gc.ms - gcBefore };
  }
  return figures;
}

async function main(): Promise<void> {
  console.log(
    `reconcile pass (no kernel): ${flags.routes} routes over ${flags.nodes} nodes, removals down to ${flags.keep} ` +
      `in passes of ${flags.batch} messages, ${flags.flaps} flaps in passes of ${flags["flap-batch"]}; ` +
      `${flags.rounds} rounds; ${loadLine()}`,
  );
  const gc = { ms: 0 };
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) gc.ms += entry.duration;
  });
  observer.observe({ entryTypes: ["gc"] });
  const results: Record<Side, Record<Phase, PhaseFigures>[]> = { incremental: [], "whole view": [] };
  for (let round = 0; round < flags.rounds; round++) {
    const phases = script(round);
    for (const which of round % 2 === 0 ? SIDES : [...SIDES].reverse()) {
      results[which].push(await side(which, phases, gc));
    }
  }
  observer.disconnect();
  const ms = (n: number): string => `${fixed(n, n < 10 ? 2 : 0)} ms`;
  const rows: string[][] = [["", "passes", "median pass", "slowest pass", "sum", "GC", "sum ratio"]];
  for (const phase of PHASES) {
    const sums: Record<Side, number[]> = { incremental: [], "whole view": [] };
    for (const which of SIDES) {
      const runs = results[which].map((r) => r[phase]);
      const all = runs.flatMap((r) => r.passes);
      sums[which] = runs.map((r) => r.passes.reduce((a, b) => a + b, 0));
      rows.push([
        `${phase}: ${which}`,
        String(runs[0]?.passes.length ?? 0),
        ms(median(all)),
        ms(Math.max(...all)),
        ms(median(sums[which])),
        ms(median(runs.map((r) => r.gcMs))),
        which === "incremental" ? "" : fixed(median(sums["whole view"]) / median(sums.incremental), 1),
      ]);
    }
  }
  console.log(table(rows));
  console.log("medians over rounds; sum ratio: whole view / incremental");
}

await main();
