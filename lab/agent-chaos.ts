// The node agent under chaos (issue 11), shared by test/policy-sync-chaos-e2e.test.ts
// (CI sizes) and bench/agent-chaos.ts (full sizes): the built gateway in the
// pod-on-bridge lab's gateway pod, fed by the fake agent in this process; the
// route view the agent has sent, as the kernel entries it should give; the
// gateway pod's kernel read back; kubelet's /readiness poll from the node
// namespace; the gateway's peak RSS.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { isDeepStrictEqual } from "node:util";
import { runCommand } from "../src/exec/run-command.js";
import { formatIpv4, parseIpv4 } from "../src/ip/ipv4.js";
import { nodeMac } from "../src/pod-network/mac.js";
import { FakeAgent, type AgentStream, type FakeRoute } from "./fake-agent.js";
import { metricsOf } from "./gateway-health.js";
import { describeInit, runInit, startGateway } from "./gateway-pod.js";
import type { GatewayProcess } from "./gateway-process.js";
import type { NamespaceHttpClient } from "./namespace-http.js";
import type { Namespace } from "./netns.js";
import { ADDR, buildPodLab, type PodLab } from "./pod-lab.js";
import type { ProgrammedEntries } from "./two-node-lab.js";

export const HEALTH_PORT = 8080;
const HEALTH = `http://${ADDR.gateway.v4}:${HEALTH_PORT}`;

/** LOCAL_WORKLOAD: the gateway pod's block on its node (the gateway holds its return path until it sees this). */
export const OUR_ROUTE: FakeRoute = {
  dst: "198.51.100.0/24",
  types: ["localWorkload"],
  poolType: "VXLAN",
  dstNodeName: "gateway-node",
  dstNodeIp: ADDR.node.v4,
  localWorkload: true,
};

const NODES_BASE = parseIpv4("198.18.0.1")!;
const WORKLOADS_BASE = parseIpv4("198.19.0.0")!;

/** Remote node `n` (0-based): `node-<n>` at 198.18.x.y, up to 65,534 of them. */
export const chaosNode = (n: number): { readonly name: string; readonly ip: string } => ({
  name: `node-${n}`,
  ip: formatIpv4(NODES_BASE + n),
});

/** Workload `k` (0-based, a /32 in 198.19.0.0/16) as a REMOTE_WORKLOAD route on node `node`. */
export function workloadRoute(k: number, node: number): FakeRoute {
  const { name, ip } = chaosNode(node);
  return {
    dst: `${formatIpv4(WORKLOADS_BASE + k)}/32`,
    types: ["remoteWorkload"],
    poolType: "VXLAN",
    dstNodeName: name,
    dstNodeIp: ip,
  };
}

/** `routes` workloads spread round-robin over `nodes` nodes, so that the first n routes sit on n nodes. */
export const fleetRoutes = (routes: number, nodes: number): FakeRoute[] =>
  Array.from({ length: routes }, (_, k) => workloadRoute(k, k % nodes));

export type Flap =
  { readonly kind: "update"; readonly route: FakeRoute } | { readonly kind: "remove"; readonly dst: string };

/**
 * `count` update/remove flaps on the first `span` workloads, deterministic for
 * a seed: each picks a workload, then either removes it or (re)sends it on a
 * node picked among `nodes`, so that routes come, go and move between nodes.
 */
export function flaps(count: number, span: number, nodes: number, seed = 11): Flap[] {
  let state = seed >>> 0 || 1;
  const next = (n: number): number => {
    // xorshift32: reproducible across runs, unlike Math.random
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) % n;
  };
  return Array.from({ length: count }, (): Flap => {
    const k = next(span);
    if (next(2) === 0) return { kind: "remove", dst: workloadRoute(k, 0).dst };
    return { kind: "update", route: workloadRoute(k, next(nodes)) };
  });
}

