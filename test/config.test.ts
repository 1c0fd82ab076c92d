import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

import fc from "fast-check";

import {
  ConfigError,
  formatDuration,
  loadConfigOrExit,
  parseConfig,
  parseDuration,
  quote,
  variables,
  type Config,
  type Environment,
  type VariableName,
} from "../src/config/index.js";

const gateway = { requirePodIp: false };
const init = { requirePodIp: true };

const DEFAULTS: Config = {
  podIPv4: undefined,
  podIPv6: undefined,
  vxlan: { vni: 4097, port: 4790 },
  iptablesBackend: "auto",
  dataplane: "auto",
  snatPorts: { first: 1024, last: 65_535 },
  icmpProbe: { targets: [], intervalMs: 5_000, timeoutMs: 15_000 },
  httpProbe: { urls: [], requireSuccessStatus: false, intervalMs: 10_000, timeoutMs: 30_000 },
  health: {
    port: 8080,
    listenAddress: undefined,
    datastoreTimeoutMs: 90_000,
    maxConnections: 4096,
    headerTimeoutMs: 3_000,
    keepAliveTimeoutMs: 5_000,
  },
  logLevel: "info",
  daemonSocketPath: undefined,
  drainMs: 25_000,
  drainMinMs: 35_000,
  flowLogs: { enabled: false, ratePerSecond: 1_000 },
  dataplaneCheckMs: 5_000,
  adjustments: [],
  telemetry: { intervalMs: 15_000, topN: 10, maxPortUtilization: undefined },
};

// The env of both containers in /work/shared/reference/deployment.yaml, with
// status.podIP resolved from its IP pool 10.10.10.0/31.
const REFERENCE_MANIFEST: Environment = {
  EGRESS_POD_IP: "10.10.10.0",
  ICMP_PROBE_IPS: "",
  ICMP_PROBE_INTERVAL: "5s",
  ICMP_PROBE_TIMEOUT: "15s",
  HTTP_PROBE_URLS: "",
  HTTP_PROBE_INTERVAL: "10s",
  HTTP_PROBE_TIMEOUT: "30s",
  HEALTH_PORT: "8080",
};

// What the operator renders: dual-stack podIPs, capitalised severity, VXLAN variables spelt out.
const OPERATOR_LAYOUT: Environment = {
  EGRESS_POD_IPS: "10.10.10.1,fd00:10:10::1",
  EGRESS_VXLAN_VNI: "4097",
  EGRESS_VXLAN_PORT: "4790",
  LOG_SEVERITY: "Info",
  HEALTH_PORT: "8080",
  HEALTH_TIMEOUT_DATASTORE: "90",
};

function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error;
  }
  assert.fail("expected a ConfigError, got a config");
}

function assertOneLine(text: string): void {
  assert.doesNotMatch(text, /[\n\r\u0085\u2028\u2029]/);
}

describe("parseDuration (Go syntax)", () => {
  const good: [string, number][] = [
    ["500ms", 500],
    ["5s", 5_000],
    ["1m30s", 90_000],
    ["2h", 7_200_000],
    ["1.5s", 1_500],
    [".5s", 500],
    ["5.s", 5_000],
    ["300us", 0.3],
    ["300µs", 0.3],
    ["300μs", 0.3],
    ["10ns", 0.00001],
    ["1h1m1s1ms", 3_661_001],
    ["0", 0],
    ["0s", 0],
    ["+5s", 5_000],
    ["1.0000000001s", 1_000], // below a nanosecond is truncated, as in Go
  ];
  for (const [text, ms] of good) {
    it(`reads ${JSON.stringify(text)} as ${ms} ms`, () => {
      assert.deepEqual(parseDuration(text), { ok: true, ms });
    });
  }

  const bad: [string, RegExp][] = [
    ["", /not a duration/],
    ["5", /without a unit/],
    ["1m30", /without a unit/],
    ["5sec", /unknown unit "sec"/],
    ["5 s", /unknown unit " s"/],
    ["-5s", /negative/],
    ["s", /not a duration/],
    [".s", /not a duration/],
    ["1e3s", /unknown unit "e"/],
    ["3000000h", /too long/],
  ];
  for (const [text, problem] of bad) {
    it(`refuses ${JSON.stringify(text)}`, () => {
      const parsed = parseDuration(text);
      assert.equal(parsed.ok, false);
      assert.match(parsed.ok ? "" : parsed.problem, problem);
    });
  }

  it("reads a bare number as seconds only when asked to", () => {
    assert.deepEqual(parseDuration("90", "s"), { ok: true, ms: 90_000 });
    assert.deepEqual(parseDuration("1.5", "s"), { ok: true, ms: 1_500 });
    assert.deepEqual(parseDuration("90s", "s"), { ok: true, ms: 90_000 });
  });

  it("formats durations as manifests write them", () => {
    assert.deepEqual([500, 1_000, 1_500, 15_000, 60_000, 90_000, 3_600_000, 5_430_000].map(formatDuration), [
      "500ms",
      "1s",
      "1.5s",
      "15s",
      "1m",
      "1m30s",
      "1h",
      "1h30m30s",
    ]);
  });

  it("reads back what formatDuration writes", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10 * 86_400_000 }), (ms) => {
        assert.deepEqual(parseDuration(formatDuration(ms)), { ok: true, ms });
      }),
    );
  });
});

