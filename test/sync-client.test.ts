import { REJECT_REASONS } from "../src/sync/route-check.js";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import pino from "pino";
import { FakeAgent, type AgentStream, type FakeRoute } from "../lab/fake-agent.js";
import { systemClock, type Clock } from "../src/clock.js";
import { Readiness, type ComponentView } from "../src/readiness/readiness.js";
import { REDIAL_MS } from "../src/sync/client.js";
import {
  preparePolicySync,
  startPreparedPolicySync,
  type PolicySync,
  type PolicySyncOptions,
} from "../src/sync/policy-sync.js";
import type { RouteChanges, RouteFeed, RouteView } from "../src/sync/types.js";
import { FakeClock } from "./helpers/fake-clock.js";
import { ourBlock, tunnelB, workloadsB as sharedWorkloadsB } from "./helpers/sync-routes.js";

const OUR_IP = "10.65.0.7";
const TIMEOUT_MS = 90_000;

// Sent with the route type in the enum field, so that this file covers that encoding too.
const workloadsB: FakeRoute = { ...sharedWorkloadsB, encoding: "enum" };
const workloadsC: FakeRoute = {
  ...workloadsB,
  dst: "10.65.2.0/26",
  dstNodeName: "node-c",
  dstNodeIp: "192.0.2.12",
};

/** Waits (in real time) for I/O to make `check` true. */
async function until(check: () => boolean, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Lets pending I/O run, for asserting that something does NOT happen. */
const settle = (ms = 100) => new Promise((resolve) => setTimeout(resolve, ms));

type Delivery = RouteView & { readonly changes: RouteChanges };

const delivery = (feed: RouteFeed): Delivery => ({
  ourRoute: feed.view.ourRoute,
  tunnels: new Map(feed.view.tunnels),
  remoteWorkloads: new Map(feed.view.remoteWorkloads),
  changes: feed.takeChanges(),
});

interface Harness {
  readonly dir: string;
  readonly clock: FakeClock;
  readonly readiness: Readiness;
  /** Each delivery: the view as it was then (copied: the store changes it in place) and what changed. */
  readonly snapshots: Delivery[];
  readonly logs: { level: string; msg: string; detail?: string }[];
  agent(path?: string): Promise<FakeAgent>;
  sync(options?: Partial<PolicySyncOptions> & { socketPath?: string }): Promise<PolicySync>;
  component(): ComponentView | undefined;
}

function harness(t: TestContext): Harness {
  const dir = mkdtempSync(join(tmpdir(), "egt-sync-"));
  const clock = new FakeClock();
  const readiness = new Readiness(clock);
  const snapshots: Delivery[] = [];
  const logs: Harness["logs"] = [];
  const log = pino(
    { level: "debug", formatters: { level: (label) => ({ level: label }) } },
    { write: (line: string) => void logs.push(JSON.parse(line) as Harness["logs"][number]) },
  );
  const cleanups: (() => Promise<void> | void)[] = [];
  t.after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    readiness.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    dir,
    clock,
    readiness,
    snapshots,
    logs,
    async agent(path = join(dir, "nodeagent", "socket")) {
      mkdirSync(join(path, ".."), { recursive: true });
      const agent = await FakeAgent.start(path);
      cleanups.push(() => agent.stop());
      return agent;
    },
    async sync(options = {}) {
      // As the gateway starts it: prepare (registers DatastoreConnection), then load the client and dial.
      const syncOptions: PolicySyncOptions = {
        config: {
          daemonSocketPath: options.socketPath,
          podIPv4: OUR_IP,
          health: {
            port: 0,
            listenAddress: undefined,
            datastoreTimeoutMs: TIMEOUT_MS,
            maxConnections: 4096,
            headerTimeoutMs: 3_000,
            keepAliveTimeoutMs: 5_000,
          },
        },
        readiness,
        log,
        clock: options.clock ?? clock,
        onRoutes: (feed) => snapshots.push(delivery(feed)),
        socketCandidates: [join(dir, "calico", "nodeagent", "socket"), join(dir, "nodeagent", "socket")],
        ...options,
      };
      const sync = await startPreparedPolicySync(syncOptions, preparePolicySync(syncOptions));
      cleanups.push(() => sync.stop());
      return sync;
    },
    component: () => readiness.evaluate().components.find((c) => c.name === "DatastoreConnection"),
  };
}

