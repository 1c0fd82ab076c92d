// Part 2 of the demo (scripts/demo.ts; `bash scripts/demo.sh --two-node` runs
// it alone): the two-node VXLAN lab, a fake node agent on a unix socket serving
// the routes Felix would send, and the built init and gateway in the gateway
// pod. It shows the client pod on the other node reaching the external host as
// the gateway, /readiness with DatastoreConnection and Dataplane, what the
// gateway programmed on vxlan0, a RouteRemove taking a client's return path
// away, and an agent restart that keeps the traffic flowing. Everything it
// created goes away at the end, also on Ctrl-C.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { nodeMac, vxlanMac } from "../src/pod-network/mac.js";
import type { GatewayProcess } from "./gateway-process.js";
import { capture } from "./capture.js";
import { DemoReport, seconds } from "./demo-report.js";
import { teardownOnExit } from "./exit-hooks.js";
import { FakeAgent, type AgentStream, type FakeRoute } from "./fake-agent.js";
import {
  awaitMetric,
  awaitReadiness,
  componentOf,
  HANDLED_MESSAGES,
  parseMetrics,
  readinessTable,
  type ReadinessAnswer,
} from "./gateway-health.js";
import type { NamespaceHttpClient } from "./namespace-http.js";
import { projectNamespaces } from "./sweep.js";
import {
  awaitProgrammed,
  describeRoute,
  expectedProgrammed,
  ROUTE_ONLY_NODES,
  sendRoutes,
  twoNodeRoutes,
} from "./two-node-agent.js";
import {
  buildTwoNodeLab,
  TWO_NODE,
  VNI,
  VXLAN_PORT,
  type ProgrammedEntries,
  type TwoNodeLab,
} from "./two-node-lab.js";

const { clientNode, gatewayNode, clientPod, gatewayPod, external } = TWO_NODE;
/** SPEC §5: the gateway redials every 3 s. */
const REDIAL_WAIT_MS = 6_000;

interface Scene {
  readonly lab: TwoNodeLab;
  readonly agent: FakeAgent;
  readonly gateway: GatewayProcess;
  /** On the gateway node, where kubelet polls /readiness. */
  readonly node: NamespaceHttpClient;
  readonly client: NamespaceHttpClient;
  readonly url: string;
}

const routes = twoNodeRoutes("bitmap");
const count = (e: ProgrammedEntries): string =>
  `${e.routes.length} routes, ${e.neighbours.length} neighbours, ${e.fdb.length} FDB entries`;

/** What part 2 started, for the teardown whatever step it stopped at. */
interface Started {
  lab?: TwoNodeLab;
  agent?: FakeAgent;
  gateway?: GatewayProcess;
}

export async function twoNodeDemo(report: DemoReport): Promise<void> {
  console.log("\nPart 2: two nodes joined by VXLAN; the node agent's routes program the way back");
  const dir = mkdtempSync(join(tmpdir(), "egt-demo-sync-"));
  const removeDir = teardownOnExit(() => rmSync(dir, { recursive: true, force: true }));
  const started: Started = {};
  try {
    const scene = await setUp(report, started, dir);
    await walkThrough(report, scene);
  } catch (error) {
    if (started.gateway) {
      report.say("the gateway's last output:");
      report.show(started.gateway.dump().split("\n").slice(-12).join("\n"));
    }
    report.stopped(error);
  } finally {
    report.title("Tear down");
    const { lab, agent, gateway } = started;
    const processes = lab?.lab.pids().length ?? 0;
    await gateway?.kill();
    await agent?.stop();
    lab?.destroy();
    removeDir();
    const prefix = `${lab?.lab.prefix ?? "(no lab)"}-`;
    const left = projectNamespaces().filter((name) => name.startsWith(prefix));
    report.check(
      left.length === 0 && !existsSync(dir),
      `removed the namespaces, ${processes} processes and the agent's socket directory; ${left.length} namespaces left`,
    );
  }
}

