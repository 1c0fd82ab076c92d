// Running the built init-gateway.sh inside lab namespaces, and reading back
// what it left: ruleset, sysctls and links as one comparable text. Plus the
// small traffic tools the end-to-end test needs (an echo server that answers
// with the peer address it saw, a client, tcpdump), all inside lab namespaces.
import { execFile, execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Namespace } from "../../lab/netns.js";
import { ROOT } from "../../lab/gateway-process.js";
import { NsProcess } from "../../lab/ns-process.js";

export const INIT_GATEWAY = join(ROOT, "init-gateway.sh");

export function ensureInitBuilt(): void {
  if (!existsSync(join(ROOT, "dist", "init", "main.js"))) {
    execFileSync("npm", ["run", "--silent", "build"], { cwd: ROOT, stdio: "inherit" });
  }
}

export interface InitRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

export interface InitRunOptions {
  readonly args?: readonly string[];
  /** Runs before `ip netns exec` (e.g. unshare with a read-only /proc/sys). */
  readonly outer?: readonly string[];
  /** Runs inside the namespace, before the script (e.g. setpriv dropping a capability). */
  readonly inner?: readonly string[];
}

/** Runs init-gateway.sh in `ns` with only PATH and `env` in its environment. */
export function runInit(
  ns: Namespace,
  env: Record<string, string>,
  options: InitRunOptions = {},
): Promise<InitRun> {
  const argv = [
    ...(options.outer ?? []),
    "ip",
    "netns",
    "exec",
    ns.name,
    ...(options.inner ?? []),
    INIT_GATEWAY,
    ...(options.args ?? []),
  ];
  const started = performance.now();
  return new Promise((resolve) => {
    execFile(
      argv[0] ?? "",
      argv.slice(1),
      { env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", ...env }, timeout: 20_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : null;
        resolve({ code, stdout, stderr, ms: performance.now() - started });
      },
    );
  });
}

function tryExec(ns: Namespace, cmd: string, args: readonly string[]): string {
  try {
    return ns.exec(cmd, args);
  } catch (error) {
    return `(${cmd} failed: ${error instanceof Error ? error.message.split("\n")[0] : String(error)})`;
  }
}

const SYSCTLS = [
  "net.netfilter.nf_conntrack_acct",
  "net.netfilter.nf_conntrack_timestamp",
  "net.ipv4.ip_forward",
  "net.ipv6.conf.all.forwarding",
  ...["all", "default", "eth0", "vxlan0"].flatMap((dev) => [
    `net.ipv4.conf.${dev}.send_redirects`,
    `net.ipv4.conf.${dev}.rp_filter`,
  ]),
];

export function sysctlValues(ns: Namespace): string {
  const script = SYSCTLS.map(
    (key) => `echo "${key} = $(cat /proc/sys/${key.replaceAll(".", "/")} 2>/dev/null || echo absent)"`,
  );
  return ns.exec("sh", ["-c", script.join("; ")]);
}

/** Everything init may change, counters and timestamps stripped, so that two dumps compare equal. */
export function dumpState(ns: Namespace): string {
  const iptables = [
    "iptables-nft-save",
    "ip6tables-nft-save",
    "iptables-legacy-save",
    "ip6tables-legacy-save",
  ].map(
    (tool) =>
      `## ${tool}\n` +
      tryExec(ns, tool, [])
        .split("\n")
        .filter((line) => !line.startsWith("#"))
        .map((line) => line.replace(/\[\d+:\d+\]/g, "[]"))
        .join("\n"),
  );
  return [
    "## nft list ruleset",
    tryExec(ns, "nft", ["list", "ruleset"]).replace(/counter packets \d+ bytes \d+/g, "counter"),
    ...iptables,
    "## sysctls",
    sysctlValues(ns),
    "## ip -d link show",
    // Bridge timers tick on their own; they are not state init could change.
    tryExec(ns, "ip", ["-d", "link", "show"]).replace(/(_timer)\s+[\d.]+/g, "$1"),
  ].join("\n");
}

