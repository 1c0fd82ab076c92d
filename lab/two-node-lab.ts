// The two-node VXLAN lab of LAB.md: the topology that exercises the
// policy-sync return path end to end (SPEC §5.1, §6). Every address is from the
// documentation ranges and exists only inside these namespaces.
//
//   client pod ─ client node ══ underlay 198.18.0.0/24 ══ gateway node ─ gateway pod
//   .100.10      .0.1, egress.calico,                     .0.2           .100.66, vxlan0
//                tunnel address .100.1 on lo                │
//                                                         external host 203.0.113.10
//
// Pods are wired as Calico wires them: a /32 on eth0 and a default route via a
// next hop that the node's end of the veth holds (Calico uses 169.254.1.1 with
// proxy ARP; here 198.18.255.1, from the lab ranges). The client node routes the
// client's external traffic, by a per-client rule, to `default via <gateway>
// dev egress.calico onlink`; egress.calico has the client node's MAC (SPEC §5.1)
// and a neighbour and FDB entry for the gateway. The gateway's answers go back
// over vxlan0 to the client node's VXLAN tunnel address, which lies inside the
// client node's block: only the exit route keeps them out of vxlan0. The gateway
// node routes only the client node's own addresses, not the client pod's block,
// so that the programmed return path is the only way back to the client.
import type { KeptRoute, RouteView, Route, TunnelType } from "../src/sync/types.js";
import { nodeMac, vxlanMac } from "../src/pod-network/mac.js";
import { runCommand } from "../src/exec/run-command.js";
import { startGatewayProcess, type GatewayProcess } from "./gateway-process.js";
import type { Namespace } from "./netns.js";
import { teardownOnExit } from "./exit-hooks.js";
import { describeInit, INIT_GATEWAY } from "./gateway-pod.js";
import { NamespaceHttpClient } from "./namespace-http.js";
import { RunLab } from "./run-lab.js";
import { NO_ROUTE_TYPES, routeOf } from "./routes.js";

export const VNI = 4097;
export const VXLAN_PORT = 4790;
/** HEALTH_PORT of the gateway that startGateway() runs; it listens on the gateway pod's IP. */
export const HEALTH_PORT = 8080;
/** Per-client routing table on the client node, as the node agent would make it. */
const CLIENT_TABLE = 200;

export const TWO_NODE = {
  clientNode: { name: "client-node", underlay: "198.18.0.1", tunnel: "198.51.100.1" },
  gatewayNode: { name: "gateway-node", underlay: "198.18.0.2", external: "203.0.113.1" },
  clientPod: { ip: "198.51.100.10", block: "198.51.100.0/26" },
  gatewayPod: { ip: "198.51.100.66", block: "198.51.100.64/26" },
  /** The next hop of every pod's default route, held by the node's end of the pod's veth. */
  podGateway: "198.18.255.1",
  external: { ip: "203.0.113.10", net: "203.0.113.0/24" },
} as const;

/**
 * The address the client node's VXLAN packets leave from: its VXLAN tunnel address
 * (VXLAN pool: the route to the gateway goes through vxlan.calico) or its node IP
 * (no tunnel, or cross-subnet within one subnet).
 */
export type SendFrom = "tunnel" | "node";

/** What the gateway pod's kernel holds of the return path, one line per entry as `ip`/`bridge` print it, sorted. */
export interface ProgrammedEntries {
  /** `ip route show proto 0x45`: routes on vxlan0 and exit routes on eth0. */
  readonly routes: readonly string[];
  /** `ip neigh show dev vxlan0 nud permanent`. */
  readonly neighbours: readonly string[];
  /** `bridge fdb show dev vxlan0`, the entries with a remote (`dst`) only. */
  readonly fdb: readonly string[];
}

export interface TwoNodeLabOptions {
  /** Also tear down on process exit and on SIGINT/SIGTERM/SIGHUP (default true). */
  readonly teardownOnExit?: boolean;
  /** Default "tunnel". */
  readonly clientSendsFrom?: SendFrom;
}