describe("parseConfig accepts", () => {
  it("an empty environment as the defaults", () => {
    assert.deepEqual(parseConfig({}, gateway), DEFAULTS);
  });

  it('an empty or blank value as the default (Kubernetes `value: ""`)', () => {
    const blank = Object.fromEntries(variables.map((v, i) => [v.name, i % 2 === 0 ? "" : "  "]));
    assert.deepEqual(parseConfig(blank, gateway), DEFAULTS);
  });

  it("every default in the variables table, written out", () => {
    const written = Object.fromEntries(variables.map((v) => [v.name, v.default]));
    assert.deepEqual(parseConfig(written, gateway), DEFAULTS);
  });

  it("the reference manifest's environment, for init and gateway", () => {
    const expected = { ...DEFAULTS, podIPv4: "10.10.10.0" };
    assert.deepEqual(parseConfig(REFERENCE_MANIFEST, init), expected);
    assert.deepEqual(parseConfig(REFERENCE_MANIFEST, gateway), expected);
  });

  it("the operator layout: dual-stack EGRESS_POD_IPS and LOG_SEVERITY=Info", () => {
    const config = parseConfig(OPERATOR_LAYOUT, init);
    assert.equal(config.podIPv4, "10.10.10.1");
    assert.equal(config.podIPv6, "fd00:10:10::1");
    assert.equal(config.logLevel, "info");
    assert.equal(config.health.datastoreTimeoutMs, 90_000);
  });

  it("EGRESS_POD_IPS over EGRESS_POD_IP, in canonical form and any order", () => {
    const config = parseConfig(
      { EGRESS_POD_IP: "10.0.0.9", EGRESS_POD_IPS: " FD00:0::0:1 , 10.0.0.1" },
      init,
    );
    assert.equal(config.podIPv4, "10.0.0.1");
    assert.equal(config.podIPv6, "fd00::1");
  });

  it("an IPv6-only pod", () => {
    const config = parseConfig({ EGRESS_POD_IP: "2001:db8::5" }, init);
    assert.equal(config.podIPv4, undefined);
    assert.equal(config.podIPv6, "2001:db8::5");
  });

  it("a sub-second probe interval", () => {
    const config = parseConfig(
      { ICMP_PROBE_IPS: "1.1.1.1", ICMP_PROBE_INTERVAL: "250ms", ICMP_PROBE_TIMEOUT: "1s" },
      gateway,
    );
    assert.deepEqual(config.icmpProbe, { targets: ["1.1.1.1"], intervalMs: 250, timeoutMs: 1_000 });
  });

  it("mixed IPv4/IPv6 probe targets, trimmed, canonical and de-duplicated", () => {
    const config = parseConfig(
      { ICMP_PROBE_IPS: " 8.8.8.8, 2001:4860:4860:0::8888,,8.8.8.8,2001:4860:4860::8888 " },
      gateway,
    );
    assert.deepEqual(config.icmpProbe.targets, ["8.8.8.8", "2001:4860:4860::8888"]);
  });

  it("http and https probe URLs, normalised and de-duplicated", () => {
    const config = parseConfig(
      {
        HTTP_PROBE_URLS: "HTTPS://Example.com/healthz,http://[2001:db8::1]:8080/,https://example.com/healthz",
      },
      gateway,
    );
    assert.deepEqual(config.httpProbe.urls, ["https://example.com/healthz", "http://[2001:db8::1]:8080/"]);
  });

  it("a timeout shorter than the interval when the group has no targets: widened, without a warning", () => {
    const config = parseConfig({ HTTP_PROBE_INTERVAL: "1m", HTTP_PROBE_TIMEOUT: "10s" }, gateway);
    assert.deepEqual([config.httpProbe.intervalMs, config.httpProbe.timeoutMs], [60_000, 120_000]);
    assert.deepEqual(config.adjustments, []);
  });

  it("fractions of a millisecond, rounded up", () => {
    const config = parseConfig(
      { ICMP_PROBE_INTERVAL: "100500us", HEALTH_TIMEOUT_DATASTORE: "1000000001ns" },
      gateway,
    );
    assert.equal(config.icmpProbe.intervalMs, 101);
    assert.equal(config.health.datastoreTimeoutMs, 1_001);
    assert.deepEqual(config.adjustments, []);
  });

  it("enumerations in any letter case, with Go log level aliases", () => {
    const config = parseConfig(
      { IPTABLES_BACKEND: "NFT", DATAPLANE: "NFTables", LOG_SEVERITY: "WARNING" },
      gateway,
    );
    assert.deepEqual(
      [config.iptablesBackend, config.dataplane, config.logLevel],
      ["nft", "nftables", "warn"],
    );
    assert.equal(parseConfig({ LOG_SEVERITY: "Panic" }, gateway).logLevel, "fatal");
    assert.equal(parseConfig({ LOG_SEVERITY: "DEBUG" }, gateway).logLevel, "debug");
  });

  it("HTTP_PROBE_REQUIRE_SUCCESS spelt in every accepted way", () => {
    for (const yes of ["true", "TRUE", "1", "yes", "Yes"]) {
      assert.equal(
        parseConfig({ HTTP_PROBE_REQUIRE_SUCCESS: yes }, gateway).httpProbe.requireSuccessStatus,
        true,
      );
    }
    for (const no of ["false", "False", "0", "no", ""]) {
      assert.equal(
        parseConfig({ HTTP_PROBE_REQUIRE_SUCCESS: no }, gateway).httpProbe.requireSuccessStatus,
        false,
      );
    }
  });

  it("HEALTH_PORT=0, a wildcard listen address, a socket path and DRAIN_TIMEOUT=0s", () => {
    const config = parseConfig(
      {
        HEALTH_PORT: "0",
        HEALTH_LISTEN_ADDRESS: "::",
        DAEMON_SOCKET_PATH: "/run/x/socket",
        DRAIN_TIMEOUT: "0s",
      },
      gateway,
    );
    assert.deepEqual(config.health, { ...DEFAULTS.health, port: 0, listenAddress: "::" });
    assert.equal(config.daemonSocketPath, "/run/x/socket");
    assert.equal(config.drainMs, 0);
  });

  it("FLOW_LOGS, FLOW_LOGS_RATE and DRAIN_MIN", () => {
    const config = parseConfig({ FLOW_LOGS: "TRUE", FLOW_LOGS_RATE: "0", DRAIN_MIN: "1m" }, gateway);
    assert.deepEqual(config.flowLogs, { enabled: true, ratePerSecond: 0 });
    assert.equal(config.drainMinMs, 60_000);
  });

  it("SNAT_PORT_RANGE: any FIRST-LAST within 1-65535, one port too", () => {
    assert.deepEqual(parseConfig({ SNAT_PORT_RANGE: " 32768-60999 " }, gateway).snatPorts, {
      first: 32_768,
      last: 60_999,
    });
    assert.deepEqual(parseConfig({ SNAT_PORT_RANGE: "5000-5000" }, gateway).snatPorts, {
      first: 5_000,
      last: 5_000,
    });
  });

  it("kernel telemetry: TELEMETRY_INTERVAL=0s turns it off, a top N and a port-utilisation limit", () => {
    const config = parseConfig(
      { TELEMETRY_INTERVAL: "0s", TELEMETRY_TOP_N: "0", READINESS_MAX_PORT_UTILIZATION: "0.9" },
      gateway,
    );
    assert.deepEqual(config.telemetry, { intervalMs: 0, topN: 0, maxPortUtilization: 0.9 });
    const other = parseConfig({ TELEMETRY_INTERVAL: "1m", READINESS_MAX_PORT_UTILIZATION: "1" }, gateway);
    assert.deepEqual(other.telemetry, { intervalMs: 60_000, topN: 10, maxPortUtilization: 1 });
  });
});

