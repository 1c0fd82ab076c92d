// Return-path programming at scale, in a gateway-pod namespace (no traffic):
// 10,000 remote-workload routes over 1,000 nodes, each node with a VXLAN tunnel
// inside its first block (so 1,000 exit routes too).
//
// 1. Snapshot to kernel converged through createReturnPath, against the same
//    entries applied by one `ip -batch` and one `bridge -batch` (lines written
//    here by hand), alternating, in fresh state each time; ratio of medians.
// 2. One route change after convergence, update() to pass done: median latency.
//    Also a resync pass (full read-back, nothing to change) for comparison.
// 3. Ways of reading our 11,000 routes back: `ip -j` + JSON.parse against text.
//
//   node --import tsx bench/return-path.ts [--rounds 3] [--changes 40] [--nodes 1000] [--per-node 10]
import { systemClock } from "../src/clock.js";
import { createKernel } from "../src/dataplane/kernel.js";
import { nodeMac } from "../src/pod-network/mac.js";
import { formatIpv4, parseIpv4 } from "../src/ip/ipv4.js";
import { createReturnPath, type ReturnPath } from "../src/dataplane/return-path.js";
import { runCommand } from "../src/exec/run-command.js";
import { Readiness } from "../src/readiness/readiness.js";
import type { KeptRoute, Route, RouteFeed, RouteView } from "../src/sync/types.js";
import { RunLab } from "../lab/run-lab.js";
import { sweepCrashedRuns } from "../lab/sweep.js";
import type { Namespace } from "../lab/netns.js";
import { cleanupOnSignal, fixed, integerFlags, loadLine, median, table, verdict } from "./support/report.js";
import { NO_ROUTE_TYPES, routeOf, wholeView } from "../lab/routes.js";

const flags = integerFlags({ rounds: 3, changes: 40, nodes: 1000, "per-node": 10 });
const VNI = 4097;
const OUR_IP = "198.51.100.66";
const POD_GATEWAY = "198.51.100.65";
const BLOCK_SIZE = 8; // /29: 10,000 blocks fit in 198.18.0.0/15
const BLOCKS_BASE = parseIpv4("198.18.0.0")!;
const NODES_BASE = parseIpv4("198.19.248.0")!;
const TARGET = { ratio: 1.5, convergeMs: 3_000, changeMs: 100 };

const route = (dst: string, fields: Partial<Route>): KeptRoute =>
  routeOf(dst, { natOutgoing: true, ...fields });

interface Fleet {
  readonly snapshot: RouteView;
  readonly ipLines: string[];
  readonly bridgeLines: string[];
}

/** The snapshot, and the same kernel entries as hand-written batch lines. */
function fleet(nodes: number, perNode: number): Fleet {
  const tunnels = new Map<string, KeptRoute>();
  const workloads = new Map<string, KeptRoute>();
  const ipLines: string[] = [];
  const bridgeLines: string[] = [];
  for (let n = 0; n < nodes; n++) {
    const name = `node-${n}`;
    const nodeIp = formatIpv4(NODES_BASE + n);
    const firstBlock = BLOCKS_BASE + n * perNode * BLOCK_SIZE;
    const tunnel = formatIpv4(firstBlock + 1);
    tunnels.set(
      `${tunnel}/32`,
      route(`${tunnel}/32`, {
        types: { ...NO_ROUTE_TYPES, remoteTunnel: true },
        dstNodeName: name,
        dstNodeIp: nodeIp,
        tunnelType: { ipip: false, vxlan: true, wireguard: false },
      }),
    );
    const mac = nodeMac(name);
    bridgeLines.push(`fdb replace ${mac} dev vxlan0 dst ${tunnel} vni ${VNI} self permanent`);
    ipLines.push(`route replace ${tunnel}/32 via ${POD_GATEWAY} dev eth0 onlink proto 0x45`);
    ipLines.push(`neigh replace ${nodeIp} lladdr ${mac} dev vxlan0 nud permanent`);
    for (let b = 0; b < perNode; b++) {
      const dst = `${formatIpv4(firstBlock + b * BLOCK_SIZE)}/29`;
      workloads.set(
        dst,
        route(dst, {
          types: { ...NO_ROUTE_TYPES, remoteWorkload: true },
          dstNodeName: name,
          dstNodeIp: nodeIp,
        }),
      );
      ipLines.push(`route replace ${dst} via ${nodeIp} dev vxlan0 onlink proto 0x45`);
    }
  }
  const ourRoute = route("198.51.100.64/26", {
    types: { ...NO_ROUTE_TYPES, localWorkload: true },
    dstNodeName: "gateway-node",
    dstNodeIp: "198.51.100.1",
    localWorkload: true,
  });
  return { snapshot: { ourRoute, tunnels, remoteWorkloads: workloads }, ipLines, bridgeLines };
}

