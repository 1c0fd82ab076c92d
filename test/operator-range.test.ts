// What the vendor's operator renders must run (SPEC §2). tigera/operator's
// pkg/render/egressgateway writes the probe intervals and timeouts as
// fmt.Sprintf("%ds", n) with n from 0 to 2147483647 (its CRD's range), and
// HEALTH_TIMEOUT_DATASTORE from 1 to 2147483647 s. Every such rendering must
// parse, with one warning per adjusted value, and start the built gateway.
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { parseConfig, type Config, type Environment } from "../src/config/index.js";
import { freePort, startGatewayProcess, type GatewayProcess } from "../lab/gateway-process.js";

const gateway = { requirePodIp: false };
const MAX_INT32 = 2_147_483_647;

/** Seconds the operator can write: the CRD's ends, the defaults, and both sides of a day and of Node's timer limit. */
const SECONDS = [
  0,
  1,
  2,
  5,
  9,
  10,
  15,
  30,
  60,
  3_600,
  86_400,
  86_401,
  2_147_483,
  2_147_484,
  1_000_000_000,
  MAX_INT32 - 1,
  MAX_INT32,
];

const GROUPS = [
  {
    group: "icmpProbe",
    interval: "ICMP_PROBE_INTERVAL",
    timeout: "ICMP_PROBE_TIMEOUT",
    targets: { ICMP_PROBE_IPS: "192.0.2.1" },
    defaults: { intervalMs: 5_000, timeoutMs: 15_000 },
  },
  {
    group: "httpProbe",
    interval: "HTTP_PROBE_INTERVAL",
    timeout: "HTTP_PROBE_TIMEOUT",
    targets: { HTTP_PROBE_URLS: "http://192.0.2.1/" },
    defaults: { intervalMs: 10_000, timeoutMs: 30_000 },
  },
] as const;

/** What SPEC §2 says the gateway runs with for an interval and a timeout of whole seconds. */
function expectedTiming(
  defaults: { intervalMs: number; timeoutMs: number },
  intervalS: number,
  timeoutS: number,
): { intervalMs: number; timeoutMs: number; adjusted: string[] } {
  const intervalMs = intervalS === 0 ? defaults.intervalMs : intervalS * 1000;
  const givenTimeoutMs = timeoutS === 0 ? defaults.timeoutMs : timeoutS * 1000;
  const widen = givenTimeoutMs < intervalMs;
  const adjusted = [
    ...(intervalS === 0 ? ["interval"] : []),
    ...(timeoutS === 0 ? ["timeout"] : []),
    ...(widen ? ["timeout"] : []),
  ];
  return { intervalMs, timeoutMs: widen ? 2 * intervalMs : givenTimeoutMs, adjusted };
}

function checkGroup(g: (typeof GROUPS)[number], intervalS: number, timeoutS: number): void {
  const env: Environment = { ...g.targets, [g.interval]: `${intervalS}s`, [g.timeout]: `${timeoutS}s` };
  const config = parseConfig(env, gateway);
  const want = expectedTiming(g.defaults, intervalS, timeoutS);
  const got = config[g.group];
  assert.deepEqual([got.intervalMs, got.timeoutMs], [want.intervalMs, want.timeoutMs], JSON.stringify(env));
  const variables = config.adjustments.map((a) => a.variable);
  const wanted = want.adjusted.map((which) => (which === "interval" ? g.interval : g.timeout));
  assert.deepEqual(variables, wanted, JSON.stringify(env));
  for (const a of config.adjustments) assert.equal(a.given, env[a.variable], a.message);
}

