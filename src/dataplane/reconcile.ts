// One reconcile pass: the desired state brought up to date with what changed
// in the route view (incremental.ts), compared with what the kernel holds of
// ours at the keys that changed, one batch per tool. So a pass costs in
// proportion to the change, not to the view: with 30,000 routes a pass that
// recomputed and diffed everything kept the event loop busy for hundreds of
// milliseconds, once per pass during a burst.
//
// What the kernel holds is read back (4 dumps) on the first pass, on every
// resync (periodic, vxlan0 repaired) and after any failure, and then the whole
// desired state is compared with it: a failed batch may have applied some
// lines and not others, so only a read says what the kernel really has. After
// a successful pass the kernel holds what was applied (`applied`), so the next
// pass compares against that instead of reading it back.
import type { RouteFeed } from "../sync/types.js";
import { changeCount, diff, diffKeyed } from "./diff.js";
import { NoPodGatewayError } from "./errors.js";
import { IncrementalDesired } from "./incremental.js";
import type { Kernel } from "./kernel.js";
import type { Changes, DesiredCounts, FdbEntry, KeyedEntries, Neighbour, ProgrammedRoute } from "./types.js";

export type PassResult =
  /** No local-workload route covering our IPv4: the kernel was left as it is (see desired.ts). */
  | { readonly held: true }
  | {
      readonly held: false;
      readonly counts: DesiredCounts;
      /** Entries replaced or deleted (0: the kernel already matched). */
      readonly changes: number;
      /** Whether this pass read the kernel (first pass, after a failure, resync). */
      readonly readKernel: boolean;
    };

/** What the kernel holds of ours as far as the passes since the last read know, by kernel key. */
interface Applied {
  readonly routes: Map<string, ProgrammedRoute>;
  readonly neighbours: Map<string, Neighbour>;
  readonly fdb: Map<string, FdbEntry>;
}

const copyOf = (entries: KeyedEntries): Applied => ({
  routes: new Map(entries.routes),
  neighbours: new Map(entries.neighbours),
  fdb: new Map(entries.fdb),
});

function record(applied: Applied, changes: Changes): void {
  for (const r of changes.routes.remove) applied.routes.delete(r.dst);
  for (const r of changes.routes.replace) applied.routes.set(r.dst, r);
  for (const n of changes.neighbours.remove) applied.neighbours.delete(n.ip);
  for (const n of changes.neighbours.replace) applied.neighbours.set(n.ip, n);
  for (const f of changes.fdb.remove) applied.fdb.delete(f.mac);
  for (const f of changes.fdb.replace) applied.fdb.set(f.mac, f);
}

export class Reconciler {
  private readonly desired: IncrementalDesired;
  /** undefined: the next pass reads the kernel. */
  private applied: Applied | undefined;
  /** The pod's IPv4 default gateway, from the last read. */
  private podGateway = "";
  /** Bumped by invalidate(), so that a pass running meanwhile does not keep what it believed. */
  private generation = 0;

  constructor(
    private readonly kernel: Kernel,
    identity: { readonly vni: number },
  ) {
    this.desired = new IncrementalDesired(identity.vni);
  }

  /** The next pass reads the kernel instead of trusting what the passes applied. */
  invalidate(): void {
    this.applied = undefined;
    this.generation++;
  }

  /** Throws DataplaneError; the kernel is read again on the next pass then. */
  async pass(feed: RouteFeed): Promise<PassResult> {
    if (feed.view.ourRoute === undefined) return this.hold(feed);
    const generation = this.generation;
    let applied = this.applied;
    const readKernel = applied === undefined;
    try {
      const read = readKernel ? await this.kernel.read() : undefined;
      if (read !== undefined) {
        if (read.podGateway === undefined) {
          throw new NoPodGatewayError(
            "the pod has no IPv4 default route; exit routes for tunnel addresses need its gateway",
          );
        }
        this.podGateway = read.podGateway;
      }
      // From here to the batches nothing awaits: the store changes the view as messages arrive.
      const { view } = feed;
      const ours = view.ourRoute;
      if (ours === undefined) return this.hold(feed);
      const touched = this.desired.update(ours, view, feed.takeChanges(), this.podGateway);
      let changes: Changes;
      if (read !== undefined) {
        const { routes, neighbours, fdb } = this.desired;
        const all = {
          routes: [...routes.values()],
          neighbours: [...neighbours.values()],
          fdb: [...fdb.values()],
        };
        changes = diff(all, read.owned);
        // After this pass succeeds the kernel holds exactly the desired entries of ours.
        applied = copyOf(this.desired);
      } else {
        changes = diffKeyed(this.desired, applied!, touched);
        record(applied!, changes);
      }
      const count = changeCount(changes);
      if (count > 0) await this.kernel.apply(changes);
      if (generation === this.generation) this.applied = applied;
      return { held: false, counts: this.desired.counts, changes: count, readKernel };
    } catch (error) {
      this.applied = undefined;
      throw error;
    }
  }

  private hold(feed: RouteFeed): PassResult {
    // Nothing to compare against without our route: the changes are dropped and
    // the desired state is rebuilt from the whole view once the route is back.
    feed.takeChanges();
    this.desired.forget();
    return { held: true };
  }
}
