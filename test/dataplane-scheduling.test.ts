// When reconcile passes run, without a kernel: a manual clock and a scripted
// `ip`/`bridge`. At most one pass in flight, the latest snapshot wins, failures
// back off and recover, the periodic resync reads the kernel again, stop()
// waits for the running pass. (dataplane-reconcile.test.ts does the same
// against a real kernel.)
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { CommandResult } from "../src/exec/run-command.js";
import { createReturnPath, type DataplaneLog } from "../src/dataplane/return-path.js";
import { Readiness } from "../src/readiness/readiness.js";
import type { KeptRoute, Route, RouteView } from "../src/sync/types.js";
import { FakeClock } from "./helpers/fake-clock.js";
import { NO_ROUTE_TYPES, routeOf, wholeView } from "../lab/routes.js";

const OUR_IP = "198.51.100.66";

const route = (dst: string, fields: Partial<Route>): KeptRoute =>
  routeOf(dst, { types: { ...NO_ROUTE_TYPES, remoteWorkload: true }, ...fields });

/** Snapshot number `n`: node `node<n>` with one block, so each snapshot programs something new. */
function snapshot(n: number): RouteView {
  const workload = route(`198.19.${n}.0/28`, { dstNodeName: `node${n}`, dstNodeIp: `198.18.1.${n}` });
  return {
    ourRoute: route("198.51.100.64/26", { dstNodeName: "gw-node", localWorkload: true }),
    tunnels: new Map(),
    remoteWorkloads: new Map([[workload.dst, workload]]),
  };
}

/** A scripted iproute2: reads answer from `state`, batches are recorded and can be held or failed. */
class ScriptedKernel {
  readonly reads: string[] = [];
  readonly batches: string[] = [];
  failing: string | undefined;
  rejecting: string | undefined;
  private held: (() => void)[] = [];
  hold = false;

  readonly run = async (argv: readonly string[], input?: string): Promise<CommandResult> => {
    const command = argv.join(" ");
    if (input === undefined) {
      this.reads.push(command);
      if (this.failing) return { ok: false, stdout: "", stderr: this.failing };
      const answer = command.endsWith("default")
        ? `[{"dst":"default","gateway":"198.18.255.1","dev":"eth0"}]`
        : "[]";
      return { ok: true, stdout: answer, stderr: "" };
    }
    if (this.hold) await new Promise<void>((resolve) => this.held.push(resolve));
    this.batches.push(input);
    if (this.rejecting && argv[0] === "ip") return { ok: false, stdout: "", stderr: this.rejecting };
    return { ok: true, stdout: "", stderr: "" };
  };

  release(): void {
    this.hold = false;
    for (const resolve of this.held.splice(0)) resolve();
  }
}

function setup(options: { resyncIntervalMs?: number } = {}) {
  const clock = new FakeClock();
  const kernel = new ScriptedKernel();
  const warnings: string[] = [];
  const log: DataplaneLog = { warn: (_f, msg) => warnings.push(msg), info: () => {}, debug: () => {} };
  const readiness = new Readiness(clock);
  const path = createReturnPath({
    readiness,
    log,
    clock,
    ourIPv4: OUR_IP,
    vni: 4097,
    run: kernel.run,
    resyncIntervalMs: options.resyncIntervalMs ?? 0,
  });
  const dataplane = () => readiness.evaluate().components.find((c) => c.name === "Dataplane")!;
  return { clock, kernel, warnings, path, dataplane };
}

const ipBatches = (kernel: ScriptedKernel): string[] =>
  kernel.batches.filter((b) => b.includes("route replace"));