/** Serves `routes` then InSync on `stream`. */
function replay(stream: AgentStream, ...routes: FakeRoute[]): void {
  for (const route of routes) stream.route(route);
  stream.inSync();
}

async function inSyncWith(h: Harness, agent: FakeAgent, ...routes: FakeRoute[]) {
  const sync = await h.sync({ socketPath: agent.socketPath });
  const stream = await agent.waitForStream(1);
  replay(stream, ...routes);
  await until(() => h.component()?.ready === true, "DatastoreConnection ready");
  return { sync, stream };
}

describe("policy sync client over a unix socket", () => {
  it("subscribes to l3-routes with IPv6 route updates", async (t) => {
    const h = harness(t);
    const agent = await h.agent();
    await h.sync({ socketPath: agent.socketPath });
    const stream = await agent.waitForStream(1);
    assert.deepEqual(stream.request, { subscriptionType: "l3-routes", supportsIPv6RouteUpdates: true });
  });

  it("turns ready at InSync and hands over the snapshot, then every change", async (t) => {
    const h = harness(t);
    const agent = await h.agent();
    const sync = await h.sync({ socketPath: agent.socketPath });
    assert.equal(h.component()?.ready, false);
    const stream = await agent.waitForStream(1);
    await until(() => sync.state().connected, "connected");
    assert.match(h.component()?.detail ?? "", /connected to .*waiting for InSync/);
    stream.route(ourBlock);
    stream.route(tunnelB);
    stream.route(workloadsB);
    await until(() => sync.state().messagesReceived === 3, "3 messages");
    assert.equal(h.snapshots.length, 0, "nothing delivered before InSync");
    assert.equal(h.component()?.ready, false);

    stream.inSync();
    await until(() => h.snapshots.length === 1, "the first snapshot");
    const view = h.snapshots[0];
    assert.equal(view?.changes.full, true, "a new view: everything changed");
    assert.equal(view?.ourRoute?.dst, "10.65.0.0/26");
    assert.deepEqual([...(view?.tunnels.keys() ?? [])], ["10.65.1.1/32"]);
    assert.deepEqual([...(view?.remoteWorkloads.keys() ?? [])], ["10.65.1.0/26"]);
    assert.equal(h.component()?.ready, true);
    assert.match(h.component()?.detail ?? "", /in sync/);

    stream.route(workloadsC);
    await until(() => h.snapshots.length === 2, "the snapshot after an update");
    assert.equal(h.snapshots[1]?.remoteWorkloads.size, 2);
    assert.deepEqual(h.snapshots[1]?.changes, { full: false, dsts: new Set([workloadsC.dst]) });
    stream.remove(workloadsB.dst);
    await until(() => h.snapshots.length === 3, "the snapshot after a removal");
    assert.deepEqual([...(h.snapshots[2]?.remoteWorkloads.keys() ?? [])], [workloadsC.dst]);
    assert.deepEqual(h.snapshots[2]?.changes, { full: false, dsts: new Set([workloadsB.dst]) });
    stream.send({ sequenceNumber: "99" });
    await until(() => sync.state().messagesIgnored === 1, "an ignored message");

    assert.deepEqual(sync.state(), {
      mode: "agent",
      socketPath: agent.socketPath,
      connected: true,
      inSync: true,
      lastSequence: 6n,
      routes: { tunnels: 1, remoteWorkloads: 1, ourRoute: true },
      incompleteRoutes: 0,
      stagedRoutes: 0,
      rejectedRoutes: new Map(REJECT_REASONS.map((reason) => [reason, 0])),
      reconnects: 0,
      messagesReceived: 7,
      messagesIgnored: 1,
    });
    const messages = h.logs.map((l) => l.msg);
    assert.equal(messages.filter((m) => m === "policy sync connected").length, 1);
    assert.equal(messages.filter((m) => m === "policy sync in sync").length, 1);
  });

  it("keeps the routes when the stream breaks, redials after 3 s and resyncs at the next InSync", async (t) => {
    const h = harness(t);
    const agent = await h.agent();
    const { sync, stream } = await inSyncWith(h, agent, ourBlock, tunnelB, workloadsB);
    assert.equal(h.snapshots.length, 1);

    stream.drop("agent restarting");
    await until(() => h.component()?.ready === false, "not ready after the drop");
    assert.match(
      h.component()?.detail ?? "",
      /broken \(UNAVAILABLE: agent restarting\).*redialling every 3s/,
    );
    assert.equal(sync.state().connected, false);
    assert.equal(sync.state().inSync, false);
    assert.equal(h.snapshots.length, 1, "no empty snapshot: the kernel keeps its state");
    assert.equal(sync.state().routes.remoteWorkloads, 1);

    h.clock.advance(REDIAL_MS - 1);
    await settle();
    assert.equal(agent.streams.length, 1, "no redial before 3 s");
    h.clock.advance(1);
    const second = await agent.waitForStream(2);
    assert.equal(sync.state().reconnects, 1);

    // Node B's workloads went away while the stream was down.
    second.route(ourBlock);
    second.route(tunnelB);
    second.route(workloadsC);
    await until(() => sync.state().messagesReceived === 7, "the replay");
    assert.equal(h.snapshots.length, 1, "the replay is staged until InSync");
    assert.equal(h.component()?.ready, false);
    second.inSync();
    await until(() => h.component()?.ready === true, "ready again");
    assert.equal(h.snapshots.length, 2);
    assert.deepEqual([...(h.snapshots[1]?.remoteWorkloads.keys() ?? [])], [workloadsC.dst]);
    assert.equal(h.snapshots[1]?.changes.full, true, "the new stream's view replaces the old one");
    assert.equal(h.logs.filter((l) => l.msg === "policy sync down").length, 1);
  });

  it("survives an agent crash and a restart on the same socket path", async (t) => {
    const h = harness(t);
    const agent = await h.agent();
    const { sync } = await inSyncWith(h, agent, ourBlock, workloadsB);
    await agent.stop();
    await until(() => h.component()?.ready === false, "not ready after the crash");
    for (let i = 0; i < 3; i++) {
      h.clock.advance(REDIAL_MS);
      await settle(20);
    }
    assert.match(h.component()?.detail ?? "", /no policy-sync socket at .*redialling every 3s/);
    assert.equal(sync.state().reconnects, 3);
    assert.equal(h.snapshots.length, 1);

    await agent.restart();
    h.clock.advance(REDIAL_MS);
    replay(await agent.waitForStream(2), ourBlock, workloadsB);
    await until(() => h.component()?.ready === true, "ready after the restart");
    assert.equal(h.snapshots.length, 2);
    const down = h.logs.filter((l) => l.msg === "policy sync down");
    assert.ok(down.length <= 2, `one warning per kind of outage, got ${down.length}`);
    assert.equal(h.logs.filter((l) => l.msg === "policy sync in sync").length, 2);
  });

  it("redials every 3 s of real time by default", async (t) => {
    const h = harness(t);
    const agent = await h.agent();
    await h.sync({ socketPath: agent.socketPath, clock: systemClock satisfies Clock });
    const first = await agent.waitForStream(1);
    first.inSync();
    await until(() => h.component()?.ready === true, "ready");
    const dropped = Date.now();
    first.drop();
    await agent.waitForStream(2);
    const gap = Date.now() - dropped;
    assert.ok(gap >= REDIAL_MS - 50 && gap < REDIAL_MS + 1_500, `redialled after ${gap} ms`);
  });

  it("stays ready on an idle stream and goes stale when nothing refreshes it", async (t) => {
    const h = harness(t);
    const agent = await h.agent();
    await inSyncWith(h, agent, ourBlock);
    // Ten timeouts without a single message: the stream is open, so it is healthy.
    h.clock.advance(10 * TIMEOUT_MS);
    assert.equal(h.component()?.ready, true);
    // Asked a full timeout after the last refresh (an event loop stalled that long): stale.
    const stale = h.readiness.evaluate(h.clock.now() + TIMEOUT_MS);
    const component = stale.components.find((c) => c.name === "DatastoreConnection");
    assert.equal(component?.ready, false);
    assert.equal(component?.timeoutMs, TIMEOUT_MS);
    assert.match(component?.detail ?? "", /no sign of life .* within 1m30s/);
  });

  it("waits for a socket that is absent, and connects when it appears", async (t) => {
    const h = harness(t);
    mkdirSync(join(h.dir, "nodeagent"));
    const sync = await h.sync();
    assert.equal(sync.mode, "agent");
    assert.equal(h.component()?.ready, false);
    assert.match(h.component()?.detail ?? "", /no policy-sync socket at .*nodeagent\/socket/);
    h.clock.advance(REDIAL_MS);
    const agent = await h.agent();
    h.clock.advance(REDIAL_MS);
    replay(await agent.waitForStream(1), ourBlock);
    await until(() => h.component()?.ready === true, "ready");
    assert.equal(sync.state().socketPath, agent.socketPath);
    assert.equal(h.logs.filter((l) => l.msg === "policy sync down").length, 1);
  });

  it("prefers the operator layout when both sockets exist", async (t) => {
    const h = harness(t);
    await h.agent();
    const operator = await h.agent(join(h.dir, "calico", "nodeagent", "socket"));
    const sync = await h.sync();
    await operator.waitForStream(1);
    assert.equal(sync.state().socketPath, operator.socketPath);
  });
});

