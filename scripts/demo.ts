// The demo (`bash scripts/demo.sh`): the gateway in labs of network namespaces
// wired only to each other, then everything removed. Exits non-zero when
// anything it shows is not what it should be.
//   Part 1, pod on a bridge: the source address an external host sees without
//   and with the gateway, /readiness following the external host going away and
//   coming back, and termination with drain.
//   Part 2, two nodes with VXLAN (lab/two-node-demo.ts): a fake node agent's
//   routes programming the return path, RouteRemove and an agent restart.
// `--two-node` runs part 2 alone.
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { DemoReport, indent, seconds } from "../lab/demo-report.js";
import { describeInit, icmpRedirectsSent, runInit, startGateway } from "../lab/gateway-pod.js";
import type { NamespaceHttpClient } from "../lab/namespace-http.js";
import { ADDR, buildPodLab, type PeerEcho, type PodLab } from "../lab/pod-lab.js";
import { projectNamespaces, sweepCrashedRuns } from "../lab/sweep.js";
import { twoNodeDemo } from "../lab/two-node-demo.js";
import type { GatewayProcess } from "../lab/gateway-process.js";

const PROBE_INTERVAL = "500ms";
const PROBE_TIMEOUT = "2s";
const INTERVAL_S = 0.5;
const TIMEOUT_S = 2;
const DRAIN_S = 1;
const HEALTH_PORT = 8080;
const READINESS_URL = `http://${ADDR.gateway.v4}:${HEALTH_PORT}/readiness`;
const POLL_MS = 50;
// What a client node derives from the gateway's IPv4 (SPEC §5): a2:2a and the address's four bytes.
const VXLAN_MAC = [
  "a2",
  "2a",
  ...ADDR.gateway.v4.split(".").map((b) => Number(b).toString(16).padStart(2, "0")),
].join(":");
const OUTAGE_TABLE = "egt_demo_outage";

const report = new DemoReport();
const { title, say, check } = report;

interface Readiness {
  readonly status: number; // 0: no answer
  readonly body: string;
  readonly at: number;
}

async function readiness(node: NamespaceHttpClient): Promise<Readiness> {
  try {
    const answer = await node.get(READINESS_URL, { timeoutMs: 1_000 });
    return { status: answer.status, body: answer.body, at: performance.now() };
  } catch (error) {
    return { status: 0, body: error instanceof Error ? error.message : String(error), at: performance.now() };
  }
}

/** Polls /readiness until it answers `want`; resolves with that answer, or the last one after limitMs. */
async function awaitReadiness(node: NamespaceHttpClient, want: number, limitMs: number): Promise<Readiness> {
  const until = performance.now() + limitMs;
  for (;;) {
    const got = await readiness(node);
    if (got.status === want || got.at > until) return got;
    await sleep(POLL_MS);
  }
}

async function showSeen(client: NamespaceHttpClient, echo: PeerEcho, who: string, v4: string, v6: string) {
  for (const [family, want] of [
    [4, v4],
    [6, v6],
  ] as const) {
    const seen = await client.text(echo.url(family)).catch((error: Error) => `no answer (${error.message})`);
    check(
      seen === want,
      `IPv${family} ${seen}${seen === want ? ` (${who})` : `, expected ${want} (${who})`}`,
    );
  }
}

function gatewayExited(gateway: GatewayProcess): boolean {
  return gateway.child.exitCode !== null || gateway.child.signalCode !== null;
}