/** A gateway pod: eth0 (veth to a node namespace), default route, vxlan0 as init makes it. */
function gatewayPod(lab: RunLab): Namespace {
  const node = lab.ns("node");
  const pod = lab.ns("pod");
  lab.link(pod, "eth0", node, "veth-pod");
  pod.ip("addr", "add", `${OUR_IP}/32`, "dev", "eth0");
  pod.ip("route", "add", POD_GATEWAY, "dev", "eth0", "scope", "link");
  pod.ip("route", "add", "default", "via", POD_GATEWAY, "dev", "eth0");
  return pod;
}

/** Fresh state: vxlan0 recreated (its neighbours, FDB entries and routes go with it), exit routes flushed. */
function reset(pod: Namespace): void {
  pod.exec("sh", ["-c", "ip link del vxlan0 2>/dev/null; ip route flush proto 0x45; true"]);
  pod.ip(..."link add vxlan0 address a2:2a:c6:33:64:42 type vxlan id 4097 dstport 4790 dev eth0".split(" "));
  pod.ip("link", "set", "vxlan0", "up");
}

async function batch(pod: Namespace, tool: "ip" | "bridge", lines: readonly string[]): Promise<void> {
  const result = await runCommand([tool, "-n", pod.name, "-batch", "-"], `${lines.join("\n")}\n`);
  if (!result.ok) throw new Error(`${tool} -batch: ${result.stderr.trim()}`);
}

async function settled(path: ReturnPath, passesBefore: number): Promise<void> {
  while (path.state().passes === passesBefore || path.state().pending) {
    await new Promise((resolve) => setImmediate(resolve));
  }
  if (path.state().consecutiveFailures > 0) throw new Error("a reconcile pass failed");
}

function startPath(pod: Namespace): ReturnPath {
  return createReturnPath({
    readiness: new Readiness(systemClock),
    log: { warn: (f, m) => console.error(m, f), info: () => {}, debug: () => {} },
    clock: systemClock,
    ourIPv4: OUR_IP,
    vni: VNI,
    netns: pod.name,
    resyncIntervalMs: 0,
  });
}

/** The feed of one route message: only `dst` changed in `view`, as the route store says it. */
const oneChange = (view: RouteView, dst: string): RouteFeed => ({
  view,
  takeChanges: () => ({ full: false, dsts: new Set([dst]) }),
});

async function ourRouteCount(pod: Namespace): Promise<number> {
  const result = await runCommand(["ip", "-n", pod.name, "-4", "route", "show", "proto", "0x45"]);
  return result.stdout.split("\n").filter(Boolean).length;
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const start = performance.now();
  const value = await fn();
  return { ms: performance.now() - start, value };
}

