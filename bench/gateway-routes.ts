// Peak RSS of the gateway process holding 10,000 remote-workload routes over
// 1,000 nodes, learned over policy sync from the fake node agent and programmed
// into a lab gateway pod (issue target: < 200 MB), and the time from the
// gateway's start to the kernel holding every route.
//   node --import tsx bench/gateway-routes.ts [--routes 10000] [--per-node 10]
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { runInit } from "../lab/gateway-pod.js";
import { buildPodLab } from "../lab/pod-lab.js";
import { ROOT } from "../lab/run-lab.js";
import type { FakeRoute } from "../lab/fake-agent.js";
import { startGatewayProcess, type GatewayProcess } from "../lab/gateway-process.js";
import { integerFlags } from "./support/report.js";

const flags = integerFlags({ routes: 10_000, "per-node": 10 });

/** The gateway's own block, then `routes` /32 workloads, `per-node` to a node. */
function fleet(routes: number, perNode: number): FakeRoute[] {
  const ours: FakeRoute = {
    dst: "198.51.100.0/24",
    types: ["localWorkload"],
    poolType: "VXLAN",
    dstNodeName: "gateway-node",
    dstNodeIp: "198.51.100.1",
  };
  return [
    ours,
    ...Array.from({ length: routes }, (_, k): FakeRoute => {
      const node = Math.floor(k / perNode) + 1;
      return {
        dst: `198.19.${k >> 8}.${k & 255}/32`,
        types: ["remoteWorkload"],
        poolType: "VXLAN",
        dstNodeName: `node-${node}`,
        dstNodeIp: `198.18.${node >> 8}.${node & 255}`,
      };
    }),
  ];
}

async function main(): Promise<void> {
  const pod = buildPodLab("rss");
  const dir = mkdtempSync("/tmp/egt-rss-");
  const socket = join(dir, "socket");
  writeFileSync(join(dir, "routes.json"), JSON.stringify(fleet(flags.routes, flags["per-node"])));
  const agent = spawn(
    "node",
    ["--import", "tsx", "lab/fake-agent-cli.ts", "--socket", socket, "--routes", join(dir, "routes.json")],
    {
      cwd: ROOT,
      stdio: "ignore",
    },
  );
  let gateway: GatewayProcess | undefined;
  try {
    const init = await runInit(pod);
    if (init.code !== 0) throw new Error(`init failed: ${init.stderr.trim()}`);
    // Start the gateway once the agent listens, or its first redial (3 s) is in the figure.
    for (let waited = 0; !existsSync(socket) && waited < 10_000; waited += 50) await sleep(50);
    const env = {
      EGRESS_POD_IP: "198.51.100.2",
      DAEMON_SOCKET_PATH: socket,
      HEALTH_PORT: "0",
      LOG_SEVERITY: "warn",
    };
    gateway = startGatewayProcess(env, { netns: pod.gateway.name });
    const started = performance.now();
    let programmed = 0;
    while (programmed < flags.routes && performance.now() - started < 60_000) {
      await sleep(100);
      programmed = pod.gateway.ip("route", "show", "proto", "0x45").split("\n").filter(Boolean).length;
    }
    const convergedMs = performance.now() - started;
    await sleep(3_000); // let it settle: the peak is what matters
    const status = readFileSync(`/proc/${gateway.child.pid}/status`, "utf8");
    const kib = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
    const peakMiB = kib("VmHWM") / 1024;
    console.log(
      `${programmed} of ${flags.routes} routes programmed, ${Math.round(convergedMs)} ms after the gateway started`,
    );
    console.log(
      `gateway peak RSS ${peakMiB.toFixed(1)} MiB (target < 190.7 MiB = 200 MB): ${peakMiB < 190.7 ? "met" : "NOT MET"}`,
    );
  } finally {
    await gateway?.kill();
    agent.kill();
    pod.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
