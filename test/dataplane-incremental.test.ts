// The incremental return path (src/dataplane/incremental.ts, reconcile.ts)
// against the whole-view computation (desired.ts), on random sequences of
// route updates and removals fed through the real route store in random
// batches: nodes that share a node IP, a node IP that changes, routes that move
// between nodes, two dsts for one kernel route, a workload on a tunnel's exit
// route, WireGuard coming and going on our node, our route changing or going,
// incomplete, IPv6 and own-node routes, a new stream's InSync. After every
// batch the incremental state equals the whole-view state, and a reconcile
// pass against an in-memory kernel (whose batches fail now and then, halfway)
// leaves the kernel holding exactly that.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import fc from "fast-check";

import { plainRoute } from "../lab/routes.js";
import { desiredState } from "../src/dataplane/desired.js";
import { DataplaneApplyError } from "../src/dataplane/errors.js";
import { IncrementalDesired } from "../src/dataplane/incremental.js";
import type { Kernel, KernelView } from "../src/dataplane/kernel.js";
import { Reconciler } from "../src/dataplane/reconcile.js";
import type { Changes, DesiredState, FdbEntry, Neighbour, ProgrammedRoute } from "../src/dataplane/types.js";
import { RouteStore } from "../src/sync/route-store.js";
import { NO_ROUTE_TYPES, type Route, type RouteView, type SyncEvent } from "../src/sync/types.js";

const OUR_IP = "198.51.100.66";
const POD_GATEWAY = "169.254.1.1";
const VNI = 4097;

// A small world, so that random routes collide: shared node IPs, one kernel
// dst written two ways, a workload /32 on a tunnel address.
const NODES = ["node-a", "node-b", "node-c", "gw-node", ""];
const NODE_IPS = ["198.18.0.1", "198.18.0.2", "198.18.0.3", "", "2001:db8::1"];
const WORKLOAD_DSTS = [
  "198.19.0.0/30",
  "198.19.0.4/30",
  "198.19.0.5/30",
  "198.19.0.8/32",
  "198.19.0.0/29",
  "198.19.1.1/32",
  "198.19.1.1",
  "2001:db8:1::/120",
];
const TUNNEL_DSTS = ["198.19.1.1/32", "198.19.1.2/32", "198.19.1.3/32", "198.19.1.3", "198.19.2.0/30"];
const OUR_DSTS = ["198.51.100.64/26", "198.51.100.66/32"];

const poolType = fc.constantFrom("NONE", "NO_ENCAP", "VXLAN", "IPIP" as const);
const tunnelType = fc.option(
  fc.record({ ipip: fc.boolean(), vxlan: fc.boolean(), wireguard: fc.boolean() }),
  {
    nil: undefined,
  },
);

const route = ({ dst, ...fields }: Partial<Route> & { dst: string }): Route => plainRoute(dst, fields);

const workload = fc
  .record({
    dst: fc.constantFrom(...WORKLOAD_DSTS),
    node: fc.constantFrom(...NODES),
    nodeIp: fc.constantFrom(...NODE_IPS),
    alsoTunnel: fc.boolean(),
    tunnelType,
  })
  .map(({ dst, node, nodeIp, alsoTunnel, tunnelType }) =>
    route({
      dst,
      types: { ...NO_ROUTE_TYPES, remoteWorkload: true, remoteTunnel: alsoTunnel },
      dstNodeName: node,
      dstNodeIp: nodeIp,
      tunnelType: alsoTunnel ? tunnelType : undefined,
    }),
  );

const tunnel = fc
  .record({
    dst: fc.constantFrom(...TUNNEL_DSTS),
    node: fc.constantFrom(...NODES),
    local: fc.boolean(),
    poolType,
    sameSubnet: fc.boolean(),
    tunnelType,
  })
  .map(({ dst, node, local, poolType, sameSubnet, tunnelType }) =>
    route({
      dst,
      types: { ...NO_ROUTE_TYPES, remoteTunnel: !local, localTunnel: local },
      dstNodeName: node,
      poolType,
      sameSubnet,
      tunnelType,
    }),
  );

