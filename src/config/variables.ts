// Every environment variable the image reads, with its default, in one table: the
// parser takes its defaults from here, and the README's variable table is these
// rows word for word (test/readme-reference.test.ts checks it).

/** Which entrypoint reads the variable. */
export type Reader = "init" | "gateway" | "both";

export interface Variable {
  readonly name: string;
  /** Used when the variable is unset, empty or blank; "" means "none". */
  readonly default: string;
  /** What the README's default column says when `default` is "" (e.g. "none", "pod IPv4"). */
  readonly defaultDoc?: string;
  readonly who: Reader;
  /** True for variables the commercial image does not have. */
  readonly ours: boolean;
  /** The README's meaning column (Markdown); the README prefixes "Ours. " when `ours`. */
  readonly description: string;
}

export const variables = [
  {
    name: "EGRESS_POD_IP",
    default: "",
    defaultDoc: "none",
    who: "both",
    ours: false,
    description: "The pod's IP (downward API `status.podIP`).",
  },
  {
    name: "EGRESS_POD_IPS",
    default: "",
    defaultDoc: "none",
    who: "both",
    ours: false,
    description:
      "Comma list of the pod's IPs (`status.podIPs`), at most one per family; preferred over `EGRESS_POD_IP`. The IPv4 one is the gateway's identity. Init needs one of the two; the gateway without either binds its health server to loopback (local runs).",
  },
  {
    name: "EGRESS_VXLAN_VNI",
    default: "4097",
    who: "both",
    ours: false,
    description: "VNI of `vxlan0` and of programmed FDB entries; 1..16777215.",
  },
  {
    name: "EGRESS_VXLAN_PORT",
    default: "4790",
    who: "init",
    ours: false,
    description: "UDP port of `vxlan0`; 1..65535.",
  },
  {
    name: "IPTABLES_BACKEND",
    default: "auto",
    who: "both",
    ours: false,
    description:
      "`nft` or `legacy` forces that iptables flavour; `auto` detects. The gateway uses it only when it finds no ruleset of init's.",
  },
  {
    name: "DATAPLANE",
    default: "auto",
    who: "both",
    ours: false,
    description:
      "`iptables` or `nftables`: how NAT and MSS rules are written; `auto` prefers native nftables. The gateway uses it only when it finds no ruleset of init's.",
  },
  {
    name: "ICMP_PROBE_IPS",
    default: "",
    defaultDoc: "empty",
    who: "gateway",
    ours: false,
    description:
      "Comma list of IPv4/IPv6 addresses to ping; empty disables ICMP probes. An invalid entry is fatal.",
  },
  {
    name: "ICMP_PROBE_INTERVAL",
    default: "5s",
    who: "gateway",
    ours: false,
    description:
      "Time between two pings of one target, and each ping's deadline. 0s means the default; a positive value below 100ms is raised to 100ms, with a warning.",
  },
  {
    name: "ICMP_PROBE_TIMEOUT",
    default: "15s",
    who: "gateway",
    ours: false,
    description:
      "ICMP probes are ready while any target answered within this window. 0s means the default; a window shorter than the interval is widened to twice the interval, with a warning.",
  },
  {
    name: "HTTP_PROBE_URLS",
    default: "",
    defaultDoc: "empty",
    who: "gateway",
    ours: false,
    description:
      "Comma list of `http://` / `https://` URLs; empty disables HTTP probes. Write a comma inside a URL as `%2C`.",
  },
  {
    name: "HTTP_PROBE_INTERVAL",
    default: "10s",
    who: "gateway",
    ours: false,
    description:
      "Time between two requests to one URL, and each request's deadline (connect included); as ICMP_PROBE_INTERVAL.",
  },
  {
    name: "HTTP_PROBE_TIMEOUT",
    default: "30s",
    who: "gateway",
    ours: false,
    description: "HTTP probes are ready while any URL answered within this window; as ICMP_PROBE_TIMEOUT.",
  },
  {
    name: "HTTP_PROBE_REQUIRE_SUCCESS",
    default: "false",
    who: "gateway",
    ours: true,
    description:
      "`true`: only 2xx/3xx responses count. By default any completed response counts, whatever its status, as with the commercial image.",
  },
  {
    name: "HEALTH_PORT",
    default: "8080",
    who: "gateway",
    ours: false,
    description: "Port of the health server; `0` disables it.",
  },
  {
    name: "HEALTH_LISTEN_ADDRESS",
    default: "",
    defaultDoc: "pod IPv4",
    who: "gateway",
    ours: true,
    description:
      "IP address the health server binds to. Default: the pod's IPv4 address (where kubelet and the node agents poll), else its IPv6 address, else `127.0.0.1`. Never a wildcard unless you ask for `0.0.0.0` or `::`.",
  },
  {
    name: "HEALTH_TIMEOUT_DATASTORE",
    default: "90s",
    who: "gateway",
    ours: false,
    description:
      "How long the policy-sync component stays ready without a fresh sign of life; a bare number means seconds. 0s means the default; below 1s, 1s, with a warning.",
  },
  {
    name: "LOG_SEVERITY",
    default: "info",
    who: "both",
    ours: false,
    description: "`trace`, `debug`, `info`, `warn`/`warning`, `error`, `fatal`/`panic`; any letter case.",
  },
  {
    name: "DAEMON_SOCKET_PATH",
    default: "",
    defaultDoc: "see policy sync",
    who: "gateway",
    ours: false,
    description: "Absolute path of the node agent's policy-sync unix socket.",
  },
  {
    name: "DRAIN_MIN",
    default: "35s",
    who: "gateway",
    ours: true,
    description:
      "After SIGTERM the gateway exits as soon as no forwarded connection is left, but not before this (node agents need about 30 s to notice the 503); capped by `DRAIN_TIMEOUT`; 0s..1h.",
  },
  {
    name: "FLOW_LOGS",
    default: "false",
    who: "gateway",
    ours: true,
    description: "`true`: one JSON line per finished forwarded connection on stdout (see Flow logs).",
  },
  {
    name: "FLOW_LOGS_RATE",
    default: "1000",
    who: "gateway",
    ours: true,
    description:
      "Flow-log lines per second at most (token bucket holding twice as many, for bursts); `0` for no limit. Lines over it are dropped and counted.",
  },
  {
    name: "SNAT_PORT_RANGE",
    default: "1024-65535",
    who: "both",
    ours: true,
    description:
      "Source ports SNAT gives translated TCP and UDP connections, `FIRST-LAST` within 1-65535, chosen fully at random (see Init). The gateway counts this range as the ports available toward one destination.",
  },
  {
    name: "DATAPLANE_CHECK_INTERVAL",
    default: "5s",
    who: "gateway",
    ours: true,
    description:
      "How often the gateway checks what init set up (ruleset, `vxlan0`, forwarding, redirects), repairs the ruleset and `vxlan0`, and reports the rest in `DataplaneIntegrity` (see data plane integrity); `0s` turns the check off; else 1s..1h.",
  },
  {
    name: "DRAIN_TIMEOUT",
    default: "25s",
    who: "gateway",
    ours: true,
    description:
      "After SIGTERM, how long to keep serving (answering 503) before exiting 0; 0s..1h. Set it a few seconds below the pod's `terminationGracePeriodSeconds`.",
  },
  {
    name: "HEALTH_MAX_CONNECTIONS",
    default: "4096",
    who: "gateway",
    ours: true,
    description:
      "Most connections the health server holds at once (16..1048576), lowered to fit under the open files limit.",
  },
  {
    name: "HEALTH_HEADER_TIMEOUT",
    default: "3s",
    who: "gateway",
    ours: true,
    description: "A health connection must send a complete request head within this time; 100ms..1m.",
  },
  {
    name: "HEALTH_KEEPALIVE_TIMEOUT",
    default: "5s",
    who: "gateway",
    ours: true,
    description: "Idle keep-alive connections to the health server are closed after this time; 100ms..10m.",
  },
  {
    name: "TELEMETRY_INTERVAL",
    default: "15s",
    who: "gateway",
    ours: true,
    description:
      "Time between two reads of kernel telemetry (rule counters, conntrack), and each read's deadline; 1s..1h, `0s` turns kernel telemetry off. See [Observability](#observability).",
  },
  {
    name: "TELEMETRY_TOP_N",
    default: "10",
    who: "gateway",
    ours: true,
    description:
      "How many destinations and client addresses `/metrics` lists by SNAT port use and by connections; 0..100.",
  },
  {
    name: "READINESS_MAX_PORT_UTILIZATION",
    default: "",
    who: "gateway",
    ours: true,
    description:
      "A ratio above 0 and at most 1, such as `0.9`: above it toward any one destination, the `SNATPortUtilization` component turns not ready. Unset (the default) disables it; see [Observability](#observability) for why.",
  },
] as const satisfies readonly Variable[];

export type VariableName = (typeof variables)[number]["name"];

const defaults: ReadonlyMap<string, string> = new Map(variables.map((v) => [v.name, v.default]));

export function defaultOf(name: VariableName): string {
  return defaults.get(name) ?? "";
}
