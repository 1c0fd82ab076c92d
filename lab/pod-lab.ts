// The pod-on-bridge lab of LAB.md: a "node" namespace with a bridge, a client
// pod and a gateway pod attached to it by veth (each pod's end named eth0), and
// an external host routed behind the node. Every address is from the
// documentation ranges and exists only inside these namespaces.
//
//   client (198.51.100.10)  ─┐
//                            br0 node (198.51.100.1 / 203.0.113.1) ── external (203.0.113.10)
//   gateway (198.51.100.2)  ─┘
import { existsSync } from "node:fs";
import type { Namespace } from "./netns.js";
import { teardownOnExit } from "./exit-hooks.js";
import { NamespaceHttpClient } from "./namespace-http.js";
import { RunLab } from "./run-lab.js";

export const ADDR = {
  node: { v4: "198.51.100.1", v6: "2001:db8:100::1" },
  client: { v4: "198.51.100.10", v6: "2001:db8:100::10" },
  gateway: { v4: "198.51.100.2", v6: "2001:db8:100::2" },
  nodeExternal: { v4: "203.0.113.1", v6: "2001:db8:113::1" },
  external: { v4: "203.0.113.10", v6: "2001:db8:113::10" },
  externalNet: { v4: "203.0.113.0/24", v6: "2001:db8:113::/64" },
} as const;

/** Where the external host's peer echo (lab/peer-echo.ts) listens by default. */
export const PEER_ECHO_PORT = 8000;

export interface PeerEcho {
  readonly port: number;
  /** `http://<external host's IPv4 or IPv6>:<port>/`; the body answered is the address the host saw. */
  url(family: 4 | 6): string;
}

export interface PodLabOptions {
  /** Also tear down on process exit and on SIGINT/SIGTERM/SIGHUP (default true). */
  readonly teardownOnExit?: boolean;
}

export interface PodLab {
  /** Namespaces `egt-<tag>-p<pid>-…` (see lab/sweep.ts) and the processes started in them. */
  readonly lab: RunLab;
  readonly node: Namespace;
  readonly client: Namespace;
  readonly gateway: Namespace;
  readonly external: Namespace;
  /** Client traffic to the external network goes through the gateway pod (true) or straight via the node. */
  routeClientViaGateway(via: boolean): void;
  /**
   * The node sends traffic for the client through the gateway pod (true) or
   * straight over the bridge: for a gateway pod that forwards without SNAT,
   * whose replies would otherwise skip it.
   */
  routeNodeToClientViaGateway(via: boolean): void;
  /** Starts the peer echo on both external addresses; resolves once it listens. destroy() stops it. */
  startPeerEcho(port?: number): Promise<PeerEcho>;
  /** An HTTP client inside `ns` (for the client pod: what the external host sees). destroy() stops it. */
  httpClient(ns: Namespace): Promise<NamespaceHttpClient>;
  /** Kills every process started in the lab, then deletes its namespaces. Safe to call twice. */
  destroy(): void;
}

