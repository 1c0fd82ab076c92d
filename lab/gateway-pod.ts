// The two entrypoints of the image, run inside the lab's gateway pod namespace
// the way kubelet runs them: init-gateway.sh to completion, then
// start-gateway.sh for as long as the lab needs it. Configuration is
// environment only, as in a pod.
import { join } from "node:path";
import { startGatewayProcess, type GatewayProcess } from "./gateway-process.js";
import { ADDR, type PodLab } from "./pod-lab.js";
import { ROOT, type Finished } from "./run-lab.js";

export const INIT_GATEWAY = join(ROOT, "init-gateway.sh");

/** The downward-API value of the lab's gateway pod: dual-stack, IPv4 first (the gateway's identity). */
export const GATEWAY_POD_IPS = `${ADDR.gateway.v4},${ADDR.gateway.v6}`;

const basicEnv = (): Record<string, string> => ({
  PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin",
});

/** Runs init-gateway.sh in the gateway pod with `env` (EGRESS_POD_IPS defaults to the lab's). */
export function runInit(
  pod: PodLab,
  env: Record<string, string> = {},
  args: readonly string[] = [],
): Promise<Finished> {
  return pod.lab.run(pod.gateway, INIT_GATEWAY, args, {
    env: { ...basicEnv(), EGRESS_POD_IPS: GATEWAY_POD_IPS, ...env },
    timeoutMs: 30_000,
  });
}

/** One line for a report: the summary on success, else the exit status and the first line it complained with. */
export function describeInit(result: Finished): string {
  if (result.code === 0) return result.stdout.trim().split("\n").at(-1) ?? "";
  const why = (result.stderr.trim() || result.stdout.trim()).split("\n")[0] ?? "";
  return `exit ${result.signal ?? result.code}: ${why}`;
}

/**
 * Starts start-gateway.sh in the gateway pod with `env` (EGRESS_POD_IPS defaults to the lab's), behind
 * `wrapper` when given (setpriv for another user). destroy() kills it.
 */
export function startGateway(
  pod: PodLab,
  env: Record<string, string> = {},
  wrapper?: readonly string[],
): GatewayProcess {
  const gateway = startGatewayProcess(
    { EGRESS_POD_IPS: GATEWAY_POD_IPS, ...env },
    { netns: pod.gateway.name, wrapper },
  );
  pod.lab.track(gateway.child);
  return gateway;
}

/** ICMP redirects the gateway pod has sent (kernel counters; an ICMPv6 redirect dropped by a rule is not counted). */
export function icmpRedirectsSent(pod: PodLab): { v4: number; v6: number } {
  const [names, values] = pod.gateway
    .exec("cat", ["/proc/net/snmp"])
    .split("\n")
    .filter((line) => line.startsWith("Icmp: "))
    .map((line) => line.split(/\s+/).slice(1));
  const v4 = Number(values?.[names?.indexOf("OutRedirects") ?? -1]);
  const v6 = Number(/^Icmp6OutRedirects\s+(\d+)$/m.exec(pod.gateway.exec("cat", ["/proc/net/snmp6"]))?.[1]);
  return { v4, v6 };
}