export interface TwoNodeLab {
  readonly lab: RunLab;
  readonly clientNode: Namespace;
  readonly gatewayNode: Namespace;
  readonly clientPod: Namespace;
  readonly gatewayPod: Namespace;
  readonly external: Namespace;
  /**
   * Prepares the gateway pod: `script` runs init-gateway.sh (needs `npm run build`),
   * `manual` does what SPEC §3 asks by hand (vxlan0, SNAT, sysctls). Returns one summary line.
   */
  initGateway(mode: "script" | "manual"): Promise<string>;
  /**
   * Recreates egress.calico with `local` = the client node's tunnel address or node IP. The
   * gateway's FDB entry for the node must name that same address: with learning on (as
   * SPEC §3 creates vxlan0) the kernel drops packets from a node whose source address
   * differs from its permanent FDB entry.
   */
  clientSendsFrom(from: SendFrom): void;
  /** What the route store holds on the gateway's node for this lab (tunnel: the client node's VXLAN tunnel). */
  snapshot(options?: { readonly tunnel?: boolean }): RouteView;
  /** Starts lab/peer-echo.ts on the external host; resolves with its URL once it listens. */
  startPeerEcho(port?: number): Promise<string>;
  httpClient(ns: Namespace): Promise<NamespaceHttpClient>;
  /**
   * Starts the built start-gateway.sh in the gateway pod, as kubelet would: EGRESS_POD_IP, the
   * lab's VNI and HEALTH_PORT, then `env` on top. `wrapper` runs inside the namespace, before
   * the script (for example unshare with a private /var/run). destroy() kills it.
   */
  startGateway(
    env?: Record<string, string>,
    options?: { readonly wrapper?: readonly string[] },
  ): GatewayProcess;
  /** `http://<gateway pod IP>:HEALTH_PORT<path>`: reachable from the gateway node (where kubelet polls). */
  healthUrl(path: "/readiness" | "/liveness" | "/metrics"): string;
  /** The return path as the gateway pod's kernel holds it now. */
  programmed(): ProgrammedEntries;
  /** Kills every process started in the lab, then deletes its namespaces. Safe to call twice. */
  destroy(): void;
}

/** Wires `pod` to `node` the Calico way: veth `eth0` in the pod, /32, default via the shared next hop. */
function wirePod(lab: RunLab, node: Namespace, pod: Namespace, hostSide: string, ip: string): void {
  lab.link(pod, "eth0", node, hostSide);
  pod.ip("addr", "add", `${ip}/32`, "dev", "eth0");
  pod.ip("route", "add", TWO_NODE.podGateway, "dev", "eth0", "scope", "link");
  pod.ip("route", "add", "default", "via", TWO_NODE.podGateway, "dev", "eth0");
  node.ip("addr", "add", `${TWO_NODE.podGateway}/32`, "dev", hostSide);
  node.ip("route", "add", `${ip}/32`, "dev", hostSide, "scope", "link");
}

/** One `ip` command written as it would be typed (no quoting: lab values have no spaces). */
const ipLine = (ns: Namespace, line: string): string => ns.ip(...line.split(" "));
const bridgeLine = (ns: Namespace, line: string): string => ns.exec("bridge", line.split(" "));

function sysctls(ns: Namespace, settings: Record<string, string>): void {
  for (const [key, value] of Object.entries(settings)) ns.sysctl(key, value);
}