async function demo(pod: PodLab): Promise<void> {
  title("Build the lab: namespaces wired only to each other");
  say(`client pod ${ADDR.client.v4}   gateway pod ${ADDR.gateway.v4}   node ${ADDR.node.v4}`);
  say(`external host ${ADDR.external.v4} / ${ADDR.external.v6}, routed behind the node`);
  const [echo, client, node] = await Promise.all([
    pod.startPeerEcho(),
    pod.httpClient(pod.client),
    pod.httpClient(pod.node),
  ]);
  check(true, `namespaces ${pod.lab.prefix}-{node,client,gw,ext}; peer echo on port ${echo.port}`);

  title("Without the gateway (client routed via the node), the external host sees");
  await showSeen(client, echo, "the client itself", ADDR.client.v4, ADDR.client.v6);

  title("Init the gateway pod: init-gateway.sh");
  const init = await runInit(pod, { EGRESS_VXLAN_VNI: "4097", EGRESS_VXLAN_PORT: "4790" });
  const initOk = check(init.code === 0, `exit ${init.signal ?? init.code} in ${seconds(init.ms)}`);
  say(`  ${describeInit(init)}`);
  if (!initOk) throw new Error(`init failed:\n${init.stderr.trim()}`);
  const vxlan = pod.gateway.ip("-d", "link", "show", "vxlan0");
  check(
    vxlan.includes(VXLAN_MAC) && /vxlan id 4097 .*dstport 4790/.test(vxlan),
    `vxlan0 ${VXLAN_MAC}, VNI 4097, port 4790`,
  );
  const forwarding = pod.gateway.exec("sysctl", [
    "-n",
    "net.ipv4.ip_forward",
    "net.ipv6.conf.all.forwarding",
  ]);
  check(forwarding.split("\n").filter(Boolean).join(",") === "1,1", "forwarding on for IPv4 and IPv6");

  title(`Start the gateway: start-gateway.sh, probes to the external host every ${PROBE_INTERVAL}`);
  const urls = [echo.url(4), echo.url(6)];
  say(`ICMP ${ADDR.external.v4}, ${ADDR.external.v6}; HTTP ${urls.join(", ")}`);
  const startedAt = performance.now();
  const gateway = startGateway(pod, {
    ICMP_PROBE_IPS: `${ADDR.external.v4},${ADDR.external.v6}`,
    ICMP_PROBE_INTERVAL: PROBE_INTERVAL,
    ICMP_PROBE_TIMEOUT: PROBE_TIMEOUT,
    HTTP_PROBE_URLS: urls.join(","),
    HTTP_PROBE_INTERVAL: PROBE_INTERVAL,
    HTTP_PROBE_TIMEOUT: PROBE_TIMEOUT,
    HEALTH_PORT: String(HEALTH_PORT),
    DRAIN_TIMEOUT: `${DRAIN_S}s`,
  });
  try {
    await gatewayDemo(pod, gateway, client, node, echo, startedAt);
  } catch (error) {
    const tail = gateway.dump().split("\n").slice(-12).join("\n");
    say(
      `gateway ${gatewayExited(gateway) ? "exited" : "running"}; its last output:\n${indent(tail || "(none)")}`,
    );
    throw error;
  } finally {
    await gateway.kill();
  }
}