async function setUp(report: DemoReport, started: Started, dir: string): Promise<Scene> {
  const { title, say, check, show } = report;
  title("Build the two-node lab: namespaces wired only to each other");
  say(
    `client pod ${clientPod.ip} on ${clientNode.name} (underlay ${clientNode.underlay}, VXLAN tunnel address ${clientNode.tunnel})`,
  );
  say(
    `gateway pod ${gatewayPod.ip} on ${gatewayNode.name} (underlay ${gatewayNode.underlay}); external host ${external.ip} behind ${gatewayNode.name}`,
  );
  say(
    `${clientNode.name} steers the client's external traffic to the gateway over egress.calico ` +
      `(VNI ${VNI}, port ${VXLAN_PORT}, MAC ${nodeMac(clientNode.name)}), as the node agent would`,
  );
  const lab = buildTwoNodeLab("demotwo");
  started.lab = lab;
  const [url, node, client] = await Promise.all([
    lab.startPeerEcho(),
    lab.httpClient(lab.gatewayNode),
    lab.httpClient(lab.clientPod),
  ]);
  check(true, `namespaces ${lab.lab.prefix}-{cnode,gnode,cpod,gpod,ext}; peer echo at ${url}`);

  title("Init the gateway pod: init-gateway.sh");
  const initStart = performance.now();
  const summary = await lab.initGateway("script");
  check(true, `exit 0 in ${seconds(performance.now() - initStart)}`);
  show(summary);
  const vxlan = lab.gatewayPod.ip("-d", "link", "show", "vxlan0");
  const mac = vxlanMac(gatewayPod.ip);
  check(
    vxlan.includes(mac) && new RegExp(`vxlan id ${VNI} .*dstport ${VXLAN_PORT}`).test(vxlan),
    `vxlan0 ${mac} (what ${clientNode.name} derives from ${gatewayPod.ip}), VNI ${VNI}, port ${VXLAN_PORT}`,
  );

  title("Start a fake node agent, then the gateway with DAEMON_SOCKET_PATH pointing at it");
  mkdirSync(join(dir, "nodeagent"));
  const socket = join(dir, "nodeagent", "socket");
  const agent = await FakeAgent.start(socket);
  started.agent = agent;
  say(`fake node agent listening on ${socket}`);
  const startedAt = performance.now();
  const gateway = lab.startGateway({ DAEMON_SOCKET_PATH: socket });
  started.gateway = gateway;
  const stream = await agent.waitForStream(1, 10_000);
  check(
    stream.request.subscriptionType === "l3-routes",
    `the gateway opened a Sync stream after ${seconds(performance.now() - startedAt)}: ${JSON.stringify(stream.request)}`,
  );
  return { lab, agent, gateway, node, client, url };
}