describe("parseConfig refuses", () => {
  const cases: { env: Environment; options?: { requirePodIp: boolean }; variable: string; says: RegExp }[] = [
    { env: {}, options: init, variable: "EGRESS_POD_IP", says: /is not set, and neither is EGRESS_POD_IPS/ },
    { env: { EGRESS_POD_IPS: " , " }, options: init, variable: "EGRESS_POD_IPS", says: /has no address/ },
    {
      env: { EGRESS_POD_IP: "10.0.0.256" },
      variable: "EGRESS_POD_IP",
      says: /"10.0.0.256" is not an IP address/,
    },
    { env: { EGRESS_POD_IP: "010.0.0.1" }, variable: "EGRESS_POD_IP", says: /is not an IP address/ },
    { env: { EGRESS_POD_IP: "0.0.0.0" }, variable: "EGRESS_POD_IP", says: /unspecified address/ },
    { env: { EGRESS_POD_IP: "::ffff:10.0.0.1" }, variable: "EGRESS_POD_IP", says: /IPv4-mapped/ },
    { env: { EGRESS_POD_IP: "fe80::1%eth0" }, variable: "EGRESS_POD_IP", says: /zone index/ },
    { env: { EGRESS_POD_IP: "10.0.0.1,fd00::1" }, variable: "EGRESS_POD_IP", says: /is not an IP address/ },
    {
      env: { EGRESS_POD_IP: "10.0.0.1", EGRESS_POD_IPS: "10.0.0.1,10.0.0.2" },
      variable: "EGRESS_POD_IPS",
      says: /more than one IPv4 address/,
    },
    {
      env: { EGRESS_POD_IPS: "fd00::1,fd00::2" },
      variable: "EGRESS_POD_IPS",
      says: /more than one IPv6 address/,
    },
    {
      env: { EGRESS_POD_IPS: "10.0.0.1,bogus" },
      variable: "EGRESS_POD_IPS",
      says: /entry "bogus" that is not/,
    },
    {
      env: { EGRESS_VXLAN_VNI: "0" },
      variable: "EGRESS_VXLAN_VNI",
      says: /out of range; expected an integer from 1/,
    },
    { env: { EGRESS_VXLAN_VNI: "16777216" }, variable: "EGRESS_VXLAN_VNI", says: /out of range/ },
    { env: { EGRESS_VXLAN_VNI: "1e3" }, variable: "EGRESS_VXLAN_VNI", says: /not a whole decimal number/ },
    { env: { EGRESS_VXLAN_VNI: "0x10" }, variable: "EGRESS_VXLAN_VNI", says: /not a whole decimal number/ },
    { env: { EGRESS_VXLAN_VNI: "-1" }, variable: "EGRESS_VXLAN_VNI", says: /not a whole decimal number/ },
    { env: { EGRESS_VXLAN_VNI: "40 97" }, variable: "EGRESS_VXLAN_VNI", says: /not a whole decimal number/ },
    { env: { EGRESS_VXLAN_PORT: "65536" }, variable: "EGRESS_VXLAN_PORT", says: /out of range/ },
    { env: { EGRESS_VXLAN_PORT: "0" }, variable: "EGRESS_VXLAN_PORT", says: /out of range/ },
    { env: { IPTABLES_BACKEND: "iptables" }, variable: "IPTABLES_BACKEND", says: /auto, nft, legacy/ },
    { env: { DATAPLANE: "ebpf" }, variable: "DATAPLANE", says: /auto, iptables, nftables/ },
    {
      env: { ICMP_PROBE_IPS: "8.8.8.8,dns.google" },
      variable: "ICMP_PROBE_IPS",
      says: /entry "dns.google" that is not/,
    },
    { env: { ICMP_PROBE_IPS: "0.0.0.0" }, variable: "ICMP_PROBE_IPS", says: /unspecified address "0.0.0.0"/ },
    { env: { ICMP_PROBE_INTERVAL: "5" }, variable: "ICMP_PROBE_INTERVAL", says: /without a unit/ },
    { env: { ICMP_PROBE_INTERVAL: "-1s" }, variable: "ICMP_PROBE_INTERVAL", says: /is negative/ },
    { env: { ICMP_PROBE_INTERVAL: "5 s" }, variable: "ICMP_PROBE_INTERVAL", says: /unknown unit " s"/ },
    { env: { ICMP_PROBE_TIMEOUT: "-15s" }, variable: "ICMP_PROBE_TIMEOUT", says: /is negative/ },
    { env: { ICMP_PROBE_TIMEOUT: "15" }, variable: "ICMP_PROBE_TIMEOUT", says: /without a unit/ },
    { env: { HTTP_PROBE_INTERVAL: "10sec" }, variable: "HTTP_PROBE_INTERVAL", says: /unknown unit "sec"/ },
    { env: { HTTP_PROBE_TIMEOUT: "-0s" }, variable: "HTTP_PROBE_TIMEOUT", says: /is negative/ },
    {
      env: { HTTP_PROBE_TIMEOUT: "2562048h" },
      variable: "HTTP_PROBE_TIMEOUT",
      says: /too long to be a duration/,
    },
    {
      env: { HTTP_PROBE_URLS: "ftp://example.com" },
      variable: "HTTP_PROBE_URLS",
      says: /scheme "ftp", not http/,
    },
    {
      env: { HTTP_PROBE_URLS: "example.com/health" },
      variable: "HTTP_PROBE_URLS",
      says: /not an absolute URL/,
    },
    {
      env: { HTTP_PROBE_URLS: "http:example.com" },
      variable: "HTTP_PROBE_URLS",
      says: /does not start with http/,
    },
    { env: { HTTP_PROBE_URLS: "http://exa\tmple.com" }, variable: "HTTP_PROBE_URLS", says: /whitespace/ },
    {
      env: { HTTP_PROBE_REQUIRE_SUCCESS: "on" },
      variable: "HTTP_PROBE_REQUIRE_SUCCESS",
      says: /not a boolean/,
    },
    { env: { HEALTH_PORT: "70000" }, variable: "HEALTH_PORT", says: /0 to disable the health server/ },
    {
      env: { HEALTH_LISTEN_ADDRESS: "localhost" },
      variable: "HEALTH_LISTEN_ADDRESS",
      says: /not an IP address/,
    },
    { env: { HEALTH_TIMEOUT_DATASTORE: "-90" }, variable: "HEALTH_TIMEOUT_DATASTORE", says: /is negative/ },
    {
      env: { HEALTH_TIMEOUT_DATASTORE: "90x" },
      variable: "HEALTH_TIMEOUT_DATASTORE",
      says: /unknown unit "x"/,
    },
    { env: { LOG_SEVERITY: "verbose" }, variable: "LOG_SEVERITY", says: /not a log level/ },
    {
      env: { DAEMON_SOCKET_PATH: "var/run/socket" },
      variable: "DAEMON_SOCKET_PATH",
      says: /not an absolute path/,
    },
    {
      env: { DAEMON_SOCKET_PATH: `/${"s".repeat(107)}` },
      variable: "DAEMON_SOCKET_PATH",
      says: /longer than 107 bytes/,
    },
    { env: { DRAIN_TIMEOUT: "61m" }, variable: "DRAIN_TIMEOUT", says: /longer than 1h/ },
    { env: { DRAIN_MIN: "2h" }, variable: "DRAIN_MIN", says: /longer than 1h/ },
    { env: { FLOW_LOGS: "on" }, variable: "FLOW_LOGS", says: /not a boolean/ },
    { env: { FLOW_LOGS_RATE: "-1" }, variable: "FLOW_LOGS_RATE", says: /0 for no limit/ },
    { env: { SNAT_PORT_RANGE: "1024" }, variable: "SNAT_PORT_RANGE", says: /not a range FIRST-LAST/ },
    { env: { SNAT_PORT_RANGE: "0-65535" }, variable: "SNAT_PORT_RANGE", says: /out of range/ },
    { env: { SNAT_PORT_RANGE: "1024-65536" }, variable: "SNAT_PORT_RANGE", says: /out of range/ },
    { env: { SNAT_PORT_RANGE: "2000-1999" }, variable: "SNAT_PORT_RANGE", says: /starts after it ends/ },
    {
      env: { DATAPLANE_CHECK_INTERVAL: "500ms" },
      variable: "DATAPLANE_CHECK_INTERVAL",
      says: /shorter than 1s/,
    },
    { env: { DATAPLANE_CHECK_INTERVAL: "2h" }, variable: "DATAPLANE_CHECK_INTERVAL", says: /longer than 1h/ },
    { env: { DATAPLANE_CHECK_INTERVAL: "-5s" }, variable: "DATAPLANE_CHECK_INTERVAL", says: /is negative/ },
    { env: { TELEMETRY_INTERVAL: "500ms" }, variable: "TELEMETRY_INTERVAL", says: /shorter than 1s/ },
    { env: { TELEMETRY_TOP_N: "101" }, variable: "TELEMETRY_TOP_N", says: /out of range/ },
    {
      env: { READINESS_MAX_PORT_UTILIZATION: "90%" },
      variable: "READINESS_MAX_PORT_UTILIZATION",
      says: /not a decimal number; expected a ratio above 0 and at most 1/,
    },
    {
      env: { READINESS_MAX_PORT_UTILIZATION: "0" },
      variable: "READINESS_MAX_PORT_UTILIZATION",
      says: /out of range/,
    },
  ];
  for (const { env, options = gateway, variable, says } of cases) {
    it(`${variable}: ${JSON.stringify(env)}`, () => {
      const error = configError(() => parseConfig(env, options));
      assert.equal(error.code, "EGW_ERR_CONFIG_INVALID");
      assert.equal(error.variable, variable);
      assert.equal(error.value, env[variable] ?? "");
      assert.ok(error.message.startsWith(`${variable}=`), error.message);
      assert.match(error.message, /; expected ./);
      assert.match(error.message, says);
      assertOneLine(error.message);
    });
  }
});