async function gatewayDemo(
  pod: PodLab,
  gateway: GatewayProcess,
  client: NamespaceHttpClient,
  node: NamespaceHttpClient,
  echo: PeerEcho,
  startedAt: number,
): Promise<void> {
  const ready = await awaitReadiness(node, 200, 10_000);
  if (!check(ready.status === 200, `/readiness 200 after ${seconds(ready.at - startedAt)} (from the node)`)) {
    throw new Error(`the gateway did not become ready: ${ready.status} ${ready.body}`);
  }

  title("Route the client via the gateway pod: the external host now sees");
  pod.routeClientViaGateway(true);
  await showSeen(client, echo, "the gateway", ADDR.gateway.v4, ADDR.gateway.v6);
  const redirects = icmpRedirectsSent(pod);
  check(
    redirects.v4 === 0 && redirects.v6 === 0,
    `the gateway sent no ICMP redirect that would make the client bypass it (IPv4 ${redirects.v4}, IPv6 ${redirects.v6})`,
  );

  title(`/readiness from the node: GET ${READINESS_URL}`);
  const table = await readiness(node);
  check(table.status === 200, `${table.status}`);
  console.log(indent(table.body));

  title("The external host stops answering (nft: drop everything it receives)");
  pod.external.exec(
    "nft",
    ["-f", "-"],
    `table inet ${OUTAGE_TABLE} {\n chain input { type filter hook input priority 0; policy drop; iif lo accept; }\n}\n`,
  );
  const downAt = performance.now();
  const down = await awaitReadiness(node, 503, (TIMEOUT_S + 5) * 1000);
  const downS = (down.at - downAt) / 1000;
  const earliest = TIMEOUT_S - INTERVAL_S * 1.05 - 0.1;
  check(
    down.status === 503 && downS >= earliest && downS <= TIMEOUT_S + 1,
    `/readiness ${down.status} after ${downS.toFixed(2)} s` +
      ` (expected ${earliest.toFixed(1)}-${TIMEOUT_S} s: the last answer + the ${PROBE_TIMEOUT} window)`,
  );
  console.log(indent(down.body));

  title("The external host answers again");
  pod.external.exec("nft", ["delete", "table", "inet", OUTAGE_TABLE]);
  const upAt = performance.now();
  const up = await awaitReadiness(node, 200, (TIMEOUT_S + 5) * 1000);
  const upS = (up.at - upAt) / 1000;
  check(
    up.status === 200 && upS <= INTERVAL_S + 1,
    `/readiness ${up.status} after ${upS.toFixed(2)} s (expected within about one interval, ${PROBE_INTERVAL})`,
  );

  title(`SIGTERM to the gateway (DRAIN_TIMEOUT=${DRAIN_S}s)`);
  gateway.signal("SIGTERM");
  const termAt = performance.now();
  const draining = await awaitReadiness(node, 503, 2_000);
  check(draining.status === 503, `/readiness ${draining.status} after ${seconds(draining.at - termAt)}`);
  const live = await node.get(READINESS_URL.replace("/readiness", "/liveness"), { timeoutMs: 1_000 }).then(
    (answer) => String(answer.status),
    (error: Error) => error.message,
  );
  check(live === "200", `/liveness ${live} while draining (kubelet must not restart it)`);
  const seen = await client.text(echo.url(4)).catch((error: Error) => error.message);
  check(seen === ADDR.gateway.v4, `traffic still flows while draining: the external host sees ${seen}`);
  const exit = await Promise.race([gateway.exited, sleep((DRAIN_S + 5) * 1000, undefined, { ref: false })]);
  const exitS = (performance.now() - termAt) / 1000;
  check(
    exit?.code === 0 && exitS >= DRAIN_S * 0.9 && exitS <= DRAIN_S + 2,
    exit
      ? `exit ${exit.signal ?? exit.code} after ${exitS.toFixed(2)} s`
      : `still running ${exitS.toFixed(1)} s after SIGTERM`,
  );
}

async function podOnBridge(): Promise<void> {
  console.log("Part 1: a client pod, a gateway pod and an external host in network namespaces");
  const pod = buildPodLab("demo");
  try {
    await demo(pod);
  } catch (error) {
    report.stopped(error);
  } finally {
    title("Tear down");
    const processes = pod.lab.pids();
    pod.destroy();
    const left = projectNamespaces().filter((name) => name.startsWith(`${pod.lab.prefix}-`));
    check(left.length === 0, `removed the namespaces and ${processes.length} processes; ${left.length} left`);
  }
}

function parseOptions(): { readonly twoNodeOnly: boolean } {
  try {
    const { values } = parseArgs({ options: { "two-node": { type: "boolean" } }, strict: true });
    return { twoNodeOnly: values["two-node"] === true };
  } catch (error) {
    console.error(
      `demo: ${error instanceof Error ? error.message : String(error)}; usage: demo.sh [--two-node]`,
    );
    process.exit(2);
  }
}

async function main(): Promise<number> {
  const { twoNodeOnly } = parseOptions();
  console.log("egress-gateway demo");
  const swept = sweepCrashedRuns().removed;
  if (swept.length > 0) console.log(`(removed ${swept.length} namespaces left by crashed runs)`);
  if (!twoNodeOnly) await podOnBridge();
  await twoNodeDemo(report);
  console.log(`\n${report.summary()}`);
  return report.ok ? 0 : 1;
}

process.exitCode = await main();
