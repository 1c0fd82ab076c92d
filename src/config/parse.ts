// Environment in, frozen typed config out. Pure: the caller passes the environment,
// and the only thing that can escape is a ConfigError naming the variable at fault.

import type { IpFamily } from "../ip/address.js";
import { parseIpLiteral } from "../ip/literal.js";
import { quote } from "./errors.js";
import { invalid, read, type Environment, type Setting } from "./setting.js";
import {
  Adjustments,
  dataplaneCheckInterval,
  datastoreTimeout,
  drainTimeout,
  healthTimeout,
  MAX_HEADER_TIMEOUT_MS,
  MAX_KEEPALIVE_TIMEOUT_MS,
  probeTiming,
  telemetryInterval,
} from "./timing.js";
import type { Config, LogLevel, PortRange } from "./types.js";

export type { Environment };

export interface ParseOptions {
  /** Init cannot derive the VXLAN MAC or SNAT without the pod's address; the gateway can run without it. */
  readonly requirePodIp: boolean;
}

export function parseConfig(env: Environment, options: ParseOptions): Config {
  const pod = podAddresses(env, options.requirePodIp);
  const icmpTargets = probeTargets(read(env, "ICMP_PROBE_IPS"));
  const httpUrls = probeUrls(read(env, "HTTP_PROBE_URLS"));
  const adjustments = new Adjustments();
  return deepFreeze<Config>({
    podIPv4: pod.get(4),
    podIPv6: pod.get(6),
    vxlan: {
      vni: integer(read(env, "EGRESS_VXLAN_VNI"), 1, 16_777_215),
      port: integer(read(env, "EGRESS_VXLAN_PORT"), 1, 65_535),
    },
    iptablesBackend: choice(read(env, "IPTABLES_BACKEND"), ["auto", "nft", "legacy"] as const),
    dataplane: choice(read(env, "DATAPLANE"), ["auto", "iptables", "nftables"] as const),
    snatPorts: portRange(read(env, "SNAT_PORT_RANGE")),
    icmpProbe: {
      targets: icmpTargets,
      ...probeTiming(env, "ICMP_PROBE_INTERVAL", "ICMP_PROBE_TIMEOUT", icmpTargets.length > 0, adjustments),
    },
    httpProbe: {
      urls: httpUrls,
      requireSuccessStatus: boolean(read(env, "HTTP_PROBE_REQUIRE_SUCCESS")),
      ...probeTiming(env, "HTTP_PROBE_INTERVAL", "HTTP_PROBE_TIMEOUT", httpUrls.length > 0, adjustments),
    },
    health: {
      port: integer(
        read(env, "HEALTH_PORT"),
        0,
        65_535,
        "0 to disable the health server, or a port from 1 to 65535",
      ),
      listenAddress: listenAddress(read(env, "HEALTH_LISTEN_ADDRESS")),
      datastoreTimeoutMs: datastoreTimeout(env, adjustments),
      maxConnections: integer(read(env, "HEALTH_MAX_CONNECTIONS"), 16, 1_048_576),
      headerTimeoutMs: healthTimeout(env, "HEALTH_HEADER_TIMEOUT", MAX_HEADER_TIMEOUT_MS),
      keepAliveTimeoutMs: healthTimeout(env, "HEALTH_KEEPALIVE_TIMEOUT", MAX_KEEPALIVE_TIMEOUT_MS),
    },
    logLevel: logLevel(read(env, "LOG_SEVERITY")),
    daemonSocketPath: socketPath(read(env, "DAEMON_SOCKET_PATH")),
    drainMs: drainTimeout(env),
    drainMinMs: drainTimeout(env, "DRAIN_MIN"),
    flowLogs: {
      enabled: boolean(read(env, "FLOW_LOGS")),
      ratePerSecond: integer(
        read(env, "FLOW_LOGS_RATE"),
        0,
        1_000_000,
        "0 for no limit, or lines per second from 1 to 1000000",
      ),
    },
    dataplaneCheckMs: dataplaneCheckInterval(env),
    telemetry: {
      intervalMs: telemetryInterval(env),
      topN: integer(read(env, "TELEMETRY_TOP_N"), 0, 100),
      maxPortUtilization: ratio(read(env, "READINESS_MAX_PORT_UTILIZATION")),
    },
    adjustments: adjustments.list,
  });
}