describe("ConfigError message", () => {
  it("names the variable, the quoted value, the problem and what is expected, in one sentence", () => {
    const error = configError(() =>
      parseConfig({ ICMP_PROBE_IPS: "1.1.1.1", ICMP_PROBE_TIMEOUT: "15" }, gateway),
    );
    assert.equal(
      error.message,
      'ICMP_PROBE_TIMEOUT="15" has a number without a unit; expected a duration such as 500ms, 5s or 1m30s',
    );
    assert.equal(error.expected, "a duration such as 500ms, 5s or 1m30s");
  });

  it("shows whitespace, control and invisible characters escaped", () => {
    const error = configError(() => parseConfig({ LOG_SEVERITY: "info\n\u2028\u0085\u202e" }, gateway));
    assert.ok(error.message.startsWith('LOG_SEVERITY="info\\n\\u2028\\u0085\\u202e" is not a log level'));
    assert.equal(error.value, "info\n\u2028\u0085\u202e");
  });

  it("cuts an absurdly long value short but keeps it whole on the error", () => {
    const long = "x".repeat(5_000);
    const error = configError(() => parseConfig({ EGRESS_POD_IP: long }, gateway));
    assert.ok(error.message.length < 500, error.message);
    assert.match(error.message, /… \(5000 characters\) is not an IP address/);
    assert.equal(error.value, long);
  });

  it("quote keeps short text whole", () => {
    assert.equal(quote(""), '""');
    assert.equal(quote(" 5s"), '" 5s"');
  });
});