describe("operator range: the parser", () => {
  for (const g of GROUPS) {
    for (const intervalS of SECONDS) {
      it(`${g.interval}=${intervalS}s with every ${g.timeout} of the table`, () => {
        for (const timeoutS of SECONDS) checkGroup(g, intervalS, timeoutS);
      });
    }
  }

  it("any interval and timeout from 0 to 2147483647 s, for both groups at once", () => {
    const seconds = fc.integer({ min: 0, max: MAX_INT32 });
    fc.assert(
      fc.property(seconds, seconds, seconds, seconds, (icmpI, icmpT, httpI, httpT) => {
        checkGroup(GROUPS[0], icmpI, icmpT);
        checkGroup(GROUPS[1], httpI, httpT);
      }),
      { numRuns: 2_000 },
    );
  });

  it("HEALTH_TIMEOUT_DATASTORE from 1 to 2147483647 s is honoured as written", () => {
    for (const n of [...SECONDS.filter((s) => s > 0), 90]) {
      for (const text of [`${n}s`, String(n)]) {
        const config = parseConfig({ HEALTH_TIMEOUT_DATASTORE: text }, gateway);
        assert.equal(config.health.datastoreTimeoutMs, n * 1000, text);
        assert.deepEqual(config.adjustments, [], text);
      }
    }
  });

  it("the five renderings that used to exit 2, with their warning lines", () => {
    const cases: { env: Environment; messages: string[]; check: (c: Config) => void }[] = [
      {
        env: { ICMP_PROBE_IPS: "192.0.2.1", ICMP_PROBE_INTERVAL: "0s", ICMP_PROBE_TIMEOUT: "15s" },
        messages: ['ICMP_PROBE_INTERVAL="0s" means the default; using 5s'],
        check: (c) => assert.equal(c.icmpProbe.intervalMs, 5_000),
      },
      {
        env: { HTTP_PROBE_URLS: "http://192.0.2.1/", HTTP_PROBE_INTERVAL: "0s", HTTP_PROBE_TIMEOUT: "30s" },
        messages: ['HTTP_PROBE_INTERVAL="0s" means the default; using 10s'],
        check: (c) => assert.equal(c.httpProbe.intervalMs, 10_000),
      },
      {
        env: { ICMP_PROBE_IPS: "192.0.2.1", ICMP_PROBE_INTERVAL: "10s", ICMP_PROBE_TIMEOUT: "5s" },
        messages: [
          'ICMP_PROBE_TIMEOUT="5s" is shorter than the ICMP_PROBE_INTERVAL of 10s: ' +
            "the window is widened to twice the interval; using 20s",
        ],
        check: (c) => assert.equal(c.icmpProbe.timeoutMs, 20_000),
      },
      {
        env: { ICMP_PROBE_IPS: "192.0.2.1", ICMP_PROBE_INTERVAL: "86401s", ICMP_PROBE_TIMEOUT: "15s" },
        messages: [
          'ICMP_PROBE_TIMEOUT="15s" is shorter than the ICMP_PROBE_INTERVAL of 24h1s: ' +
            "the window is widened to twice the interval; using 48h2s",
        ],
        check: (c) =>
          assert.deepEqual([c.icmpProbe.intervalMs, c.icmpProbe.timeoutMs], [86_401_000, 172_802_000]),
      },
      {
        env: { HEALTH_TIMEOUT_DATASTORE: "2147483647s" },
        messages: [],
        check: (c) => assert.equal(c.health.datastoreTimeoutMs, 2_147_483_647_000),
      },
    ];
    for (const { env, messages, check } of cases) {
      const config = parseConfig(env, gateway);
      assert.deepEqual(
        config.adjustments.map((a) => a.message),
        messages,
      );
      check(config);
    }
  });

  it("an unset timeout widened names its default; a 0s timeout names the value in force", () => {
    const unset = parseConfig({ ICMP_PROBE_IPS: "192.0.2.1", ICMP_PROBE_INTERVAL: "1m" }, gateway);
    assert.deepEqual(unset.adjustments, [
      {
        variable: "ICMP_PROBE_TIMEOUT",
        given: "15s (default)",
        used: "2m",
        message:
          "ICMP_PROBE_TIMEOUT (default 15s) is shorter than the ICMP_PROBE_INTERVAL of 1m: " +
          "the window is widened to twice the interval; using 2m",
      },
    ]);
    const zero = parseConfig(
      { ICMP_PROBE_IPS: "192.0.2.1", ICMP_PROBE_INTERVAL: "1m", ICMP_PROBE_TIMEOUT: "0s" },
      gateway,
    );
    assert.deepEqual(
      zero.adjustments.map((a) => a.message),
      [
        'ICMP_PROBE_TIMEOUT="0s" means the default; using 15s',
        'ICMP_PROBE_TIMEOUT="0s" (15s) is shorter than the ICMP_PROBE_INTERVAL of 1m: ' +
          "the window is widened to twice the interval; using 2m",
      ],
    );
  });

  it("floors: a probe interval below 100ms, a datastore timeout below 1s, with a warning each", () => {
    const config = parseConfig(
      { HTTP_PROBE_URLS: "http://192.0.2.1/", HTTP_PROBE_INTERVAL: "1ms", HEALTH_TIMEOUT_DATASTORE: "0.5" },
      gateway,
    );
    assert.equal(config.httpProbe.intervalMs, 100);
    assert.equal(config.health.datastoreTimeoutMs, 1_000);
    assert.deepEqual(
      config.adjustments.map((a) => a.message),
      [
        'HTTP_PROBE_INTERVAL="1ms" is shorter than the 100ms floor; using 100ms',
        'HEALTH_TIMEOUT_DATASTORE="0.5" is shorter than the 1s floor; using 1s',
      ],
    );
  });

  it("a group without targets warns about nothing: its variables are not used", () => {
    const config = parseConfig({ ICMP_PROBE_INTERVAL: "0s", HTTP_PROBE_TIMEOUT: "1s" }, gateway);
    assert.deepEqual(config.adjustments, []);
  });
});