async function walkThrough(report: DemoReport, scene: Scene): Promise<void> {
  const { title, say, check, show } = report;
  const { lab, agent, node, client, url } = scene;
  const readinessUrl = lab.healthUrl("/readiness");
  const metricsUrl = lab.healthUrl("/metrics");
  const first = await agent.waitForStream(1);
  const initial = [routes.ours, routes.clientTunnel, routes.clientPod, routes.nodeC];
  let sent = 0;
  /** Sends, then waits until the gateway has handled every message sent so far. */
  const send = async (stream: AgentStream, list: readonly FakeRoute[], inSync: boolean): Promise<void> => {
    sendRoutes(stream, list, { inSync });
    sent += list.length + (inSync ? 1 : 0);
    const want = sent;
    if (!(await awaitMetric(node, metricsUrl, HANDLED_MESSAGES, (n) => n === want))) {
      throw new Error(`the gateway did not count ${want} handled policy-sync messages`);
    }
  };
  const seen = (): Promise<string> => client.text(url, 1_000).catch(noAnswer);
  const table = async (): Promise<void> => show(await readinessTable(node, readinessUrl));
  const notReady = (a: ReadinessAnswer, name: string): boolean => componentOf(a, name)?.ready === false;

  say("the agent sends these routes (route types in field 12, as newer agents do) and holds InSync back:");
  show(initial.map(describeRoute).join("\n"));
  await send(first, initial, false);
  const before = await awaitReadiness(node, readinessUrl, (a) => a.status !== 0, 5_000);
  check(
    before.answer.status === 503 &&
      notReady(before.answer, "DatastoreConnection") &&
      notReady(before.answer, "Dataplane"),
    `/readiness ${before.answer.status} before InSync (from ${gatewayNode.name}, where kubelet polls)`,
  );
  await table();
  const empty = lab.programmed();
  check(
    isDeepStrictEqual(empty, expectedProgrammed({ clientPod: false })),
    `nothing programmed yet (${count(empty)})`,
  );
  const noWay = await seen();
  check(noWay.startsWith("no answer"), `the client pod gets no answer without a return path: ${noWay}`);

  title("The agent sends InSync");
  const syncAt = performance.now();
  await send(first, [], true);
  const ready = await awaitReadiness(node, readinessUrl, (a) => a.status === 200, 5_000);
  check(ready.matched, `/readiness ${ready.answer.status} after ${seconds(ready.answer.at - syncAt)}`);
  await table();

  title(`What the gateway programmed in its pod (SPEC §5.1)`);
  const programmed = await awaitProgrammed(lab, expectedProgrammed({ clientPod: true, nodeC: true }));
  showEntries(report, programmed.entries);
  check(
    programmed.matched,
    `per remote node a route, a neighbour and an FDB entry; ${clientNode.name}'s FDB entry names its tunnel ` +
      `address ${clientNode.tunnel}, which an exit route via eth0 keeps out of vxlan0`,
  );

  title(
    `The client pod on ${clientNode.name} calls the external host, through the gateway pod on ${gatewayNode.name}`,
  );
  const inner = await capture(lab.lab, lab.gatewayPod, "vxlan0", `tcp and src host ${external.ip}`);
  const outer = await capture(
    lab.lab,
    lab.gatewayNode,
    "ul0",
    `udp port ${VXLAN_PORT} and src host ${gatewayPod.ip}`,
  );
  const through = await seen();
  const [answers, tunnelled] = await Promise.all([inner.stop(), outer.stop()]);
  check(
    through === gatewayPod.ip,
    `the external host sees ${through} (the gateway), not ${clientPod.ip} (the client)`,
  );
  const inVxlan = lines(answers, ` > ${clientPod.ip}.`);
  const onUnderlay = lines(tunnelled, ` > ${clientNode.tunnel}.${VXLAN_PORT}: VXLAN`);
  check(
    inVxlan > 0 && onUnderlay > 0,
    `the answers went back in vxlan0: ${inVxlan} packets to ${clientPod.ip} inside it, ` +
      `${onUnderlay} VXLAN packets to ${clientNode.tunnel}:${VXLAN_PORT} on the underlay`,
  );

  title(`The agent sends RouteRemove ${routes.clientPod.dst} (the client pod's block)`);
  const removeAt = performance.now();
  first.remove(routes.clientPod.dst);
  sent += 1;
  const removed = await awaitProgrammed(lab, expectedProgrammed({ clientPod: false, nodeC: true }));
  check(
    removed.matched,
    `its route, ${clientNode.name}'s neighbour and FDB entry and the exit route are gone after ${seconds(removed.at - removeAt)}`,
  );
  show(removed.entries.routes.join("\n"));
  const cut = await seen();
  check(cut.startsWith("no answer"), `the client pod gets no answer: ${cut}`);
  const addAt = performance.now();
  first.route(routes.clientPod);
  sent += 1;
  const back = await awaitProgrammed(lab, expectedProgrammed({ clientPod: true, nodeC: true }));
  const again = await seen();
  check(
    back.matched && again === gatewayPod.ip,
    `RouteUpdate ${routes.clientPod.dst} again: back after ${seconds(back.at - addAt)}; the external host sees ${again}`,
  );

  await agentRestart(report, scene, send, seen);
  await metricsStep(report, scene, sent);
}