describe("the parsed config", () => {
  it("is frozen all the way down", () => {
    const config = parseConfig(
      { ...OPERATOR_LAYOUT, ICMP_PROBE_IPS: "1.1.1.1", HTTP_PROBE_URLS: "http://a" },
      gateway,
    );
    for (const part of [
      config,
      config.vxlan,
      config.icmpProbe,
      config.icmpProbe.targets,
      config.httpProbe.urls,
    ]) {
      assert.ok(Object.isFrozen(part));
    }
    assert.throws(() => {
      (config.icmpProbe.targets as string[]).push("8.8.8.8");
    }, TypeError);
    assert.throws(() => {
      (config as { logLevel: string }).logLevel = "trace";
    }, TypeError);
  });
});

describe("the variables table", () => {
  it("names each variable once, with a description", () => {
    const names = variables.map((v) => v.name);
    assert.equal(new Set(names).size, names.length);
    for (const v of variables) assert.ok(v.description.length > 0, v.name);
  });
});

const KNOWN_NAMES = new Set<string>(variables.map((v) => v.name));

// Near-valid values find the edges of each parser; arbitrary strings find crashes.
const durationText = fc
  .tuple(
    fc.constantFrom("", "+", "-"),
    fc.array(
      fc.tuple(
        fc.oneof(
          fc.nat().map(String),
          fc.double({ min: 0, max: 1e6, noNaN: true }).map(String),
          fc.constantFrom(".", "", ".5"),
        ),
        fc.constantFrom("ns", "us", "µs", "ms", "s", "m", "h", "", "sec", " ", "S"),
      ),
      { maxLength: 4 },
    ),
  )
  .map(([sign, terms]) => sign + terms.map(([n, unit]) => n + unit).join(""));