function listEntries(text: string): string[] {
  return text
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "");
}

// Decimal digits only: "1e3", "0x10", "+5" and "4 097" are typos, not numbers.
function integer(
  setting: Setting,
  min: number,
  max: number,
  expected = `an integer from ${min} to ${max}`,
): number {
  if (!/^\d+$/.test(setting.text)) throw invalid(setting, "is not a whole decimal number", expected);
  const value = Number(setting.text);
  if (value < min || value > max) throw invalid(setting, "is out of range", expected);
  return value;
}

function choice<T extends string>(setting: Setting, choices: readonly T[]): T {
  const lower = setting.text.toLowerCase();
  const found = choices.find((c) => c === lower);
  if (found === undefined) {
    throw invalid(setting, "is not a known value", `one of ${choices.join(", ")} (any letter case)`);
  }
  return found;
}

const EXPECTED_PORT_RANGE = "a port range FIRST-LAST within 1-65535, such as 1024-65535";

function portRange(setting: Setting): PortRange {
  const match = /^(\d+)-(\d+)$/.exec(setting.text);
  if (match === null) throw invalid(setting, "is not a range FIRST-LAST", EXPECTED_PORT_RANGE);
  const [first, last] = [Number(match[1]), Number(match[2])];
  if (first < 1 || last > 65_535) throw invalid(setting, "is out of range", EXPECTED_PORT_RANGE);
  if (first > last) throw invalid(setting, "starts after it ends", EXPECTED_PORT_RANGE);
  return { first, last };
}

/** A ratio above 0 and at most 1 ("0.9"); unset gives undefined. */
function ratio(setting: Setting): number | undefined {
  if (setting.text === "") return undefined;
  const expected = "a ratio above 0 and at most 1, such as 0.9";
  if (!/^(?:\d+(?:\.\d*)?|\.\d+)$/.test(setting.text)) {
    throw invalid(setting, "is not a decimal number", expected);
  }
  const value = Number(setting.text);
  if (value <= 0 || value > 1) throw invalid(setting, "is out of range", expected);
  return value;
}

const BOOLEANS: ReadonlyMap<string, boolean> = new Map([
  ["true", true],
  ["yes", true],
  ["1", true],
  ["false", false],
  ["no", false],
  ["0", false],
]);

function boolean(setting: Setting): boolean {
  const value = BOOLEANS.get(setting.text.toLowerCase());
  if (value === undefined) throw invalid(setting, "is not a boolean", "true, false, yes, no, 1 or 0");
  return value;
}

const LOG_LEVELS: ReadonlyMap<string, LogLevel> = new Map([
  ["trace", "trace"],
  ["debug", "debug"],
  ["info", "info"],
  ["warn", "warn"],
  ["warning", "warn"],
  ["error", "error"],
  ["fatal", "fatal"],
  ["panic", "fatal"], // logrus has panic; pino's most severe level is fatal
]);

function logLevel(setting: Setting): LogLevel {
  const level = LOG_LEVELS.get(setting.text.toLowerCase());
  if (level === undefined) {
    throw invalid(setting, "is not a log level", "trace, debug, info, warn, warning, error, fatal or panic");
  }
  return level;
}

const EXPECTED_PROBE_IPS =
  "a comma-separated list of IPv4/IPv6 addresses, such as 8.8.8.8,2001:4860:4860::8888";

function probeTargets(setting: Setting): string[] {
  const targets = new Set<string>();
  for (const entry of listEntries(setting.text)) {
    const ip = parseIpLiteral(entry);
    if (!ip.ok) throw invalid(setting, `has an entry ${quote(entry)} that ${ip.problem}`, EXPECTED_PROBE_IPS);
    if (ip.unspecified) {
      // Linux answers a ping to 0.0.0.0 or :: from the pod itself: a probe that always succeeds.
      throw invalid(setting, `has the unspecified address ${quote(entry)} as an entry`, EXPECTED_PROBE_IPS);
    }
    targets.add(ip.address);
  }
  return [...targets];
}

const EXPECTED_URLS =
  "a comma-separated list of http:// or https:// URLs, such as https://example.com/healthz";

type ProbeUrl =
  { readonly ok: true; readonly href: string } | { readonly ok: false; readonly problem: string };