/** The rules as the backend's own tool lists them, for counting copies of a rule. */
export function rulesetText(ns: Namespace, backend: "nftables" | "iptables-nft" | "iptables-legacy"): string {
  // iptables-nft rules show up in `nft list ruleset` too, translated; only our table counts here.
  if (backend === "nftables") return tryExec(ns, "nft", ["list", "table", "inet", "egress_gateway"]);
  const flavour = backend.slice("iptables-".length);
  return [`iptables-${flavour}-save`, `ip6tables-${flavour}-save`]
    .map((tool) => tryExec(ns, tool, []))
    .join("\n");
}

export function occurrences(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

export interface VxlanLink {
  readonly ifindex: number;
  readonly vni: number;
  readonly port: number;
  readonly mac: string;
  readonly dev: string;
  readonly up: boolean;
}

export function vxlanLink(ns: Namespace): VxlanLink | undefined {
  let json: string;
  try {
    json = ns.exec("ip", ["-d", "-j", "link", "show", "dev", "vxlan0"]);
  } catch {
    return undefined;
  }
  const [link] = JSON.parse(json) as {
    ifindex: number;
    address: string;
    flags: string[];
    linkinfo?: { info_data?: { id: number; port: number; link: string } };
  }[];
  if (link === undefined) return undefined;
  const data = link.linkinfo?.info_data;
  return {
    ifindex: link.ifindex,
    vni: data?.id ?? -1,
    port: data?.port ?? -1,
    dev: data?.link ?? "",
    mac: link.address,
    up: link.flags.includes("UP"),
  };
}

const ECHO_SERVER = `
const net = require("node:net");
const port = Number(process.argv[1]);
let listening = 0;
for (const [host, ipv6Only] of [["0.0.0.0", false], ["::", true]]) {
  net.createServer((socket) => socket.end(socket.remoteAddress + "\\n"))
    .listen({ host, port, ipv6Only }, () => { if (++listening === 2) console.log("ready"); });
}`;

/** A TCP server in `ns` on both families that answers each connection with the peer address it saw. */
export async function startEchoServer(ns: Namespace, port: number): Promise<NsProcess> {
  const server = new NsProcess(
    ns.spawn("node", ["-e", ECHO_SERVER, String(port)], { stdio: ["ignore", "pipe", "pipe"] }),
  );
  await server.waitFor((out) => out.includes("ready"));
  return server;
}

const ECHO_CLIENT = `
const net = require("node:net");
const socket = net.connect({ host: process.argv[1], port: Number(process.argv[2]), timeout: 4000 });
let data = "";
socket.on("data", (chunk) => (data += chunk));
socket.on("end", () => { process.stdout.write(data); process.exit(0); });
socket.on("timeout", () => { console.error("timeout"); process.exit(1); });
socket.on("error", (error) => { console.error(error.message); process.exit(1); });`;

/** Connects from `ns` and returns the address the server saw. */
export function askPeerAddress(ns: Namespace, host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      "ip",
      ["netns", "exec", ns.name, "node", "-e", ECHO_CLIENT, host, String(port)],
      { timeout: 8_000 },
      (error, stdout, stderr) =>
        error ? reject(new Error(`client to ${host}: ${stderr || error.message}`)) : resolve(stdout.trim()),
    );
  });
}

/** tcpdump on eth0 in `ns`, line-buffered, resolved once it listens. */
export async function startCapture(ns: Namespace, filter: readonly string[]): Promise<NsProcess> {
  const capture = new NsProcess(
    ns.spawn("tcpdump", ["-i", "eth0", "-n", "-l", "-U", "-v", ...filter], {
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );
  await capture.waitFor((_out, err) => err.includes("listening on"));
  return capture;
}

/** Source address, source port and MSS of each SYN (not SYN-ACK) in tcpdump -v output. */
export function synMss(capture: string): { source: string; port: number; mss: number }[] {
  const syn = /(\S+)\.(\d+) > \S+: Flags \[S\],[^\n]*?mss (\d+)/g;
  return [...capture.matchAll(syn)].map((m) => ({
    source: m[1] ?? "",
    port: Number(m[2]),
    mss: Number(m[3]),
  }));
}