async function agentRestart(
  report: DemoReport,
  scene: Scene,
  send: (stream: AgentStream, list: readonly FakeRoute[], inSync: boolean) => Promise<void>,
  seen: () => Promise<string>,
): Promise<void> {
  const { title, say, check, show } = report;
  const { lab, agent, node } = scene;
  const readinessUrl = lab.healthUrl("/readiness");
  title("The node agent restarts (stops, then listens on the same socket again)");
  const kept = lab.programmed();
  const stopAt = performance.now();
  await agent.stop();
  const down = await awaitReadiness(
    node,
    readinessUrl,
    (a) => componentOf(a, "DatastoreConnection")?.ready === false,
    5_000,
  );
  check(
    down.answer.status === 503 && componentOf(down.answer, "Dataplane")?.ready === true,
    `agent gone: /readiness ${down.answer.status} after ${seconds(down.answer.at - stopAt)}; ` +
      "DatastoreConnection not ready, Dataplane still ready",
  );
  show(await readinessTable(node, readinessUrl));
  const during = lab.programmed();
  check(isDeepStrictEqual(during, kept), `the return path stays programmed (${count(during)})`);
  const flowing = await seen();
  check(flowing === gatewayPod.ip, `traffic still flows: the external host sees ${flowing}`);

  const { nodeC, nodeD } = ROUTE_ONLY_NODES;
  say(
    `the agent starts again; its routes now name ${nodeD.name} (${nodeD.block}) instead of ${nodeC.name} (${nodeC.block})`,
  );
  await agent.restart();
  const second = await agent.waitForStream(2, REDIAL_WAIT_MS);
  check(
    true,
    `the gateway redialled: stream 2 open ${seconds(performance.now() - stopAt)} after the agent went away (it redials every 3 s)`,
  );
  await send(second, [routes.ours, routes.clientTunnel, routes.clientPod, routes.nodeD], false);
  const partial = lab.programmed();
  check(isDeepStrictEqual(partial, kept), "routes without InSync yet: nothing changes in the kernel");
  const syncAt = performance.now();
  await send(second, [], true);
  const ready = await awaitReadiness(node, readinessUrl, (a) => a.status === 200, 5_000);
  const resynced = await awaitProgrammed(lab, expectedProgrammed({ clientPod: true, nodeD: true }));
  check(
    ready.matched && resynced.matched,
    `InSync: /readiness ${ready.answer.status} after ${seconds(ready.answer.at - syncAt)}; resync removed ` +
      `${nodeC.block} (${nodeC.name}) and added ${nodeD.block} (${nodeD.name}) with their neighbours and FDB entries`,
  );
  showEntries(report, resynced.entries);
  const after = await seen();
  check(after === gatewayPod.ip, `traffic flows: the external host sees ${after}`);
}

async function metricsStep(report: DemoReport, scene: Scene, sent: number): Promise<void> {
  const { title, check, show } = report;
  const { lab, node } = scene;
  title(`/metrics: policy sync and return path (GET ${lab.healthUrl("/metrics")})`);
  const text = (await node.get(lab.healthUrl("/metrics"), { timeoutMs: 1_000 })).body;
  show(
    text
      .split("\n")
      .filter((l) => /^egress_gateway_(policy_sync|return_path)_/.test(l))
      .join("\n"),
  );
  const m = parseMetrics(text);
  const get = (key: string): number | undefined => m.get(key);
  check(
    get("egress_gateway_policy_sync_in_sync") === 1 &&
      (get("egress_gateway_policy_sync_reconnects_total") ?? 0) >= 1 &&
      get(HANDLED_MESSAGES) === sent &&
      get('egress_gateway_return_path_entries{kind="route"}') === 2 &&
      get('egress_gateway_return_path_entries{kind="exit_route"}') === 1 &&
      get('egress_gateway_return_path_reconciles_total{result="failure"}') === 0,
    `in sync after a reconnect, ${sent} messages handled, 2 return routes and 1 exit route, no failed reconcile`,
  );
}

function showEntries(report: DemoReport, entries: ProgrammedEntries): void {
  report.say("$ ip route show proto 0x45");
  report.show(entries.routes.join("\n"));
  report.say("$ ip neigh show dev vxlan0 nud permanent");
  report.show(entries.neighbours.join("\n"));
  report.say("$ bridge fdb show dev vxlan0 | grep dst");
  report.show(entries.fdb.join("\n"));
}

/** "no answer within 1 s" for the lab's HTTP agent's TIMEOUT, else its error code. */
const noAnswer = (error: Error): string =>
  /TIMEOUT/.test(error.message)
    ? "no answer within 1 s"
    : `no answer (${/: ([A-Z_]+):/.exec(error.message)?.[1] ?? error.message})`;

const lines = (output: string, needle: string): number =>
  output.split("\n").filter((line) => line.includes(needle)).length;