export function buildPodLab(tag = "lab", options: PodLabOptions = {}): PodLab {
  const lab = new RunLab(tag);
  const destroy =
    options.teardownOnExit === false ? () => lab.destroy() : teardownOnExit(() => lab.destroy());
  try {
    const node = lab.ns("node");
    const client = lab.ns("client");
    const gateway = lab.ns("gw");
    const external = lab.ns("ext");
    // Link-local addresses would stay tentative for a second or so (DAD), and
    // neighbour discovery with them: the first IPv6 SYN of a fresh lab was lost.
    for (const ns of [node, client, gateway, external]) ns.sysctl("net.ipv6.conf.default.accept_dad", "0");

    // A Calico node routes pod traffic and never bridges it; br0 is only the
    // lab's wiring. When the host has br_netfilter loaded (container engines
    // load it), every frame crossing br0 would also run the node's IP hooks,
    // which costs the gateway path (it crosses br0 twice each way, the direct path once) far more than
    // the direct one and made bench/forwarding.ts depend on the host's modules.
    if (existsSync("/proc/sys/net/bridge")) {
      for (const family of ["iptables", "ip6tables", "arptables"]) {
        node.sysctl(`net.bridge.bridge-nf-call-${family}`, "0");
      }
    }
    node.ip("link", "add", "br0", "type", "bridge");
    node.ip("link", "set", "br0", "up");
    node.ip("addr", "add", `${ADDR.node.v4}/24`, "dev", "br0");
    node.ip("-6", "addr", "add", `${ADDR.node.v6}/64`, "dev", "br0", "nodad");
    for (const [pod, name] of [
      [client, "client"],
      [gateway, "gateway"],
    ] as const) {
      const hostSide = `veth-${name}`;
      lab.link(pod, "eth0", node, hostSide);
      node.ip("link", "set", hostSide, "master", "br0");
      pod.ip("addr", "add", `${ADDR[name].v4}/24`, "dev", "eth0");
      pod.ip("-6", "addr", "add", `${ADDR[name].v6}/64`, "dev", "eth0", "nodad");
      pod.ip("route", "add", "default", "via", ADDR.node.v4);
      pod.ip("-6", "route", "add", "default", "via", ADDR.node.v6);
    }

    lab.link(node, "ext0", external, "eth0");
    node.ip("addr", "add", `${ADDR.nodeExternal.v4}/24`, "dev", "ext0");
    node.ip("-6", "addr", "add", `${ADDR.nodeExternal.v6}/64`, "dev", "ext0", "nodad");
    external.ip("addr", "add", `${ADDR.external.v4}/24`, "dev", "eth0");
    external.ip("-6", "addr", "add", `${ADDR.external.v6}/64`, "dev", "eth0", "nodad");
    external.ip("route", "add", "default", "via", ADDR.nodeExternal.v4);
    external.ip("-6", "route", "add", "default", "via", ADDR.nodeExternal.v6);
    node.sysctl("net.ipv4.ip_forward", "1");
    node.sysctl("net.ipv6.conf.all.forwarding", "1");

    const routeClientViaGateway = (via: boolean): void => {
      const v4 = via ? ADDR.gateway.v4 : ADDR.node.v4;
      const v6 = via ? ADDR.gateway.v6 : ADDR.node.v6;
      client.ip("route", "replace", ADDR.externalNet.v4, "via", v4);
      client.ip("-6", "route", "replace", ADDR.externalNet.v6, "via", v6);
    };
    routeClientViaGateway(false);

    let nodeToClientViaGateway = false;
    const routeNodeToClientViaGateway = (via: boolean): void => {
      if (via === nodeToClientViaGateway) return;
      const [v4, v6] = [`${ADDR.client.v4}/32`, `${ADDR.client.v6}/128`];
      if (via) {
        node.ip("route", "add", v4, "via", ADDR.gateway.v4);
        node.ip("-6", "route", "add", v6, "via", ADDR.gateway.v6);
      } else {
        node.ip("route", "del", v4, "via", ADDR.gateway.v4);
        node.ip("-6", "route", "del", v6, "via", ADDR.gateway.v6);
      }
      nodeToClientViaGateway = via;
    };

    const startPeerEcho = async (port = PEER_ECHO_PORT): Promise<PeerEcho> => {
      const hosts = [ADDR.external.v4, ADDR.external.v6].flatMap((host) => ["--host", host]);
      const { ready } = await lab.startProgram(external, "peer-echo.ts", ["--port", String(port), ...hosts]);
      const { listening } = JSON.parse(ready) as { listening: string[] };
      const bound = Number(/\d+$/.exec(listening[0] ?? "")?.[0]);
      return {
        port: bound,
        url: (family) =>
          family === 4 ? `http://${ADDR.external.v4}:${bound}/` : `http://[${ADDR.external.v6}]:${bound}/`,
      };
    };
    const httpClient = (ns: Namespace): Promise<NamespaceHttpClient> => NamespaceHttpClient.start(lab, ns);
    return {
      lab,
      node,
      client,
      gateway,
      external,
      routeClientViaGateway,
      routeNodeToClientViaGateway,
      startPeerEcho,
      httpClient,
      destroy,
    };
  } catch (error) {
    destroy();
    throw error;
  }
}
