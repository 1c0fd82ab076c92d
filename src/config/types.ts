// The validated configuration shared by init and gateway. Built once from the
// environment by parseConfig() and frozen; nothing else reads process.env.

export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal";

export interface ProbeTiming {
  /** Period between two probes of one target, and each probe's own deadline. */
  readonly intervalMs: number;
  /** A group is ready while any target succeeded within this window. */
  readonly timeoutMs: number;
}

export interface IcmpProbeConfig extends ProbeTiming {
  /** IPv4 and IPv6 literals, in canonical textual form. */
  readonly targets: readonly string[];
}

export interface HttpProbeConfig extends ProbeTiming {
  readonly urls: readonly string[];
  /** Opt-in (HTTP_PROBE_REQUIRE_SUCCESS): only 2xx/3xx count. Default false: any response counts. */
  readonly requireSuccessStatus: boolean;
}

export interface HealthConfig {
  /** 0 disables the health server. */
  readonly port: number;
  /** Explicit bind address (HEALTH_LISTEN_ADDRESS); otherwise the pod IPv4, else loopback. */
  readonly listenAddress: string | undefined;
  /** Staleness timeout of the DatastoreConnection component. */
  readonly datastoreTimeoutMs: number;
  /** HEALTH_MAX_CONNECTIONS: most connections held at once, before the fd limit lowers it. */
  readonly maxConnections: number;
  /** HEALTH_HEADER_TIMEOUT: a complete request head must arrive within this time. */
  readonly headerTimeoutMs: number;
  /** HEALTH_KEEPALIVE_TIMEOUT: idle keep-alive connections are closed after this time. */
  readonly keepAliveTimeoutMs: number;
}

/**
 * A value the gateway honours only after changing it (SPEC §2: "0s" means the
 * default, a window shorter than the interval is widened). Logged at start as
 * one warning line; never fatal.
 */
export interface Adjustment {
  readonly variable: string;
  /** As written, or "<default> (default)" when unset. */
  readonly given: string;
  /** As used, formatted like a Go duration. */
  readonly used: string;
  /** The warning line: the variable, the value given, why, and the value used. */
  readonly message: string;
}

/** Source ports SNAT allocates for TCP and UDP (SNAT_PORT_RANGE), inclusive. */
export interface PortRange {
  readonly first: number;
  readonly last: number;
}

export interface FlowLogConfig {
  /** FLOW_LOGS: one line per finished forwarded connection. */
  readonly enabled: boolean;
  /** FLOW_LOGS_RATE: lines a second at most, 0 for no limit; the bucket holds twice as many. */
  readonly ratePerSecond: number;
}

export interface TelemetryConfig {
  /** Time between two kernel telemetry refreshes, and each one's deadline; 0 turns telemetry off. */
  readonly intervalMs: number;
  /** Destinations and clients listed per refresh. */
  readonly topN: number;
  /** READINESS_MAX_PORT_UTILIZATION: the SNATPortUtilization component's limit; undefined when unset. */
  readonly maxPortUtilization: number | undefined;
}

export interface Config {
  /** The pod's IPv4 address: the gateway's identity (VXLAN MAC, health bind). */
  readonly podIPv4: string | undefined;
  readonly podIPv6: string | undefined;
  readonly vxlan: { readonly vni: number; readonly port: number };
  readonly iptablesBackend: "auto" | "nft" | "legacy";
  readonly dataplane: "auto" | "iptables" | "nftables";
  readonly snatPorts: PortRange;
  readonly icmpProbe: IcmpProbeConfig;
  readonly httpProbe: HttpProbeConfig;
  readonly health: HealthConfig;
  readonly logLevel: LogLevel;
  /** DAEMON_SOCKET_PATH when set; discovery of the default paths belongs to the sync client. */
  readonly daemonSocketPath: string | undefined;
  /** How long the gateway keeps serving (503) after SIGTERM before it exits 0 (DRAIN_TIMEOUT). */
  readonly drainMs: number;
  /** DRAIN_MIN: the drain ends early once no forwarded connection is left, never before this. */
  readonly drainMinMs: number;
  readonly flowLogs: FlowLogConfig;
  /** How often the gateway checks init's work (DATAPLANE_CHECK_INTERVAL); 0: not at all. */
  readonly dataplaneCheckMs: number;
  /** What parsing had to adjust; empty for a configuration honoured as written. */
  readonly adjustments: readonly Adjustment[];
  readonly telemetry: TelemetryConfig;
}