describe("policy sync without an agent", () => {
  it("runs in no-agent mode when no socket and no socket directory exists", async (t) => {
    const h = harness(t);
    const sync = await h.sync();
    assert.equal(sync.mode, "none");
    assert.equal(sync.state().mode, "none");
    assert.deepEqual(h.readiness.evaluate().components, [], "no component registered");
    assert.equal(h.readiness.evaluate().ready, true);
    const warnings = h.logs.filter((l) => l.level === "warn");
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]?.msg ?? "", /no policy-sync socket mounted.*plain SNAT gateway/);
    assert.equal(h.clock.timerCount, 0, "nothing dialled, nothing scheduled");
  });

  it("treats a mounted directory whose socket refuses connections as a broken agent", async (t) => {
    const h = harness(t);
    mkdirSync(join(h.dir, "nodeagent"));
    // A regular file where the socket should be: connect() is refused.
    writeFileSync(join(h.dir, "nodeagent", "socket"), "");
    const sync = await h.sync();
    assert.equal(sync.mode, "agent");
    await until(() => /cannot open a policy-sync stream/.test(h.component()?.detail ?? ""), "refused");
    assert.equal(h.component()?.ready, false);
    h.clock.advance(REDIAL_MS);
    await until(() => sync.state().reconnects === 1, "a redial");
    assert.equal(h.component()?.ready, false);
  });

  it("expects an agent whenever DAEMON_SOCKET_PATH is set, even where nothing exists", async (t) => {
    const h = harness(t);
    const sync = await h.sync({ socketPath: join(h.dir, "missing", "socket") });
    assert.equal(sync.mode, "agent");
    assert.equal(h.component()?.ready, false);
    assert.match(h.component()?.detail ?? "", /no policy-sync socket at .*missing\/socket; redialling/);
  });
});

describe("policy sync lifecycle", () => {
  it("stops: the stream ends, no timer is left, nothing is reported afterwards", async (t) => {
    const h = harness(t);
    const agent = await h.agent();
    const { sync, stream } = await inSyncWith(h, agent, ourBlock);
    await sync.stop();
    await stream.closed;
    assert.equal(agent.connected.length, 0);
    h.clock.advance(10 * TIMEOUT_MS);
    await settle();
    assert.equal(agent.streams.length, 1, "no redial after stop");
  });

  it("keeps running when the route change consumer throws", async (t) => {
    const h = harness(t);
    const agent = await h.agent();
    const { sync, stream } = await inSyncWith(h, agent);
    const failing = await h.sync({
      socketPath: agent.socketPath,
      onRoutes: () => {
        throw new Error("consumer bug");
      },
    });
    await sync.stop();
    (await agent.waitForStream(2)).inSync();
    await until(() => failing.state().inSync, "in sync despite the consumer");
    assert.ok(h.logs.some((l) => l.msg === "route change consumer failed"));
    assert.equal(stream.open, false);
  });
});