/** What the agent has told the gateway (remote workloads by dst), and the kernel entries that view must give. */
export class AgentView {
  private readonly routes = new Map<string, FakeRoute>();

  get size(): number {
    return this.routes.size;
  }

  update(route: FakeRoute): void {
    this.routes.set(route.dst, route);
  }

  remove(dst: string): void {
    this.routes.delete(dst);
  }

  apply(flap: Flap): void {
    if (flap.kind === "update") this.update(flap.route);
    else this.remove(flap.dst);
  }

  /**
   * SPEC §5.1 with no host tunnels: per node a permanent neighbour entry and an
   * FDB entry to its node IP, per workload a route via the node IP on vxlan0;
   * lines as `ip`/`bridge` print them (a /32 without its length), sorted.
   */
  expected(): ProgrammedEntries {
    const nodes = new Map<string, string>();
    const routes: string[] = [];
    for (const route of this.routes.values()) {
      const ip = route.dstNodeIp ?? "";
      nodes.set(route.dstNodeName ?? "", ip);
      routes.push(`${route.dst.replace(/\/32$/, "")} via ${ip} dev vxlan0 onlink`);
    }
    const named = [...nodes];
    return {
      routes: routes.sort(),
      neighbours: named.map(([name, ip]) => `${ip} lladdr ${nodeMac(name)} PERMANENT`).sort(),
      fdb: named.map(([name, ip]) => `${nodeMac(name)} dst ${ip} self permanent`).sort(),
    };
  }
}

const lines = (text: string): string[] =>
  text
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean)
    .sort();

async function read(argv: readonly string[]): Promise<string> {
  const result = await runCommand(argv);
  if (!result.ok) throw new Error(`${argv.join(" ")}: ${result.stderr.trim()}`);
  return result.stdout;
}

/** The return path as `ns`'s kernel holds it (read without blocking this process's event loop). */
export async function kernelEntries(ns: Namespace): Promise<ProgrammedEntries> {
  const [routes, neighbours, fdb] = await Promise.all([
    read(["ip", "-n", ns.name, "route", "show", "proto", "0x45"]),
    read(["ip", "-n", ns.name, "neigh", "show", "dev", "vxlan0", "nud", "permanent"]),
    read(["bridge", "-n", ns.name, "fdb", "show", "dev", "vxlan0"]),
  ]);
  return {
    routes: lines(routes),
    neighbours: lines(neighbours),
    fdb: lines(fdb).filter((line) => line.includes(" dst ")),
  };
}

/**
 * What a bad route could have added, in either family: every route of the pod
 * on vxlan0 or of our protocol (the kernel's own link-local, multicast and
 * local-table entries left out, our protocol's name dropped so that lines read
 * like kernelEntries'), every permanent neighbour on vxlan0, every FDB entry
 * with a remote.
 */
export async function everythingOnVxlan(ns: Namespace): Promise<ProgrammedEntries> {
  const [v4, v6, neighbours, fdb] = await Promise.all([
    read(["ip", "-n", ns.name, "-4", "route", "show", "table", "all"]),
    read(["ip", "-n", ns.name, "-6", "route", "show", "table", "all"]),
    read(["ip", "-n", ns.name, "neigh", "show", "dev", "vxlan0"]),
    read(["bridge", "-n", ns.name, "fdb", "show", "dev", "vxlan0"]),
  ]);
  return {
    routes: lines(`${v4}\n${v6}`)
      .filter((line) => /vxlan0|proto 0x45/.test(line))
      .filter((line) => !/proto kernel|table local|^fe80|^ff00|^multicast/.test(line))
      .map((line) => line.replace(/ proto (0x45|69)\b/, "")),
    neighbours: lines(neighbours).filter((line) => line.endsWith("PERMANENT")),
    fdb: lines(fdb).filter((line) => line.includes(" dst ")),
  };
}