export function buildTwoNodeLab(tag = "twonode", options: TwoNodeLabOptions = {}): TwoNodeLab {
  const lab = new RunLab(tag);
  const destroy =
    options.teardownOnExit === false ? () => lab.destroy() : teardownOnExit(() => lab.destroy());
  try {
    const clientNode = lab.ns("cnode");
    const gatewayNode = lab.ns("gnode");
    const clientPod = lab.ns("cpod");
    const gatewayPod = lab.ns("gpod");
    const external = lab.ns("ext");
    const { clientNode: cn, gatewayNode: gn } = TWO_NODE;

    lab.link(clientNode, "ul0", gatewayNode, "ul0");
    clientNode.ip("addr", "add", `${cn.underlay}/24`, "dev", "ul0");
    gatewayNode.ip("addr", "add", `${gn.underlay}/24`, "dev", "ul0");
    wirePod(lab, clientNode, clientPod, "veth-client", TWO_NODE.clientPod.ip);
    wirePod(lab, gatewayNode, gatewayPod, "veth-gw", TWO_NODE.gatewayPod.ip);
    lab.link(gatewayNode, "ext0", external, "eth0");
    gatewayNode.ip("addr", "add", `${gn.external}/24`, "dev", "ext0");
    external.ip("addr", "add", `${TWO_NODE.external.ip}/24`, "dev", "eth0");
    external.ip("route", "add", "default", "via", gn.external);

    // Underlay: the client node reaches the gateway pod; the gateway node reaches the client node's tunnel address.
    clientNode.ip("addr", "add", `${cn.tunnel}/32`, "dev", "lo");
    clientNode.ip("route", "add", TWO_NODE.gatewayPod.block, "via", gn.underlay);
    gatewayNode.ip("route", "add", `${cn.tunnel}/32`, "via", cn.underlay);

    const gwMac = vxlanMac(TWO_NODE.gatewayPod.ip);
    // The node agent marks the client's traffic to non-cluster destinations; a rule on the destination stands in for the mark.
    ipLine(
      clientNode,
      `rule add from ${TWO_NODE.clientPod.ip} to ${TWO_NODE.external.net} lookup ${CLIENT_TABLE} priority 100`,
    );
    // The client node's egress.calico, as the node agent makes it (SPEC §6), sending from `local`.
    const clientSendsFrom = (from: SendFrom): void => {
      clientNode.exec("sh", ["-c", "ip link del egress.calico 2>/dev/null; true"]);
      const local = from === "tunnel" ? cn.tunnel : cn.underlay;
      ipLine(
        clientNode,
        `link add egress.calico address ${nodeMac(cn.name)} type vxlan id ${VNI} dstport ${VXLAN_PORT} local ${local} dev ul0`,
      );
      clientNode.sysctl("net/ipv4/conf/egress.calico/rp_filter", "0");
      clientNode.ip("link", "set", "egress.calico", "up");
      ipLine(
        clientNode,
        `neigh replace ${TWO_NODE.gatewayPod.ip} lladdr ${gwMac} dev egress.calico nud permanent`,
      );
      bridgeLine(
        clientNode,
        `fdb replace ${gwMac} dev egress.calico dst ${TWO_NODE.gatewayPod.ip} self permanent`,
      );
      ipLine(
        clientNode,
        `route replace default via ${TWO_NODE.gatewayPod.ip} dev egress.calico onlink table ${CLIENT_TABLE}`,
      );
    };

    const forwarding = {
      "net.ipv4.ip_forward": "1",
      "net.ipv4.conf.all.rp_filter": "0",
      "net.ipv4.conf.default.rp_filter": "0",
    };
    sysctls(clientNode, forwarding);
    sysctls(gatewayNode, forwarding);
    clientSendsFrom(options.clientSendsFrom ?? "tunnel");

    const initGateway = async (mode: "script" | "manual"): Promise<string> => {
      if (mode === "script") {
        const result = await lab.run(gatewayPod, INIT_GATEWAY, [], {
          env: {
            PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin",
            EGRESS_POD_IP: TWO_NODE.gatewayPod.ip,
            EGRESS_VXLAN_VNI: String(VNI),
            EGRESS_VXLAN_PORT: String(VXLAN_PORT),
          },
          timeoutMs: 30_000,
        });
        if (result.code !== 0)
          throw new Error(`init-gateway.sh in ${gatewayPod.name}: ${describeInit(result)}`);
        return describeInit(result);
      }
      ipLine(
        gatewayPod,
        `link add vxlan0 address ${gwMac} type vxlan id ${VNI} dstport ${VXLAN_PORT} dev eth0`,
      );
      gatewayPod.ip("link", "set", "vxlan0", "up");
      const nat = [
        "table ip egt_snat {",
        "  chain postrouting {",
        "    type nat hook postrouting priority srcnat; policy accept;",
        `    oifname "eth0" ip saddr != ${TWO_NODE.gatewayPod.ip} snat to ${TWO_NODE.gatewayPod.ip}`,
        "  }",
        "}",
      ];
      const loaded = await runCommand(
        ["ip", "netns", "exec", gatewayPod.name, "nft", "-f", "-"],
        nat.join("\n"),
      );
      if (!loaded.ok) throw new Error(`nft in ${gatewayPod.name}: ${loaded.stderr.trim()}`);
      sysctls(gatewayPod, {
        "net.ipv4.conf.all.send_redirects": "0",
        "net.ipv4.conf.default.send_redirects": "0",
        "net.ipv4.conf.eth0.send_redirects": "0",
        "net.ipv4.conf.all.rp_filter": "0",
        "net.ipv4.conf.vxlan0.rp_filter": "0",
        "net.ipv4.ip_forward": "1",
      });
      return "vxlan0, SNAT and forwarding set up by hand";
    };

    const startPeerEcho = async (port = 0): Promise<string> => {
      const { ready } = await lab.startProgram(external, "peer-echo.ts", [
        "--port",
        String(port),
        "--host",
        TWO_NODE.external.ip,
      ]);
      const { listening } = JSON.parse(ready) as { listening: string[] };
      return `http://${listening[0] ?? ""}/`;
    };

    const startGateway = (
      env: Record<string, string> = {},
      startOptions: { readonly wrapper?: readonly string[] } = {},
    ): GatewayProcess => {
      const gateway = startGatewayProcess(
        {
          EGRESS_POD_IP: TWO_NODE.gatewayPod.ip,
          EGRESS_VXLAN_VNI: String(VNI),
          HEALTH_PORT: String(HEALTH_PORT),
          ...env,
        },
        { netns: gatewayPod.name, wrapper: startOptions.wrapper },
      );
      lab.track(gateway.child);
      return gateway;
    };

    return {
      lab,
      clientNode,
      gatewayNode,
      clientPod,
      gatewayPod,
      external,
      initGateway,
      clientSendsFrom,
      snapshot: (o = {}) => labSnapshot(o.tunnel ?? true),
      startPeerEcho,
      httpClient: (ns) => NamespaceHttpClient.start(lab, ns),
      startGateway,
      healthUrl: (path) => `http://${TWO_NODE.gatewayPod.ip}:${HEALTH_PORT}${path}`,
      programmed: () => programmedEntries(gatewayPod),
      destroy,
    };
  } catch (error) {
    destroy();
    throw error;
  }
}

