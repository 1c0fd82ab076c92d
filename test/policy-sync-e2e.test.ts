// The whole path end to end, in the two-node VXLAN lab: a fake node agent on a
// unix socket serves the routes Felix on the client's node would send; the
// gateway pod runs the built init-gateway.sh and the built start-gateway.sh
// (DAEMON_SOCKET_PATH to that socket); the client pod on the other node talks
// to the external host through the gateway. Pinned here: readiness before and
// after InSync, source NAT to the gateway's address, answers back in vxlan0,
// RouteRemove taking the return path away, an agent restart that keeps the
// kernel state (and the traffic) until the new stream's InSync resyncs it, the
// /metrics families, in both encodings of the route type; and the two modes
// without a working agent: none mounted (plain SNAT gateway) and mounted but
// broken (not ready, never plain SNAT).
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { capture } from "../lab/capture.js";
import { FakeAgent, routeUpdateMessage, type AgentStream } from "../lab/fake-agent.js";
import {
  awaitMetric,
  awaitReadiness,
  componentOf,
  HANDLED_MESSAGES,
  metricsOf,
  type ReadinessAnswer,
} from "../lab/gateway-health.js";
import type { NamespaceHttpClient } from "../lab/namespace-http.js";
import {
  awaitProgrammed,
  expectedProgrammed,
  sendRoutes,
  twoNodeRoutes,
  type RouteEncoding,
} from "../lab/two-node-agent.js";
import { buildTwoNodeLab, TWO_NODE, type ProgrammedEntries, type TwoNodeLab } from "../lab/two-node-lab.js";
import type { GatewayProcess } from "../lab/gateway-process.js";
import { ensureInitBuilt } from "./helpers/init-lab.js";

const GATEWAY_IP = TWO_NODE.gatewayPod.ip;
const CLIENT_IP = TWO_NODE.clientPod.ip;
const EXTERNAL_IP = TWO_NODE.external.ip;
/** SPEC §5: the gateway redials every 3 s; a restarted agent is found within that, plus start-up slack. */
const REDIAL_WAIT_MS = 6_000;

const isReady = (a: ReadinessAnswer, name: string): boolean | undefined => componentOf(a, name)?.ready;

/**
 * A running gateway pod in a lab: the gateway process, an HTTP client on the
 * gateway node (where kubelet polls /readiness) and helpers that fail with the
 * gateway's own log, so a red test says what the gateway thought.
 */
class GatewayUnderTest {
  constructor(
    readonly lab: TwoNodeLab,
    readonly gateway: GatewayProcess,
    readonly node: NamespaceHttpClient,
  ) {}

  async readiness(what: string, want: (a: ReadinessAnswer) => boolean, ms = 5_000): Promise<ReadinessAnswer> {
    const { answer, matched } = await awaitReadiness(this.node, this.lab.healthUrl("/readiness"), want, ms);
    if (!matched) {
      const tail = this.gateway.dump().split("\n").slice(-15).join("\n");
      assert.fail(
        `/readiness never showed ${what} within ${ms} ms; last: ${answer.status} ${answer.body}\n${tail}`,
      );
    }
    return answer;
  }

  metrics(): Promise<Map<string, number>> {
    return metricsOf(this.node, this.lab.healthUrl("/metrics"));
  }

  /** Waits until the gateway has handled `count` messages from the agent in all (it counts across streams). */
  async handled(count: number): Promise<void> {
    const url = this.lab.healthUrl("/metrics");
    const seen = await awaitMetric(this.node, url, HANDLED_MESSAGES, (n) => n === count);
    assert.ok(seen, `the gateway never counted ${count} handled policy-sync messages`);
  }
}

/** The kernel's return path, polled until it is `want` (a reconcile pass runs after each change). */
async function kernelBecomes(lab: TwoNodeLab, want: ProgrammedEntries): Promise<void> {
  assert.deepEqual((await awaitProgrammed(lab, want)).entries, want);
}