const numberText = fc.oneof(
  fc.integer({ min: -10, max: 2 ** 25 }).map(String),
  fc.constantFrom("1e3", "0x10", " 80 ", "4 097", "08080", "9".repeat(400)),
);
const ipText = fc.oneof(
  fc.ipV4(),
  fc.ipV6(),
  fc.ipV4Extended(),
  fc.ipV6().map((ip) => `${ip}%eth0`),
  fc.ipV4().map((ip) => `::ffff:${ip}`),
);
const listText = fc
  .tuple(
    fc.array(fc.oneof(ipText, fc.webUrl(), fc.constantFrom("", " ", "ftp://x", "http://", "http:x")), {
      maxLength: 4,
    }),
    fc.constantFrom(",", ", ", " ,"),
  )
  .map(([entries, separator]) => entries.join(separator));
const wordText = fc.mixedCase(
  fc.constantFrom(
    "auto",
    "nft",
    "legacy",
    "iptables",
    "nftables",
    "info",
    "warning",
    "panic",
    "yes",
    "0",
    "/run/s",
  ),
);
const anyText = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ unit: "binary-ascii", maxLength: 40 }),
  fc.string({ maxLength: 300 }),
);

const probeDuration = fc.integer({ min: 100, max: 120_000 }).map(formatDuration);
const ipList = fc.array(fc.oneof(fc.ipV4(), fc.ipV6()), { maxLength: 3 }).map((ips) => ips.join(","));