const ours = fc
  .record({
    dst: fc.constantFrom(...OUR_DSTS),
    node: fc.constantFrom("gw-node", "node-a"),
    poolType,
    sameSubnet: fc.boolean(),
  })
  .map(({ dst, node, poolType, sameSubnet }) =>
    route({
      dst,
      types: { ...NO_ROUTE_TYPES, localWorkload: true },
      dstNodeName: node,
      dstNodeIp: "198.18.0.9",
      poolType,
      sameSubnet,
      localWorkload: true,
    }),
  );

const update = (r: Route): SyncEvent => ({ kind: "routeUpdate", sequence: 0n, route: r });

type Step = { kind: "events"; events: SyncEvent[] } | { kind: "reconnect"; replay: SyncEvent[] };

const event: fc.Arbitrary<SyncEvent> = fc.oneof(
  { weight: 6, arbitrary: workload.map(update) },
  { weight: 3, arbitrary: tunnel.map(update) },
  { weight: 1, arbitrary: ours.map(update) },
  {
    weight: 4,
    arbitrary: fc
      .constantFrom(...WORKLOAD_DSTS, ...TUNNEL_DSTS, ...OUR_DSTS)
      .map((dst): SyncEvent => ({ kind: "routeRemove", sequence: 0n, dst })),
  },
);

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 12,
    arbitrary: fc.array(event, { maxLength: 8 }).map((events): Step => ({ kind: "events", events })),
  },
  {
    weight: 1,
    arbitrary: fc.array(event, { maxLength: 12 }).map((replay): Step => ({ kind: "reconnect", replay })),
  },
);

/** Our block first, so that most sequences start with something to program. */
const sequence = fc.tuple(ours, fc.array(step, { minLength: 1, maxLength: 25 }));

function apply(store: RouteStore, s: Step): void {
  if (s.kind === "events") {
    for (const e of s.events) store.apply(e);
    return;
  }
  store.newStream();
  for (const e of s.replay) store.apply(e);
  store.apply({ kind: "inSync", sequence: 0n });
}

const byKey = <T>(items: Iterable<T>, key: (item: T) => string): T[] =>
  [...items].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));

interface Entries {
  readonly routes: readonly ProgrammedRoute[];
  readonly neighbours: readonly Neighbour[];
  readonly fdb: readonly FdbEntry[];
}

const sorted = (e: Entries): Entries => ({
  routes: byKey(e.routes, (r) => r.dst),
  neighbours: byKey(e.neighbours, (n) => n.ip),
  fdb: byKey(e.fdb, (f) => f.mac),
});

const wholeView = (view: RouteView): DesiredState =>
  desiredState({ view, vni: VNI, podGateway: POD_GATEWAY });

describe("incremental desired state against the whole-view computation", () => {
  it("equal entries and counts after every batch of random changes", () => {
    fc.assert(
      fc.property(sequence, ([first, steps]) => {
        const store = new RouteStore(OUR_IP);
        store.apply(update(first));
        store.apply({ kind: "inSync", sequence: 0n });
        const model = new IncrementalDesired(VNI);
        for (const s of [{ kind: "events", events: [] } as Step, ...steps]) {
          apply(store, s);
          const view = store.view!;
          const changes = store.feed.takeChanges();
          const want = wholeView(view);
          if (view.ourRoute === undefined) {
            model.forget();
            assert.equal(want.ourRouteSeen, false);
            continue;
          }
          model.update(view.ourRoute, view, changes, POD_GATEWAY);
          const have = {
            routes: [...model.routes.values()],
            neighbours: [...model.neighbours.values()],
            fdb: [...model.fdb.values()],
          };
          assert.deepEqual(sorted(have), sorted(want));
          const counts = model.counts;
          const exitRoutes = want.routes.filter((r) => r.dev === "eth0").length;
          assert.deepEqual(counts, {
            neighbours: want.neighbours.length,
            fdb: want.fdb.length,
            routes: want.routes.length - exitRoutes,
            exitRoutes,
            nodes: want.nodes,
            skipped: want.skipped,
          });
        }
      }),
      { numRuns: 1_500 },
    );
  });
});