/** The first data-plane check has reported (the component starts not ready, like every other). */
const integrityChecked = (a: ReadinessAnswer): boolean =>
  a.status !== 0 && componentOf(a, "DataplaneIntegrity")?.ready === true;

function endToEnd(encoding: RouteEncoding, field: number): void {
  describe(`policy sync drives the return path (route types in field ${field}, ${encoding})`, () => {
    const routes = twoNodeRoutes(encoding);
    let lab: TwoNodeLab;
    let dir: string;
    let agent: FakeAgent | undefined;
    let gw: GatewayUnderTest;
    let client: NamespaceHttpClient;
    let url: string;
    let first: AgentStream;
    let sent = 0;
    const send = (stream: AgentStream, list: Parameters<typeof sendRoutes>[1], inSync: boolean): void => {
      sendRoutes(stream, list, { inSync });
      sent += list.length + (inSync ? 1 : 0);
    };

    before(async () => {
      ensureInitBuilt();
      dir = mkdtempSync(join(tmpdir(), "egt-sync-"));
      mkdirSync(join(dir, "nodeagent"));
      const socket = join(dir, "nodeagent", "socket");
      lab = buildTwoNodeLab(`pse${encoding}`, { teardownOnExit: false });
      await lab.initGateway("script");
      url = await lab.startPeerEcho();
      agent = await FakeAgent.start(socket);
      const gateway = lab.startGateway({ DAEMON_SOCKET_PATH: socket, LOG_SEVERITY: "debug" });
      const [node, pod] = await Promise.all([lab.httpClient(lab.gatewayNode), lab.httpClient(lab.clientPod)]);
      gw = new GatewayUnderTest(lab, gateway, node);
      client = pod;
      first = await agent.waitForStream(1, 10_000);
    });

    after(async () => {
      await gw?.gateway.kill();
      await agent?.stop();
      lab?.destroy();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it(`the fake agent carries every route's type in field ${field} only`, () => {
      const { ours, clientTunnel, clientPod, nodeC, nodeD } = routes;
      for (const route of [ours, clientTunnel, clientPod, nodeC, nodeD]) {
        const { type, types } = routeUpdateMessage(route);
        assert.deepEqual(
          { field1: type !== undefined, field12: types !== undefined },
          { field1: field === 1, field12: field === 12 },
          route.dst,
        );
      }
    });

    it("subscribes to l3-routes; before InSync it is not ready and programs nothing", async () => {
      assert.deepEqual(first.request, { subscriptionType: "l3-routes", supportsIPv6RouteUpdates: true });
      send(first, [routes.ours, routes.clientTunnel, routes.clientPod, routes.nodeC], false);
      await gw.handled(sent);

      const answer = await gw.readiness("503 after the first data-plane check", integrityChecked);
      assert.equal(answer.status, 503);
      // Init ran in this pod: its work, watched, is ready; policy sync is not yet.
      assert.deepEqual(
        answer.components.map((c) => [c.name, c.ready]),
        [
          ["DatastoreConnection", false],
          ["Dataplane", false],
          ["DataplaneIntegrity", true],
        ],
      );
      assert.match(componentOf(answer, "DatastoreConnection")!.detail, /waiting for InSync/);
      assert.deepEqual(lab.programmed(), expectedProgrammed({ clientPod: false }));
      await assert.rejects(client.text(url, 1_000), "no return path yet: the client gets no answer");
    });

    it("after InSync DatastoreConnection and Dataplane are ready, /readiness 200, vxlan0 programmed", async () => {
      send(first, [], true);
      const answer = await gw.readiness("200", (a) => a.status === 200);
      assert.equal(isReady(answer, "DatastoreConnection"), true);
      assert.equal(isReady(answer, "Dataplane"), true);
      assert.equal(componentOf(answer, "Dataplane")!.detail, "2 return routes to 2 nodes");
      assert.deepEqual(lab.programmed(), expectedProgrammed({ clientPod: true, nodeC: true }));
    });

    it("the client pod reaches the external host, which sees the gateway; answers come back in vxlan0", async () => {
      const inner = await capture(lab.lab, lab.gatewayPod, "vxlan0", `tcp and src host ${EXTERNAL_IP}`);
      const outer = await capture(
        lab.lab,
        lab.gatewayNode,
        "ul0",
        `udp port 4790 and src host ${GATEWAY_IP}`,
      );
      const seenByHost = await capture(lab.lab, lab.external, "eth0", `tcp and dst host ${EXTERNAL_IP}`);

      assert.equal(await client.text(url, 3_000), GATEWAY_IP);

      const [answers, tunnelled, arrived] = await Promise.all([
        inner.stop(),
        outer.stop(),
        seenByHost.stop(),
      ]);
      assert.match(answers, new RegExp(`${EXTERNAL_IP}\\.\\d+ > ${CLIENT_IP}\\.\\d+`));
      assert.match(
        tunnelled,
        new RegExp(`${GATEWAY_IP}\\.\\d+ > ${TWO_NODE.clientNode.tunnel}\\.4790: VXLAN`),
      );
      assert.match(arrived, new RegExp(`${GATEWAY_IP}\\.\\d+ > ${EXTERNAL_IP}\\.\\d+`));
      assert.doesNotMatch(
        arrived,
        new RegExp(`${CLIENT_IP}\\.`),
        "the client's own address never reaches the host",
      );
    });

    it("RouteRemove of the client pod's route takes its return path away; a RouteUpdate brings it back", async () => {
      first.remove(routes.clientPod.dst);
      sent += 1;
      await kernelBecomes(lab, expectedProgrammed({ clientPod: false, nodeC: true }));
      const answer = await gw.readiness("200", (a) => a.status === 200);
      assert.equal(componentOf(answer, "Dataplane")!.detail, "1 return route to 1 node");
      await assert.rejects(
        client.text(url, 1_000),
        "without its route the client's answers have no way back",
      );

      send(first, [routes.clientPod], false);
      await kernelBecomes(lab, expectedProgrammed({ clientPod: true, nodeC: true }));
      assert.equal(await client.text(url, 3_000), GATEWAY_IP);
    });

    it("agent restart: kernel state and traffic stay while disconnected; the new InSync resyncs", async () => {
      const programmed = lab.programmed();
      await agent!.stop();
      const down = await gw.readiness(
        "DatastoreConnection not ready",
        (a) => isReady(a, "DatastoreConnection") === false,
      );
      assert.equal(down.status, 503);
      assert.match(componentOf(down, "DatastoreConnection")!.detail, /broken .*keeping the last routes/);
      assert.equal(isReady(down, "Dataplane"), true);
      const away = await gw.metrics();
      assert.equal(away.get("egress_gateway_policy_sync_connected"), 0);
      assert.equal(away.get("egress_gateway_policy_sync_in_sync"), 0);
      assert.equal(away.get('egress_gateway_return_path_entries{kind="route"}'), 2);
      assert.deepEqual(lab.programmed(), programmed, "routes stay while the agent is away");
      assert.equal(await client.text(url, 3_000), GATEWAY_IP, "traffic flows while the agent is away");

      await agent!.restart();
      const second = await agent!.waitForStream(2, REDIAL_WAIT_MS);
      // The restarted agent no longer knows node-c and now knows node-d.
      send(second, [routes.ours, routes.clientTunnel, routes.clientPod, routes.nodeD], false);
      await gw.handled(sent);
      const waiting = await gw.readiness("503", (a) => a.status !== 0);
      assert.equal(waiting.status, 503);
      assert.match(componentOf(waiting, "DatastoreConnection")!.detail, /waiting for InSync/);
      assert.deepEqual(lab.programmed(), programmed, "a partial view before InSync changes nothing");

      send(second, [], true);
      await gw.readiness("200", (a) => a.status === 200);
      await kernelBecomes(lab, expectedProgrammed({ clientPod: true, nodeD: true }));
      assert.equal(await client.text(url, 3_000), GATEWAY_IP);
    });

    it("/metrics shows the policy-sync and return-path families with the values of this run", async () => {
      const m = await gw.metrics();
      const expected: Record<string, number> = {
        egress_gateway_ready: 1,
        'egress_gateway_component_ready{component="DatastoreConnection"}': 1,
        'egress_gateway_component_ready{component="Dataplane"}': 1,
        // ready, not ready (agent gone), ready again
        'egress_gateway_component_transitions_total{component="DatastoreConnection"}': 3,
        'egress_gateway_component_transitions_total{component="Dataplane"}': 1,
        'egress_gateway_policy_sync_mode{mode="agent"}': 1,
        egress_gateway_policy_sync_connected: 1,
        egress_gateway_policy_sync_in_sync: 1,
        'egress_gateway_policy_sync_messages_total{handled="true"}': sent,
        'egress_gateway_policy_sync_messages_total{handled="false"}': 0,
        'egress_gateway_policy_sync_routes{kind="tunnel"}': 1,
        'egress_gateway_policy_sync_routes{kind="remote_workload"}': 2,
        'egress_gateway_policy_sync_routes{kind="our_workload"}': 1,
        egress_gateway_policy_sync_incomplete_routes: 0,
        'egress_gateway_return_path_entries{kind="neighbour"}': 2,
        'egress_gateway_return_path_entries{kind="fdb"}': 2,
        'egress_gateway_return_path_entries{kind="route"}': 2,
        'egress_gateway_return_path_entries{kind="exit_route"}': 1,
        'egress_gateway_return_path_reconciles_total{result="failure"}': 0,
        egress_gateway_return_path_skipped_routes: 0,
      };
      assert.deepEqual(Object.fromEntries(Object.keys(expected).map((key) => [key, m.get(key)])), expected);
      const reconnects = m.get("egress_gateway_policy_sync_reconnects_total") ?? -1;
      assert.ok(
        reconnects >= 1 && reconnects <= 3,
        `reconnects_total ${reconnects}: one stream after the restart`,
      );
      // InSync, RouteRemove, RouteUpdate, resync: at least four passes that changed something.
      const passes = m.get('egress_gateway_return_path_reconciles_total{result="success"}') ?? 0;
      assert.ok(passes >= 4, `reconciles_total{success} ${passes}`);
      const seconds = m.get("egress_gateway_return_path_reconcile_duration_seconds") ?? -1;
      assert.ok(seconds > 0 && seconds < 1, `reconcile_duration_seconds ${seconds}`);
    });

    it("logs the stream's life once per change, and nothing at error level", () => {
      const { logs } = gw.gateway;
      const count = (msg: string): number => logs.filter((l) => l.msg === msg).length;
      assert.equal(count("policy sync in sync"), 2);
      assert.equal(count("policy sync down"), 1);
      assert.equal(count("return-path reconcile failed; retrying"), 0);
      assert.deepEqual(
        logs.filter((l) => l.level === "error" || l.level === "fatal" || l.level === "raw"),
        [],
      );
      assert.deepEqual(gw.gateway.stderr, []);
    });
  });
}

endToEnd("bitmap", 12);
endToEnd("enum", 1);

/**
 * Runs the gateway with a private, empty /var/run (a mount namespace of its
 * own), plus `dirs` made in it: the pod's view with no policy-sync volume, or
 * with one whose socket is missing. The lab's machine may have either layout.
 */
const privateVarRun = (dirs: readonly string[] = []): string[] => [
  "unshare",
  "--mount",
  "--propagation",
  "private",
  "sh",
  "-c",
  ["mount -t tmpfs egt-var-run /var/run", ...dirs.map((d) => `mkdir -p ${d}`), 'exec "$@"'].join(" && "),
  "sh",
];

describe("policy sync without a working node agent", () => {
  let lab: TwoNodeLab;
  let node: NamespaceHttpClient;
  let dir: string;
  let agent: FakeAgent | undefined;
  const running: GatewayProcess[] = [];

  before(async () => {
    ensureInitBuilt();
    dir = mkdtempSync(join(tmpdir(), "egt-sync-"));
    lab = buildTwoNodeLab("psenoagent", { teardownOnExit: false });
    await lab.initGateway("script");
    node = await lab.httpClient(lab.gatewayNode);
  });

  after(async () => {
    await Promise.all(running.map((g) => g.kill()));
    await agent?.stop();
    lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  // Init ran in this pod, so DataplaneIntegrity is in every mode's list; its
  // behaviour has tests of its own (dataplane-integrity.test.ts).
  const start = (env: Record<string, string>, wrapper?: readonly string[]): GatewayUnderTest => {
    const gateway = lab.startGateway(env, { wrapper });
    running.push(gateway);
    return new GatewayUnderTest(lab, gateway, node);
  };

  // The health port listens before the gRPC client loads: the first answers
  // may still show DatastoreConnection as "connecting", not ready either.
  const dialled = (a: ReadinessAnswer): boolean =>
    integrityChecked(a) && componentOf(a, "DatastoreConnection")?.detail !== "connecting to the node agent";

  it("no socket mounted, DAEMON_SOCKET_PATH unset: a visible plain SNAT gateway, ready", async () => {
    const gw = start({}, privateVarRun());
    const answer = await gw.readiness("200 after the first data-plane check", integrityChecked);
    assert.equal(answer.status, 200);
    assert.deepEqual(
      answer.components.map((c) => c.name),
      ["PolicySync", "DataplaneIntegrity"],
    );
    assert.match(componentOf(answer, "PolicySync")!.detail, /plain SNAT gateway/);
    const m = await gw.metrics();
    assert.equal(m.get('egress_gateway_policy_sync_mode{mode="none"}'), 1);
    assert.equal(m.get("egress_gateway_policy_sync_connected"), undefined);
    assert.deepEqual(
      [...m.keys()].filter((k) => k.startsWith("egress_gateway_return_path")),
      [],
    );
    await gw.gateway.waitForLog((l) => l.level === "warn" && /no policy-sync socket mounted/.test(l.msg));
    await gw.gateway.kill();
  });

  it("DAEMON_SOCKET_PATH with no socket behind it: not ready, never plain SNAT; ready once the agent appears", async () => {
    const socket = join(dir, "nodeagent", "socket");
    const gw = start({ DAEMON_SOCKET_PATH: socket });
    const answer = await gw.readiness("the first dial's outcome", dialled);
    assert.equal(answer.status, 503);
    assert.deepEqual(
      answer.components.map((c) => [c.name, c.ready]),
      [
        ["DatastoreConnection", false],
        ["Dataplane", false],
        ["DataplaneIntegrity", true],
      ],
    );
    assert.equal(
      componentOf(answer, "DatastoreConnection")!.detail,
      `no policy-sync socket at ${socket}; redialling every 3s`,
    );
    assert.equal((await gw.metrics()).get('egress_gateway_policy_sync_mode{mode="agent"}'), 1);

    mkdirSync(join(dir, "nodeagent"));
    agent = await FakeAgent.start(socket, (stream) => sendRoutes(stream, [twoNodeRoutes().ours]));
    const ready = await gw.readiness("200", (a) => a.status === 200, REDIAL_WAIT_MS);
    assert.equal(componentOf(ready, "Dataplane")!.detail, "0 return routes to 0 nodes");
    await gw.gateway.kill();
  });

  it("the manual layout's socket directory mounted without a socket: not ready, never plain SNAT", async () => {
    const gw = start({}, privateVarRun(["/var/run/nodeagent"]));
    const answer = await gw.readiness("the first dial's outcome", dialled);
    assert.equal(answer.status, 503);
    assert.equal(componentOf(answer, "PolicySync"), undefined);
    assert.equal(
      componentOf(answer, "DatastoreConnection")!.detail,
      "no policy-sync socket at /var/run/calico/nodeagent/socket, /var/run/nodeagent/socket; redialling every 3s",
    );
    assert.equal(isReady(answer, "Dataplane"), false);
    await gw.gateway.kill();
  });
});