async function main(): Promise<void> {
  const nodes = flags.nodes;
  const perNode = flags["per-node"];
  const expected = nodes * perNode + nodes;
  console.log(`return path: ${nodes * perNode} workload routes over ${nodes} nodes (+${nodes} exit routes)`);
  console.log(loadLine());
  sweepCrashedRuns();
  const lab = new RunLab("rpbench");
  const cleanup = cleanupOnSignal(() => lab.destroy());
  try {
    const pod = gatewayPod(lab);
    const rssBefore = process.resourceUsage().maxRSS;
    const built = await timed(() => Promise.resolve(fleet(nodes, perNode)));
    const { snapshot, ipLines, bridgeLines } = built.value;

    // 1. Convergence from empty, alternating contender first.
    const baseline: number[] = [];
    const ours: number[] = [];
    for (let round = 0; round < flags.rounds; round++) {
      for (const contender of round % 2 === 0 ? ["batch", "ours"] : ["ours", "batch"]) {
        reset(pod);
        if (contender === "batch") {
          baseline.push(
            (
              await timed(async () => {
                await batch(pod, "bridge", bridgeLines);
                await batch(pod, "ip", ipLines);
              })
            ).ms,
          );
        } else {
          const path = startPath(pod);
          ours.push((await timed(() => (path.update(wholeView(snapshot)), settled(path, 0)))).ms);
          await path.stop();
        }
        const count = await ourRouteCount(pod);
        if (count !== expected)
          throw new Error(`${contender}: ${count} routes in the kernel, expected ${expected}`);
      }
    }

    // 2. One change at a time after convergence: add a /32 to node 0, then take it away again.
    reset(pod);
    const path = startPath(pod);
    path.update(wholeView(snapshot));
    await settled(path, 0);
    const extra = route("198.19.200.1/32", {
      types: { ...NO_ROUTE_TYPES, remoteWorkload: true },
      dstNodeName: "node-0",
      dstNodeIp: formatIpv4(NODES_BASE),
    });
    const withExtra: RouteView = {
      ...snapshot,
      remoteWorkloads: new Map([...snapshot.remoteWorkloads, [extra.dst, extra]]),
    };
    const change: number[] = [];
    for (let i = 0; i < flags.changes; i++) {
      const before = path.state().passes;
      const next = i % 2 === 0 ? withExtra : snapshot;
      change.push((await timed(() => (path.update(oneChange(next, extra.dst)), settled(path, before)))).ms);
      if (path.state().lastChanges !== 1) throw new Error(`change ${i}: ${path.state().lastChanges} changes`);
    }
    const resync: number[] = [];
    for (let i = 0; i < flags.rounds; i++) {
      const before = path.state().passes;
      resync.push((await timed(() => (path.resync(), settled(path, before)))).ms);
    }
    await path.stop();

    // 3. Reading our routes back.
    const kernel = createKernel({ vni: VNI, netns: pod.name });
    const readJson: number[] = [];
    const readText: number[] = [];
    const readAll: number[] = [];
    for (let i = 0; i < 5; i++) {
      readJson.push(
        (
          await timed(async () => {
            const r = await runCommand(["ip", "-n", pod.name, "-j", "-4", "route", "show", "proto", "0x45"]);
            return (JSON.parse(r.stdout) as unknown[]).length;
          })
        ).ms,
      );
      readText.push(
        (
          await timed(async () => {
            const r = await runCommand(["ip", "-n", pod.name, "-4", "route", "show", "proto", "0x45"]);
            return [...r.stdout.matchAll(/^(\S+) via (\S+) dev (\S+)/gm)].length;
          })
        ).ms,
      );
      readAll.push((await timed(() => kernel.read())).ms);
    }
    const rssAfter = process.resourceUsage().maxRSS;

    const ms = (n: number): string => `${fixed(n, 0)} ms`;
    const ratio = median(ours) / median(baseline);
    console.log(
      "\n" +
        table([
          ["measure", "median", "min", "max", "target", ""],
          [
            "one ip -batch + bridge -batch",
            ms(median(baseline)),
            ms(Math.min(...baseline)),
            ms(Math.max(...baseline)),
            "",
            "",
          ],
          [
            "snapshot to converged (ours)",
            ms(median(ours)),
            ms(Math.min(...ours)),
            ms(Math.max(...ours)),
            `< ${ms(TARGET.convergeMs)}`,
            verdict(median(ours) < TARGET.convergeMs),
          ],
          [
            "ratio ours / batch",
            fixed(ratio, 2),
            "",
            "",
            `<= ${TARGET.ratio}`,
            verdict(ratio <= TARGET.ratio),
          ],
          [
            "one route change",
            ms(median(change)),
            ms(Math.min(...change)),
            ms(Math.max(...change)),
            `< ${ms(TARGET.changeMs)}`,
            verdict(median(change) < TARGET.changeMs),
          ],
          [
            "resync pass (read back, 0 changes)",
            ms(median(resync)),
            ms(Math.min(...resync)),
            ms(Math.max(...resync)),
            "",
            "",
          ],
          [
            "read: ip -j route + JSON.parse",
            ms(median(readJson)),
            ms(Math.min(...readJson)),
            ms(Math.max(...readJson)),
            "",
            "",
          ],
          [
            "read: ip route (text) + regex",
            ms(median(readText)),
            ms(Math.min(...readText)),
            ms(Math.max(...readText)),
            "",
            "",
          ],
          [
            "read: kernel.read() (4 dumps, parsed)",
            ms(median(readAll)),
            ms(Math.min(...readAll)),
            ms(Math.max(...readAll)),
            "",
            "",
          ],
        ]),
    );
    console.log(
      `\nsnapshot built in ${ms(built.ms)}; ${flags.rounds} rounds, ${flags.changes} single changes`,
    );
    console.log(
      `peak RSS of this process: ${fixed(rssBefore / 1024)} MiB before the snapshot, ${fixed(rssAfter / 1024)} MiB after all runs`,
    );
    console.log(loadLine());
  } finally {
    cleanup();
  }
}

await main();