// Mostly valid values for each variable, so that the fuzz reaches accepted configs too.
// Typed by VariableName: a variable added to the table without a generator fails to compile.
const plausible: Record<VariableName, fc.Arbitrary<string>> = {
  EGRESS_POD_IP: fc.oneof(fc.ipV4(), fc.ipV6()),
  EGRESS_POD_IPS: fc.tuple(fc.ipV4(), fc.ipV6()).map(([v4, v6]) => `${v4},${v6}`),
  EGRESS_VXLAN_VNI: fc.integer({ min: 1, max: 16_777_215 }).map(String),
  EGRESS_VXLAN_PORT: fc.integer({ min: 1, max: 65_535 }).map(String),
  IPTABLES_BACKEND: fc.mixedCase(fc.constantFrom("auto", "nft", "legacy")),
  DATAPLANE: fc.mixedCase(fc.constantFrom("auto", "iptables", "nftables")),
  ICMP_PROBE_IPS: ipList,
  ICMP_PROBE_INTERVAL: probeDuration,
  ICMP_PROBE_TIMEOUT: probeDuration,
  HTTP_PROBE_URLS: fc.array(fc.webUrl(), { maxLength: 2 }).map((urls) => urls.join(",")),
  HTTP_PROBE_INTERVAL: probeDuration,
  HTTP_PROBE_TIMEOUT: probeDuration,
  HTTP_PROBE_REQUIRE_SUCCESS: fc.mixedCase(fc.constantFrom("true", "false", "yes", "no", "1", "0")),
  HEALTH_PORT: fc.integer({ min: 0, max: 65_535 }).map(String),
  HEALTH_LISTEN_ADDRESS: fc.oneof(fc.ipV4(), fc.ipV6()),
  HEALTH_TIMEOUT_DATASTORE: fc.oneof(probeDuration, fc.integer({ min: 1, max: 86_400 }).map(String)),
  LOG_SEVERITY: fc.mixedCase(
    fc.constantFrom("trace", "debug", "info", "warn", "warning", "error", "fatal", "panic"),
  ),
  DAEMON_SOCKET_PATH: fc.constantFrom("/var/run/nodeagent/socket", "/var/run/calico/nodeagent/socket"),
  DRAIN_TIMEOUT: fc.integer({ min: 0, max: 3_600_000 }).map(formatDuration),
  DRAIN_MIN: fc.integer({ min: 0, max: 3_600_000 }).map(formatDuration),
  FLOW_LOGS: fc.mixedCase(fc.constantFrom("true", "false", "yes", "no", "1", "0")),
  FLOW_LOGS_RATE: fc.integer({ min: 0, max: 1_000_000 }).map(String),
  SNAT_PORT_RANGE: fc
    .tuple(fc.integer({ min: 1, max: 65_535 }), fc.integer({ min: 1, max: 65_535 }))
    .map(([a, b]) => `${Math.min(a, b)}-${Math.max(a, b)}`),
  HEALTH_MAX_CONNECTIONS: fc.integer({ min: 16, max: 1_048_576 }).map(String),
  HEALTH_HEADER_TIMEOUT: fc.integer({ min: 100, max: 60_000 }).map(formatDuration),
  HEALTH_KEEPALIVE_TIMEOUT: fc.integer({ min: 100, max: 600_000 }).map(formatDuration),
  DATAPLANE_CHECK_INTERVAL: fc.oneof(
    fc.constant("0s"),
    fc.integer({ min: 1_000, max: 3_600_000 }).map(formatDuration),
  ),
  TELEMETRY_INTERVAL: fc.oneof(
    fc.constant("0s"),
    fc.integer({ min: 1_000, max: 3_600_000 }).map(formatDuration),
  ),
  TELEMETRY_TOP_N: fc.integer({ min: 0, max: 100 }).map(String),
  READINESS_MAX_PORT_UTILIZATION: fc.double({ min: 0.01, max: 1, noNaN: true }).map((r) => r.toFixed(2)),
};
const edgeValue = fc.oneof(durationText, numberText, ipText, listText, wordText, anyText);

const environment = fc.record(
  Object.fromEntries(
    variables.map((v) => [
      v.name,
      // With about 30 variables, each must mostly be valid for whole configs to be accepted.
      fc.oneof(
        { weight: 10, arbitrary: fc.constantFrom(v.default, "") },
        { weight: 3, arbitrary: plausible[v.name] },
        { weight: 1, arbitrary: edgeValue },
      ),
    ]),
  ),
  { requiredKeys: [] },
);