/** The kernel as maps of our entries; a batch can be made to fail after applying some of its lines. */
class MemoryKernel implements Kernel {
  readonly routes = new Map<string, ProgrammedRoute>();
  readonly neighbours = new Map<string, Neighbour>();
  readonly fdb = new Map<string, FdbEntry>();
  /** Apply only every n-th change of the next batch, then fail it. */
  failNext: number | undefined;
  reads = 0;

  read(): Promise<KernelView> {
    this.reads++;
    const owned = {
      routes: [...this.routes.values()],
      neighbours: [...this.neighbours.values()],
      fdb: [...this.fdb.values()],
    };
    return Promise.resolve({ owned, podGateway: POD_GATEWAY });
  }

  apply(changes: Changes): Promise<void> {
    const every = this.failNext;
    this.failNext = undefined;
    let n = 0;
    const take = (): boolean => every === undefined || n++ % every === 0;
    for (const r of changes.routes.replace) if (take()) this.routes.set(r.dst, r);
    for (const r of changes.routes.remove) if (take()) this.routes.delete(r.dst);
    for (const x of changes.neighbours.replace) if (take()) this.neighbours.set(x.ip, x);
    for (const x of changes.neighbours.remove) if (take()) this.neighbours.delete(x.ip);
    for (const f of changes.fdb.replace) if (take()) this.fdb.set(f.mac, f);
    for (const f of changes.fdb.remove) if (take()) this.fdb.delete(f.mac);
    if (every !== undefined) return Promise.reject(new DataplaneApplyError("batch command(s) failed"));
    return Promise.resolve();
  }

  entries(): Entries {
    return sorted({
      routes: [...this.routes.values()],
      neighbours: [...this.neighbours.values()],
      fdb: [...this.fdb.values()],
    });
  }
}

/** What a pass may meet besides the changes: a failing batch (applied partly), a resync. */
const trouble = fc.oneof(
  { weight: 8, arbitrary: fc.constant({ kind: "none" as const }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }).map((every) => ({ kind: "fail" as const, every })) },
  { weight: 1, arbitrary: fc.constant({ kind: "resync" as const }) },
);

describe("reconcile passes against a kernel", () => {
  it("the kernel holds exactly the whole-view state after every pass, and after the retry of a failed one", async () => {
    await fc.assert(
      fc.asyncProperty(
        sequence,
        fc.array(trouble, { minLength: 26, maxLength: 26 }),
        async ([first, steps], troubles) => {
          const store = new RouteStore(OUR_IP);
          store.apply(update(first));
          store.apply({ kind: "inSync", sequence: 0n });
          const kernel = new MemoryKernel();
          const reconciler = new Reconciler(kernel, { vni: VNI });
          for (const [i, s] of [{ kind: "events", events: [] } as Step, ...steps].entries()) {
            apply(store, s);
            const before = kernel.entries();
            const t = troubles[i] ?? { kind: "none" };
            if (t.kind === "resync") reconciler.invalidate();
            if (t.kind === "fail") kernel.failNext = t.every;
            const passed = await reconciler.pass(store.feed).then(
              () => true,
              (error: unknown) => {
                assert.ok(error instanceof DataplaneApplyError);
                return false;
              },
            );
            const view = store.view!;
            if (view.ourRoute === undefined) {
              assert.deepEqual(kernel.entries(), before, "without our route the kernel is left as it is");
              continue;
            }
            if (!passed) {
              const reads = kernel.reads;
              await reconciler.pass(store.feed);
              assert.equal(kernel.reads, reads + 1, "the retry reads the kernel");
            }
            assert.deepEqual(kernel.entries(), sorted(wholeView(view)));
          }
        },
      ),
      { numRuns: 600 },
    );
  });
});
