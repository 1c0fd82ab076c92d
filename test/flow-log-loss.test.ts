// Lost flows are never silent: FlowLog fed by a stand-in for conntrack (a
// script printing DESTROY lines), with a clock the test moves. Lines over
// FLOW_LOGS_RATE are counted and reported in one warning, then at most one a
// minute with what was lost meanwhile; the kernel's drops come from
// /proc/net/netlink as read.
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Clock, Timer } from "../src/clock.js";
import { FlowLog } from "../src/flows/index.js";

const DESTROY =
  "[1796576176.300037]\t[DESTROY] ipv4     2 tcp      6 TIME_WAIT src=198.51.100.10 dst=203.0.113.10 sport=59738 dport=8000 packets=5 bytes=268 src=203.0.113.10 dst=203.0.113.2 sport=8000 dport=38054 packets=4 bytes=219 [ASSURED] delta-time=2 [start=Sun Dec  6 16:56:13 2026] [stop=Sun Dec  6 16:56:15 2026] id=936170315";
const NETLINK_HEADER =
  "sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode\n";
const destroyRow = (drops: number): string =>
  `00000000f2c23762 12  4232512896 00000004 0        0        0     2        ${drops}        9549712\n`;

/** A clock whose time moves only when the test says. */
class TestClock implements Clock {
  private time = 0;
  private timers: { at: number; fn: () => void }[] = [];
  now(): number {
    return this.time;
  }
  setTimer(ms: number, fn: () => void): Timer {
    const timer = { at: this.time + ms, fn };
    this.timers.push(timer);
    return { cancel: () => (this.timers = this.timers.filter((t) => t !== timer)) };
  }
  advance(ms: number): void {
    this.time += ms;
    const due = this.timers.filter((t) => t.at <= this.time);
    this.timers = this.timers.filter((t) => t.at > this.time);
    for (const t of due) t.fn();
  }
}

const until = async (ok: () => boolean, what: string): Promise<void> => {
  for (let waited = 0; !ok(); waited += 20) {
    if (waited > 5_000) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

describe("flow-log losses are counted and reported", () => {
  let dir: string;
  let command: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "egt-flow-loss-"));
    command = join(dir, "conntrack");
    // The DESTROY listener prints 5 lines, then 5 more when the test touches
    // `more`; the close listeners print nothing. All of them then stay up. The
    // listing at stop finds an empty table.
    writeFileSync(
      command,
      `#!/bin/sh
case "$*" in *-L*) exit 0 ;; esac
case "$*" in *DESTROY*)
  for i in 1 2 3 4 5; do printf '%s\\n' '${DESTROY}'; done
  while [ ! -e '${dir}/more' ]; do sleep 0.05; done
  for i in 1 2 3 4 5; do printf '%s\\n' '${DESTROY}'; done ;;
esac
exec sleep 60
`,
    );
    chmodSync(command, 0o755);
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it("warns once at once, then at most once a minute, with the losses in between", async () => {
    const clock = new TestClock();
    const warnings: { fields: Record<string, number>; msg: string }[] = [];
    let written = 0;
    let netlink = NETLINK_HEADER + destroyRow(0);
    const flows = new FlowLog({
      podAddresses: ["203.0.113.2"],
      ratePerSecond: 1,
      burst: 2,
      clock,
      wallClock: Date.now,
      write: () => (written += 1),
      log: {
        warn: (fields, msg) => warnings.push({ fields: fields as Record<string, number>, msg }),
        info: () => undefined,
        error: () => undefined,
      },
      command,
      readNetlink: () => netlink,
    });
    flows.start();
    try {
      await until(() => written + flows.counters().dropped.rate_limit === 5, "the first 5 lines");
      assert.equal(written, 2, "the bucket's burst");
      assert.equal(warnings.length, 0, "not before the burst had a moment to end");
      netlink = NETLINK_HEADER + destroyRow(7);
      clock.advance(1_000);
      assert.equal(warnings.length, 1);
      assert.deepEqual(warnings[0]!.fields, { kernelDropped: 7, rateLimited: 3, eventOverflows: 0 });
      assert.equal(
        warnings[0]!.msg,
        "flow logs: 10 finished connections not logged: 7 dropped by the kernel (the listener fell behind), 3 over FLOW_LOGS_RATE",
      );

      writeFileSync(join(dir, "more"), "");
      // One second later the bucket has one token again.
      await until(() => written + flows.counters().dropped.rate_limit === 10, "the next 5 lines");
      assert.equal(written, 3);
      clock.advance(30_000);
      assert.equal(warnings.length, 1, "no second warning within the minute");
      clock.advance(30_000);
      assert.equal(warnings.length, 2);
      assert.deepEqual(warnings[1]!.fields, { kernelDropped: 0, rateLimited: 4, eventOverflows: 0 });
      assert.equal(flows.counters().dropped.kernel_buffer, 7);
    } finally {
      await flows.stop().catch(() => undefined);
    }
  });
});