/** Readiness as kubelet sees it, polled every `periodMs` on a fresh connection with a 1 s timeout. */
export interface ReadinessPoll {
  readonly sent: number;
  readonly answered: number;
  /** Slowest answer, ms, measured inside the namespace. */
  readonly slowestMs: number;
  /** The last answer's JSON body (components and details). */
  readonly lastBody: string;
  readonly failures: readonly string[];
}

export function pollReadiness(
  client: NamespaceHttpClient,
  periodMs = 100,
): { stop(): Promise<ReadinessPoll> } {
  let sent = 0;
  let answered = 0;
  let slowestMs = 0;
  let lastBody = "";
  const failures: string[] = [];
  const inFlight = new Set<Promise<void>>();
  const timer = setInterval(() => {
    sent++;
    const probe = client
      .get(`${HEALTH}/readiness`, { timeoutMs: 1_000, headers: { accept: "application/json" } })
      .then(
        (answer) => {
          answered++;
          slowestMs = Math.max(slowestMs, answer.ms);
          lastBody = answer.body;
        },
        (error: unknown) => {
          failures.push(error instanceof Error ? error.message : String(error));
        },
      );
    inFlight.add(probe);
    void probe.finally(() => inFlight.delete(probe));
  }, periodMs);
  return {
    async stop() {
      clearInterval(timer);
      await Promise.all(inFlight);
      return { sent, answered, slowestMs, lastBody, failures };
    },
  };
}

/** The gateway's peak resident set (VmHWM), bytes. */
export function peakRssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) * 1024;
}

export interface ChaosLab {
  readonly pod: PodLab;
  readonly agent: FakeAgent;
  readonly gateway: GatewayProcess;
  /** kubelet's side: an HTTP client in the node namespace. */
  readonly node: NamespaceHttpClient;
  kernel(): Promise<ProgrammedEntries>;
  /**
   * Polls the kernel until it holds `want`; resolves with whether it did within
   * `timeoutMs` and when (performance.now() at the end of the matching read).
   */
  awaitKernel(
    want: ProgrammedEntries,
    timeoutMs: number,
  ): Promise<{ readonly matched: boolean; readonly at: number; readonly entries: ProgrammedEntries }>;
  metrics(): Promise<Map<string, number>>;
  destroy(): Promise<void>;
}

/**
 * Builds the pod lab, runs init-gateway.sh, starts the fake agent (`onStream`
 * runs for each stream the gateway opens) and the built gateway pointed at it.
 */
export async function startChaosLab(
  tag: string,
  options: { readonly env?: Record<string, string>; readonly onStream?: (stream: AgentStream) => void } = {},
): Promise<ChaosLab> {
  const pod = buildPodLab(tag, { teardownOnExit: false });
  const dir = mkdtempSync(join(tmpdir(), "egt-chaos-"));
  let agent: FakeAgent | undefined;
  try {
    const init = await runInit(pod);
    if (init.code !== 0) throw new Error(`init-gateway.sh: ${describeInit(init)}`);
    agent = await FakeAgent.start(join(dir, "socket"), options.onStream);
    const gateway = startGateway(pod, {
      DAEMON_SOCKET_PATH: agent.socketPath,
      HEALTH_PORT: String(HEALTH_PORT),
      LOG_SEVERITY: "info",
      ...options.env,
    });
    const node = await pod.httpClient(pod.node);
    const started = agent;
    return {
      pod,
      agent: started,
      gateway,
      node,
      kernel: () => kernelEntries(pod.gateway),
      async awaitKernel(want, timeoutMs) {
        const until = performance.now() + timeoutMs;
        for (;;) {
          const entries = await kernelEntries(pod.gateway);
          const at = performance.now();
          const matched = isDeepStrictEqual(entries, want);
          if (matched || at > until) return { matched, at, entries };
          await sleep(50);
        }
      },
      metrics: () => metricsOf(node, `${HEALTH}/metrics`),
      async destroy() {
        await gateway.kill();
        await started.stop();
        pod.destroy();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await agent?.stop();
    pod.destroy();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
