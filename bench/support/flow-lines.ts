// What bench/flow-logs.ts reads of a gateway with flow logs: its flow lines,
// the kernel's drops on the pod's conntrack sockets, and a clean stop.
import type { GatewayProcess } from "../../lab/gateway-process.js";
import type { PodLab } from "../../lab/pod-lab.js";
import { destroySocketDrops } from "../../src/flows/netlink-drops.js";

/**
 * Events the kernel dropped on the pod's conntrack sockets, by socket inode:
 * those subscribed to DESTROY (each a finished connection) and the others (the
 * close listeners').
 */
export function netlinkDrops(pod: PodLab): { destroy: Map<string, number>; other: Map<string, number> } {
  const text = pod.gateway.exec("cat", ["/proc/net/netlink"]);
  const destroy = destroySocketDrops(text);
  const other = new Map<string, number>();
  for (const row of text.trim().split("\n").slice(1)) {
    // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
    const cells = row.trim().split(/\s+/);
    if (cells[1] === "12" && !destroy.has(cells[9]!)) other.set(cells[9]!, Number(cells[8]));
  }
  return { destroy, other };
}

/** Drops since `before` on the sockets open now (a socket opened meanwhile counts from 0). */
export const dropsSince = (now: Map<string, number>, before: Map<string, number>): number =>
  [...now].reduce((sum, [inode, drops]) => sum + drops - (before.get(inode) ?? 0), 0);

/** SIGTERM with no drain, so that the gateway stops its listeners; SIGKILL if it has not exited in 10 s. */
export async function stopGateway(gateway: GatewayProcess): Promise<void> {
  gateway.signal("SIGTERM");
  await Promise.race([gateway.exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
  await gateway.kill();
}

export interface FlowCount {
  /** Distinct connections of the benchmark's client to the connection server. */
  readonly ours: number;
  /** Lines for one of those that was already logged. */
  readonly duplicates: number;
  /** Lines of any other flow (iperf3's, a previous round's late ones). */
  readonly others: number;
}

/** Flow lines since log line `from`: those of connections from `client` to `server`, and the others. */
export function countFlows(
  gateway: GatewayProcess,
  from: number,
  client: string,
  server: { address: string; port: number },
): FlowCount {
  const seen = new Set<string>();
  let duplicates = 0;
  let others = 0;
  for (const line of gateway.logs.slice(from)) {
    if (line.name !== "egress-gateway.flows") continue;
    const ours =
      line.clientIp === client &&
      line.destinationIp === server.address &&
      line.destinationPort === server.port;
    if (!ours) {
      others += 1;
      continue;
    }
    const key = `${String(line.conntrackId)}/${String(line.clientPort)}/${String(line.end)}`;
    if (seen.has(key)) duplicates += 1;
    seen.add(key);
  }
  return { ours: seen.size, duplicates, others };
}

/** Waits until no flow line came for 2 s (the listeners and the gateway may work through a backlog). */
export async function quietFlows(gateway: GatewayProcess): Promise<void> {
  const lines = (): number => gateway.logs.length;
  let last = lines();
  for (let quiet = 0, waited = 0; quiet < 2_000 && waited < 60_000; waited += 250) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    const now = lines();
    quiet = now === last ? quiet + 250 : 0;
    last = now;
  }
}