/** Checks the contract for any input: a sound frozen config, or a well-formed ConfigError (returned). */
function parseOutcome(env: Environment, requirePodIp: boolean): ConfigError | undefined {
  let config: Config;
  try {
    config = parseConfig(env, { requirePodIp });
  } catch (error) {
    assert.ok(error instanceof ConfigError, `not a ConfigError: ${String(error)}`);
    assert.ok(KNOWN_NAMES.has(error.variable), error.variable);
    assert.ok(error.message.startsWith(`${error.variable}=`), error.message);
    assertOneLine(error.message);
    return error;
  }
  assert.ok(Object.isFrozen(config) && Object.isFrozen(config.icmpProbe.targets));
  assert.ok(!requirePodIp || config.podIPv4 !== undefined || config.podIPv6 !== undefined);
  for (const group of [config.icmpProbe, { targets: config.httpProbe.urls, ...config.httpProbe }]) {
    assert.ok(
      group.intervalMs >= 100 && Number.isInteger(group.intervalMs) && Number.isInteger(group.timeoutMs),
    );
    assert.ok(group.targets.length === 0 || group.timeoutMs >= group.intervalMs);
  }
  for (const adjustment of config.adjustments) {
    assert.ok(KNOWN_NAMES.has(adjustment.variable), adjustment.variable);
    assert.ok(adjustment.message.startsWith(adjustment.variable), adjustment.message);
    assert.ok(adjustment.message.endsWith(`; using ${adjustment.used}`), adjustment.message);
    assertOneLine(adjustment.message);
  }
  return undefined;
}

describe("parseConfig under fuzzing", () => {
  it("never throws anything but a one-line ConfigError, whatever one variable holds", () => {
    const names = variables.map((v) => v.name);
    fc.assert(
      fc.property(fc.constantFrom(...names), edgeValue, (name, value) => {
        assert.equal(parseOutcome({ [name]: value }, false)?.variable ?? name, name);
      }),
      { numRuns: 5_000 },
    );
  });

  it("accepts or refuses mostly plausible environments by the same contract", () => {
    const outcomes = { accepted: 0, refused: 0 };
    fc.assert(
      fc.property(environment, fc.boolean(), (env, requirePodIp) => {
        outcomes[parseOutcome(env, requirePodIp) === undefined ? "accepted" : "refused"]++;
      }),
      { numRuns: 3_000 },
    );
    // Both outcomes must be common, or the fuzz explores only one side of the parser.
    assert.ok(outcomes.accepted > 300 && outcomes.refused > 300, JSON.stringify(outcomes));
  });
});

describe("loadConfigOrExit", () => {
  it("writes one line and exits 2 on a configuration error", (t) => {
    const exit = t.mock.method(process, "exit", (code?: number) => {
      throw new Error(`exit ${code}`);
    });
    const lines: string[] = [];
    assert.throws(
      () => loadConfigOrExit({ HEALTH_PORT: "http" }, gateway, { write: (line: string) => lines.push(line) }),
      /exit 2/,
    );
    assert.equal(exit.mock.callCount(), 1);
    assert.deepEqual(lines, [
      'egress-gateway: configuration error: HEALTH_PORT="http" is not a whole decimal number; ' +
        "expected 0 to disable the health server, or a port from 1 to 65535\n",
    ]);
  });

  it("returns the config when the environment is good", () => {
    assert.deepEqual(loadConfigOrExit(REFERENCE_MANIFEST, init), { ...DEFAULTS, podIPv4: "10.10.10.0" });
  });

  it("rethrows anything that is not a ConfigError: that is a bug, not bad input", (t) => {
    const exit = t.mock.method(process, "exit");
    const broken = new Proxy({}, { get: () => assert.fail("environment exploded") });
    assert.throws(() => loadConfigOrExit(broken, gateway, { write: () => true }), /environment exploded/);
    assert.equal(exit.mock.callCount(), 0);
  });

  it("in a real process: exit code 2, exactly one stderr line, no stack trace", () => {
    const root = fileURLToPath(new URL("..", import.meta.url));
    const script =
      'import { loadConfigOrExit } from "./src/config/index.ts";' +
      "loadConfigOrExit(process.env, { requirePodIp: true });" +
      'console.log("config accepted");';
    const child = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: root,
      env: { PATH: process.env.PATH, EGRESS_POD_IP: "10.0.0.1", ICMP_PROBE_IPS: "1.1.1.1,nope" },
      encoding: "utf8",
      timeout: 30_000,
    });
    assert.equal(child.status, 2, child.stderr);
    assert.equal(child.stdout, "");
    assert.equal(
      child.stderr,
      'egress-gateway: configuration error: ICMP_PROBE_IPS="1.1.1.1,nope" has an entry "nope" that is not an IP address; ' +
        "expected a comma-separated list of IPv4/IPv6 addresses, such as 8.8.8.8,2001:4860:4860::8888\n",
    );
  });
});