const lines = (text: string): string[] =>
  text
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean)
    .sort();

function programmedEntries(pod: Namespace): ProgrammedEntries {
  return {
    routes: lines(pod.ip("route", "show", "proto", "0x45")),
    neighbours: lines(pod.ip("neigh", "show", "dev", "vxlan0", "nud", "permanent")),
    fdb: lines(pod.exec("bridge", ["fdb", "show", "dev", "vxlan0"])).filter((line) => line.includes(" dst ")),
  };
}

const NO_TUNNEL: TunnelType = { ipip: false, vxlan: false, wireguard: false };

const labRoute = (dst: string, fields: Partial<Route>): KeptRoute =>
  routeOf(dst, { natOutgoing: true, ...fields });

/** The routes the node agent would send the gateway in this lab, as the route store keeps them. */
function labSnapshot(tunnel: boolean): RouteView {
  const { clientNode, gatewayNode } = TWO_NODE;
  const types = NO_ROUTE_TYPES;
  const ours = labRoute(TWO_NODE.gatewayPod.block, {
    types: { ...types, localWorkload: true },
    dstNodeName: gatewayNode.name,
    dstNodeIp: gatewayNode.underlay,
    localWorkload: true,
  });
  const tunnels = tunnel
    ? [
        labRoute(`${clientNode.tunnel}/32`, {
          types: { ...types, remoteTunnel: true },
          dstNodeName: clientNode.name,
          dstNodeIp: clientNode.underlay,
          tunnelType: { ...NO_TUNNEL, vxlan: true },
        }),
      ]
    : [];
  const client = labRoute(TWO_NODE.clientPod.block, {
    types: { ...types, remoteWorkload: true },
    dstNodeName: clientNode.name,
    dstNodeIp: clientNode.underlay,
  });
  return {
    ourRoute: ours,
    tunnels: new Map(tunnels.map((r) => [r.dst, r])),
    remoteWorkloads: new Map([[client.dst, client]]),
  };
}