// ---------------------------------------------------------------------------

class Upstream {
  private server: Server | undefined;
  port = 0;
  async start(): Promise<void> {
    this.port = await freePort();
    this.server = createServer((_req, res) => res.end("ok"));
    await new Promise<void>((resolve) => this.server!.listen(this.port, "127.0.0.1", resolve));
  }
  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
}

/** Sum of egress_gateway_probes_total per protocol. */
function probesDone(metrics: string, protocol: string): number {
  const sample = new RegExp(`^egress_gateway_probes_total\\{protocol="${protocol}",[^}]*\\} (\\d+)$`, "gm");
  return [...metrics.matchAll(sample)].reduce((sum, m) => sum + Number(m[1]), 0);
}

interface Rendering {
  readonly name: string;
  readonly env: Record<string, string>;
  /** The variables of the warning lines, in order. */
  readonly warned: readonly string[];
  /** Probes per protocol expected within the first 2.5 s: one for intervals of seconds and more. */
  readonly protocols: readonly ("icmp" | "http")[];
}

const S = (n: number): string => `${n}s`;

const RENDERINGS: readonly Rendering[] = [
  {
    name: "ICMP_PROBE_INTERVAL=0s",
    env: { ICMP_PROBE_INTERVAL: "0s", ICMP_PROBE_TIMEOUT: "15s" },
    warned: ["ICMP_PROBE_INTERVAL"],
    protocols: ["icmp"],
  },
  {
    name: "HTTP_PROBE_INTERVAL=0s",
    env: { HTTP_PROBE_INTERVAL: "0s", HTTP_PROBE_TIMEOUT: "30s" },
    warned: ["HTTP_PROBE_INTERVAL"],
    protocols: ["http"],
  },
  {
    name: "interval 10s, timeout 5s",
    env: { ICMP_PROBE_INTERVAL: "10s", ICMP_PROBE_TIMEOUT: "5s" },
    warned: ["ICMP_PROBE_TIMEOUT"],
    protocols: ["icmp"],
  },
  {
    name: "ICMP_PROBE_INTERVAL=86401s",
    env: { ICMP_PROBE_INTERVAL: "86401s", ICMP_PROBE_TIMEOUT: "15s" },
    warned: ["ICMP_PROBE_TIMEOUT"],
    protocols: ["icmp"],
  },
  {
    name: "HEALTH_TIMEOUT_DATASTORE=2147483647s",
    env: { ICMP_PROBE_INTERVAL: "5s", ICMP_PROBE_TIMEOUT: "15s", HEALTH_TIMEOUT_DATASTORE: S(MAX_INT32) },
    warned: [],
    protocols: ["icmp"],
  },
  {
    name: "the low end: every duration 0s, datastore 1s",
    env: {
      ICMP_PROBE_INTERVAL: "0s",
      ICMP_PROBE_TIMEOUT: "0s",
      HTTP_PROBE_INTERVAL: "0s",
      HTTP_PROBE_TIMEOUT: "0s",
      HEALTH_TIMEOUT_DATASTORE: "1s",
    },
    warned: ["ICMP_PROBE_INTERVAL", "ICMP_PROBE_TIMEOUT", "HTTP_PROBE_INTERVAL", "HTTP_PROBE_TIMEOUT"],
    protocols: ["icmp", "http"],
  },
  {
    name: "the high end: every duration 2147483647s",
    env: {
      ICMP_PROBE_INTERVAL: S(MAX_INT32),
      ICMP_PROBE_TIMEOUT: S(MAX_INT32),
      HTTP_PROBE_INTERVAL: S(MAX_INT32),
      HTTP_PROBE_TIMEOUT: S(MAX_INT32),
      HEALTH_TIMEOUT_DATASTORE: S(MAX_INT32),
    },
    warned: [],
    protocols: ["icmp", "http"],
  },
  {
    name: "the longest interval with a 0s timeout",
    env: { ICMP_PROBE_INTERVAL: S(MAX_INT32), ICMP_PROBE_TIMEOUT: "0s" },
    warned: ["ICMP_PROBE_TIMEOUT", "ICMP_PROBE_TIMEOUT"],
    protocols: ["icmp"],
  },
];