function probeUrl(entry: string): ProbeUrl {
  // The URL parser silently drops tabs and newlines inside a URL; a probe must hit what was written.
  if (/[\s\p{Cc}]/u.test(entry)) return { ok: false, problem: "contains whitespace or control characters" };
  if (!URL.canParse(entry)) return { ok: false, problem: "is not an absolute URL" };
  const url = new URL(entry);
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return { ok: false, problem: `has the scheme ${quote(url.protocol.slice(0, -1))}, not http or https` };
  }
  if (!/^https?:\/\//i.test(entry)) return { ok: false, problem: "does not start with http:// or https://" };
  if (url.hostname === "") return { ok: false, problem: "has no host" };
  return { ok: true, href: url.href };
}

function probeUrls(setting: Setting): string[] {
  const urls = new Set<string>();
  for (const entry of listEntries(setting.text)) {
    const url = probeUrl(entry);
    if (!url.ok) throw invalid(setting, `has an entry ${quote(entry)} that ${url.problem}`, EXPECTED_URLS);
    urls.add(url.href);
  }
  return [...urls];
}

const EXPECTED_POD_IP = "the pod's IP address from the downward API (fieldRef status.podIP)";
const EXPECTED_POD_IPS =
  "the pod's IP addresses from the downward API (fieldRef status.podIPs): at most one IPv4 and one IPv6, comma-separated";

/** The pod's addresses by family; the IPv4 one, when present, is the gateway's identity. */
function podAddresses(env: Environment, required: boolean): ReadonlyMap<IpFamily, string> {
  const list = read(env, "EGRESS_POD_IPS");
  const single = read(env, "EGRESS_POD_IP");
  // Checked even when EGRESS_POD_IPS wins: a malformed value there means a broken manifest.
  const fromSingle = single.isDefault ? new Map() : podAddressList(single, [single.text], EXPECTED_POD_IP);
  const pod = list.isDefault ? fromSingle : podAddressList(list, listEntries(list.text), EXPECTED_POD_IPS);
  if (required && pod.size === 0) {
    if (list.isDefault) throw invalid(single, "is not set, and neither is EGRESS_POD_IPS", EXPECTED_POD_IP);
    throw invalid(list, "has no address", EXPECTED_POD_IPS);
  }
  return pod;
}

function podAddressList(
  setting: Setting,
  entries: readonly string[],
  expected: string,
): Map<IpFamily, string> {
  const byFamily = new Map<IpFamily, string>();
  for (const entry of entries) {
    // A one-entry value reads better without "has an entry … that".
    const subject = entry === setting.text ? "" : `has an entry ${quote(entry)} that `;
    const ip = parseIpLiteral(entry);
    if (!ip.ok) throw invalid(setting, `${subject}${ip.problem}`, expected);
    if (ip.unspecified)
      throw invalid(setting, `${subject}is the unspecified address, not a pod IP`, expected);
    if (byFamily.has(ip.family))
      throw invalid(setting, `has more than one IPv${ip.family} address`, expected);
    byFamily.set(ip.family, ip.address);
  }
  return byFamily;
}

function listenAddress(setting: Setting): string | undefined {
  if (setting.isDefault) return undefined;
  const ip = parseIpLiteral(setting.text);
  if (!ip.ok)
    throw invalid(setting, ip.problem, "an IP address to bind the health server to, such as 127.0.0.1 or ::");
  return ip.address;
}

// sun_path holds 108 bytes including the terminating NUL; a longer path cannot be connected to.
const MAX_SOCKET_PATH_BYTES = 107;
const EXPECTED_SOCKET_PATH = "an absolute path of a unix socket, such as /var/run/nodeagent/socket";

function socketPath(setting: Setting): string | undefined {
  if (setting.isDefault) return undefined;
  if (!setting.text.startsWith("/")) throw invalid(setting, "is not an absolute path", EXPECTED_SOCKET_PATH);
  if (setting.text.includes("\0")) throw invalid(setting, "contains a NUL character", EXPECTED_SOCKET_PATH);
  if (Buffer.byteLength(setting.text) > MAX_SOCKET_PATH_BYTES) {
    throw invalid(setting, `is longer than ${MAX_SOCKET_PATH_BYTES} bytes`, EXPECTED_SOCKET_PATH);
  }
  return setting.text;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const member of Object.values(value)) deepFreeze(member);
    Object.freeze(value);
  }
  return value;
}
