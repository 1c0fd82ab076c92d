// One reconcile pass: desired state from the snapshot, diff against what the
// kernel holds of ours, one batch per tool. After a successful pass the kernel
// holds exactly the desired entries of ours, so the next pass diffs against
// that instead of reading them back: with 11,000 routes a read-back pass took
// about 150 ms, a one-route change about 35 ms (bench/return-path.ts). Any
// failure, and every resync, reads again.
import type { RouteSnapshot } from "../sync/types.js";
import { desiredState } from "./desired.js";
import { changeCount, diff } from "./diff.js";
import { NoPodGatewayError } from "./errors.js";
import type { Kernel, KernelView } from "./kernel.js";
import type { DesiredState } from "./types.js";

export type PassResult =
  /** No local-workload route covering our IPv4: the kernel was left as it is (see desired.ts). */
  | { readonly held: true }
  | {
      readonly held: false;
      readonly desired: DesiredState;
      /** Entries replaced or deleted (0: the kernel already matched). */
      readonly changes: number;
      /** Whether this pass read the kernel (first pass, after a failure, resync). */
      readonly readKernel: boolean;
    };

export class Reconciler {
  private known: KernelView | undefined;
  /** Bumped by invalidate(), so that a pass running meanwhile does not keep what it believed. */
  private generation = 0;

  constructor(
    private readonly kernel: Kernel,
    private readonly identity: { readonly vni: number },
  ) {}

  /** The next pass reads the kernel instead of trusting the last pass's result. */
  invalidate(): void {
    this.known = undefined;
    this.generation++;
  }

  /** Throws DataplaneError; the kernel is read again on the next pass then. */
  async pass(snapshot: RouteSnapshot): Promise<PassResult> {
    if (snapshot.ourRoute === undefined) return { held: true };
    const readKernel = this.known === undefined;
    const generation = this.generation;
    try {
      const known = this.known ?? (await this.kernel.read());
      if (known.podGateway === undefined) {
        throw new NoPodGatewayError(
          "the pod has no IPv4 default route; exit routes for tunnel addresses need its gateway",
        );
      }
      const desired = desiredState({ snapshot, ...this.identity, podGateway: known.podGateway });
      const changes = diff(desired, known.owned);
      const count = changeCount(changes);
      if (count > 0) await this.kernel.apply(changes);
      const { neighbours, fdb, routes } = desired;
      if (generation === this.generation) {
        this.known = { owned: { neighbours, fdb, routes }, podGateway: known.podGateway };
      }
      return { held: false, desired, changes: count, readKernel };
    } catch (error) {
      this.known = undefined;
      throw error;
    }
  }
}