describe("operator range: the built gateway starts with every rendering", { concurrency: 2 }, () => {
  const upstream = new Upstream();
  before(() => upstream.start());
  after(() => upstream.stop());

  for (const rendering of RENDERINGS) {
    it(rendering.name, async () => {
      const port = await freePort();
      const targets: Record<string, string> = {};
      if (rendering.protocols.includes("icmp")) targets.ICMP_PROBE_IPS = "127.0.0.1";
      if (rendering.protocols.includes("http"))
        targets.HTTP_PROBE_URLS = `http://127.0.0.1:${upstream.port}/`;
      const process: GatewayProcess = startGatewayProcess({
        HEALTH_PORT: String(port),
        HEALTH_LISTEN_ADDRESS: "127.0.0.1",
        DRAIN_TIMEOUT: "0s",
        ...targets,
        ...rendering.env,
      });
      try {
        // Generous: the CI machine is shared, and start-up is not what this measures.
        await process.waitForLog((l) => l.msg === "gateway started", 30_000);
        const warnings = process.logs.filter((l) => l.level === "warn" && typeof l.variable === "string");
        assert.deepEqual(
          warnings.map((l) => l.variable),
          rendering.warned,
          process.dump(),
        );
        for (const w of warnings) {
          assert.equal(typeof w.given, "string");
          assert.ok(w.msg.includes(String(w.used)), w.msg);
        }
        // Ready once each group's first probe answered (first probes spread over 1 s).
        let readiness = await get(port, "/readiness");
        for (let i = 0; readiness.status !== 200 && i < 50; i++) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          readiness = await get(port, "/readiness");
        }
        assert.equal(readiness.status, 200, readiness.body);
        // A timer past Node's limit would fire after 1 ms: thousands of probes
        // a second. Honoured, the interval leaves each target its first probe.
        await new Promise((resolve) => setTimeout(resolve, 500));
        const metrics = (await get(port, "/metrics")).body;
        for (const protocol of rendering.protocols) assert.equal(probesDone(metrics, protocol), 1, protocol);
        assert.equal(process.child.exitCode, null, "still running");
        process.signal("SIGTERM");
        assert.deepEqual(await process.exited, { code: 0, signal: null });
      } finally {
        await process.kill();
      }
    });
  }
});
