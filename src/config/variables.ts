// Every environment variable the image reads, with its default, in one table: the
// parser takes its defaults from here, and docs and drift tests read the same rows.

/** Which entrypoint reads the variable. */
export type Reader = "init" | "gateway" | "both";

export interface Variable {
  readonly name: string;
  /** Used when the variable is unset, empty or blank; "" means "none". */
  readonly default: string;
  readonly who: Reader;
  /** True for variables the commercial image does not have. */
  readonly ours: boolean;
  readonly description: string;
}

export const variables = [
  {
    name: "EGRESS_POD_IP",
    default: "",
    who: "both",
    ours: false,
    description: "The pod's own IP (downward API status.podIP). Init needs this or EGRESS_POD_IPS.",
  },
  {
    name: "EGRESS_POD_IPS",
    default: "",
    who: "both",
    ours: false,
    description:
      "Comma list of the pod's IPs (status.podIPs), at most one IPv4 and one IPv6; preferred over EGRESS_POD_IP.",
  },
  {
    name: "EGRESS_VXLAN_VNI",
    default: "4097",
    who: "both",
    ours: false,
    description: "VNI of vxlan0 and of programmed FDB entries; 1..16777215.",
  },
  {
    name: "EGRESS_VXLAN_PORT",
    default: "4790",
    who: "init",
    ours: false,
    description: "UDP port of vxlan0; 1..65535.",
  },
  {
    name: "IPTABLES_BACKEND",
    default: "auto",
    who: "init",
    ours: false,
    description: "auto, nft or legacy: which iptables flavour to use when rules are written with iptables.",
  },
  {
    name: "DATAPLANE",
    default: "auto",
    who: "init",
    ours: false,
    description: "auto, iptables or nftables: how NAT and MSS rules are written; auto prefers nftables.",
  },
  {
    name: "ICMP_PROBE_IPS",
    default: "",
    who: "gateway",
    ours: false,
    description: "Comma list of IPv4/IPv6 addresses to ping; empty disables ICMP probes.",
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
    who: "gateway",
    ours: false,
    description:
      "Comma list of http:// or https:// URLs to GET (write a comma inside a URL as %2C); empty disables.",
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
    description: "When true, only 2xx/3xx responses count as success; by default any response does.",
  },
  {
    name: "HEALTH_PORT",
    default: "8080",
    who: "gateway",
    ours: false,
    description: "Port of the health server (/readiness, /liveness); 0 disables it.",
  },
  {
    name: "HEALTH_LISTEN_ADDRESS",
    default: "",
    who: "gateway",
    ours: true,
    description: "IP address the health server binds to; default the pod IPv4, else loopback.",
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
    description: "trace, debug, info, warn (warning), error, fatal (panic); any letter case.",
  },
  {
    name: "DAEMON_SOCKET_PATH",
    default: "",
    who: "gateway",
    ours: false,
    description:
      "Absolute path of the policy-sync socket; default the first that exists of " +
      "/var/run/calico/nodeagent/socket and /var/run/nodeagent/socket.",
  },
  {
    name: "SNAT_PORT_RANGE",
    default: "1024-65535",
    who: "both",
    ours: true,
    description:
      "First-last source port that SNAT allocates for TCP and UDP, fully random; also the range port telemetry counts as available.",
  },
  {
    name: "DRAIN_TIMEOUT",
    default: "25s",
    who: "gateway",
    ours: true,
    description: "After SIGTERM, how long to keep serving (not ready) before exiting 0; 0s..1h.",
  },
] as const satisfies readonly Variable[];

export type VariableName = (typeof variables)[number]["name"];

const defaults: ReadonlyMap<string, string> = new Map(variables.map((v) => [v.name, v.default]));

export function defaultOf(name: VariableName): string {
  return defaults.get(name) ?? "";
}