describe("return-path scheduling", () => {
  it("a synchronous burst of 100 updates is one pass, with the last snapshot", async () => {
    const { clock, kernel, path } = setup();
    for (let n = 1; n <= 100; n++) path.update(wholeView(snapshot(n)));
    await clock.advanceAsync(5);
    assert.equal(path.state().passes, 1);
    assert.match(ipBatches(kernel)[0] ?? "", /198\.19\.100\.0\/28/);
    assert.equal(path.state().ready, true);
  });

  it("updates during a running pass make one more pass, 250 ms after it, with the latest snapshot", async () => {
    const { clock, kernel, path } = setup();
    kernel.hold = true;
    path.update(wholeView(snapshot(1)));
    await clock.advanceAsync(5);
    for (let n = 2; n <= 50; n++) path.update(wholeView(snapshot(n)));
    await clock.advanceAsync(5);
    assert.equal(path.state().passes, 0, "the first pass is still running");
    kernel.release();
    await clock.advanceAsync(5);
    assert.equal(path.state().passes, 1, "the next pass waits out the burst gap");
    await clock.advanceAsync(250);
    assert.equal(path.state().passes, 2);
    const batches = ipBatches(kernel);
    assert.equal(batches.length, 2);
    assert.match(batches[1] ?? "", /198\.19\.50\.0\/28/);
    assert.doesNotMatch(batches[1] ?? "", /198\.19\.(2|49)\.0/);
  });

  it("a failing kernel: not ready, retries at 100, 200, 400 ms ... capped at 10 s, then recovers", async () => {
    const { clock, kernel, path, warnings, dataplane } = setup();
    kernel.failing = 'Cannot find device "vxlan0"';
    path.update(wholeView(snapshot(1)));
    await clock.advanceAsync(1);
    assert.equal(path.state().failures, 1);
    assert.match(dataplane().detail, /EGW_ERR_DATAPLANE_READ_FAILED.*vxlan0.*retry in 100ms/);
    const attemptsAt: number[] = [];
    for (let t = 0; t < 40_000 && attemptsAt.length < 9; t += 10) {
      const before = path.state().failures;
      await clock.advanceAsync(10, 10);
      if (path.state().failures > before) attemptsAt.push(clock.now());
    }
    const gaps = attemptsAt.map((at, i) => at - (attemptsAt[i - 1] ?? 1));
    assert.deepEqual(gaps, [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]);
    assert.equal(warnings.length, path.state().failures, "one warning per failed pass");

    kernel.failing = undefined;
    await clock.advanceAsync(10_000, 10);
    assert.equal(path.state().ready, true);
    assert.equal(dataplane().ready, true);
  });

  it("a rejected batch: one warning with the kernel's complaints, then a retry that reads the kernel", async () => {
    const { clock, kernel, path, warnings, dataplane } = setup();
    kernel.rejecting = [
      "Error: Nexthop has invalid gateway.",
      "Command failed -:2",
      "Error: Nexthop has invalid gateway.",
      "Command failed -:3",
    ].join("\n");
    path.update(wholeView(snapshot(1)));
    await clock.advanceAsync(5);
    assert.deepEqual(warnings, ["return-path reconcile failed; retrying"]);
    assert.equal(
      dataplane().detail,
      "reconcile failed (EGW_ERR_DATAPLANE_APPLY_FAILED): 2 batch command(s) failed: ip: Error: Nexthop has invalid gateway.; retry in 100ms",
    );
    kernel.rejecting = undefined;
    await clock.advanceAsync(100);
    assert.equal(path.state().ready, true);
    assert.equal(kernel.reads.length, 8, "the retry read the kernel again");
  });

  it("without our local-workload route: the kernel is left as it is, not ready, until the route comes", async () => {
    const { clock, kernel, path, dataplane } = setup();
    path.update(wholeView(snapshot(1)));
    await clock.advanceAsync(5);
    assert.equal(path.state().ready, true);
    const io = kernel.reads.length + kernel.batches.length;

    path.update(wholeView({ ...snapshot(2), ourRoute: undefined }));
    await clock.advanceAsync(5);
    assert.equal(path.state().passes, 2);
    assert.equal(kernel.reads.length + kernel.batches.length, io, "no kernel I/O");
    assert.equal(path.state().ready, false);
    assert.equal(path.state().routes, 1, "still counts what the kernel holds");
    assert.equal(dataplane().detail, `no local-workload route covering ${OUR_IP} from the node agent yet`);

    path.update(wholeView(snapshot(2)));
    await clock.advanceAsync(5);
    assert.equal(path.state().ready, true);
    assert.match(ipBatches(kernel).at(-1) ?? "", /198\.19\.2\.0\/28/);
  });

  it("reads the kernel on the first pass and on each resync, not on ordinary passes", async () => {
    const { clock, kernel, path } = setup({ resyncIntervalMs: 60_000 });
    path.update(wholeView(snapshot(1)));
    await clock.advanceAsync(5);
    path.update(wholeView(snapshot(2)));
    await clock.advanceAsync(5);
    assert.equal(kernel.reads.length, 4, "one read (4 dumps) for two passes");
    await clock.advanceAsync(60_000, 100);
    assert.equal(path.state().passes, 3);
    assert.equal(kernel.reads.length, 8);
  });

  it("stop() waits for the running pass and nothing runs after it", async () => {
    const { clock, kernel, path } = setup();
    kernel.hold = true;
    path.update(wholeView(snapshot(1)));
    await clock.advanceAsync(5);
    const stopped = path.stop();
    path.update(wholeView(snapshot(2)));
    kernel.release();
    await stopped;
    await clock.advanceAsync(1_000, 100);
    assert.equal(path.state().passes, 1);
    assert.equal(clock.timerCount, 0);
  });

  it("rejects an ourIPv4 or VNI it cannot work with", () => {
    const base = {
      readiness: new Readiness(new FakeClock()),
      log: console,
      clock: new FakeClock(),
      vni: 4097,
    };
    assert.throws(() => createReturnPath({ ...base, ourIPv4: "2001:db8::1" }), {
      code: "EGW_ERR_INVALID_OPTION",
      message: 'ourIPv4 must be an IPv4 address, got "2001:db8::1"',
    });
    assert.throws(() => createReturnPath({ ...base, ourIPv4: OUR_IP, vni: 0 }), {
      message: "vni must be an integer in 1..16777215, got 0",
    });
  });
});
