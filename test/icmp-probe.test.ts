// The ICMP prober against real kernels. Raw sockets belong to the network
// namespace of the process that opens them, so the prober runs in a child
// process inside the "prober" namespace (test/helpers/icmp-probe-runner.ts).
//
//   prober ── router ─┬─ hosts      198.51.100.10-14, 2001:db8:1::10-14 (kernel echo, nft rules)
//                     └─ scripted   203.0.113.20-21 (test/helpers/icmp-responder.ts)
//   router: unreachable routes for 198.19.0.0/16 and 2001:db8:dead::/48
//   prober: no route at all for 198.18.200.0/24 and 2001:db8:ffff::/48
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

import type { RunnerPlan, RunnerReport, RunnerResult } from "./helpers/icmp-probe-runner.js";
import type { ResponderScript } from "./helpers/icmp-responder.js";
import { Lab, type Namespace } from "../lab/netns.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const RUNNER = fileURLToPath(new URL("helpers/icmp-probe-runner.ts", import.meta.url));
const RESPONDER = fileURLToPath(new URL("helpers/icmp-responder.ts", import.meta.url));

/** Slack for a loaded 2-core CI machine: a result may come this much after its deadline. */
const MARGIN_MS = 150;
const DEADLINE_MS = 400;

const LIVE4 = "198.51.100.10";
const LIVE6 = "2001:db8:1::10";
const SILENT4 = "198.51.100.11"; // echo requests dropped by nft on the host
const SILENT6 = "2001:db8:1::11";
const SPOOFED4 = "198.51.100.12"; // replies leave with source .13
const SPOOFED6 = "2001:db8:1::12";
const ROUTER_UNREACHABLE4 = "198.19.0.5";
const ROUTER_UNREACHABLE6 = "2001:db8:dead::5";
const NO_ROUTE4 = "198.18.200.1";
const NO_ROUTE6 = "2001:db8:ffff::1";
const LATE = "203.0.113.20"; // the scripted responder answers after LATE_MS
const FOREIGN_ERROR = "203.0.113.21"; // answered by an unreachable about 203.0.113.99
const LATE_MS = 600;

// Identifiers are fixed so that the host's nft rule can drop one prober's
// requests (0x2222) and no other prober can draw that one at random.
const MAIN = 0; // identifier 0x3333
const A = 1; // identifier 0x1111, its requests are answered
const B = 2; // identifier 0x2222, its requests are dropped at the host
const SPOOF = 3;
const SCRIPTED = 4;

const HOST_RULES = `
table inet icmp_probe_test {
  chain input {
    type filter hook input priority 0;
    ip daddr ${SILENT4} icmp type echo-request drop
    ip6 daddr ${SILENT6} icmpv6 type echo-request drop
    icmp type echo-request icmp id 0x2222 drop
    icmpv6 type echo-request icmpv6 id 0x2222 drop
  }
  chain output {
    type filter hook output priority 0;
    ip saddr ${SPOOFED4} icmp type echo-reply ip saddr set 198.51.100.13
    ip6 saddr ${SPOOFED6} icmpv6 type echo-reply ip6 saddr set 2001:db8:1::13
  }
}
`;

interface Topology {
  prober: Namespace;
  scripted: Namespace;
}

function buildTopology(lab: Lab): Topology {
  const prober = lab.ns("prober");
  const router = lab.ns("router");
  const hosts = lab.ns("hosts");
  const scripted = lab.ns("scripted");
  // Without DAD, IPv6 works the moment a link is up (link-local DAD would
  // otherwise hold the first second of probes).
  for (const ns of [prober, router, hosts, scripted]) {
    ns.sysctl("net.ipv6.conf.all.accept_dad", "0");
    ns.sysctl("net.ipv6.conf.default.accept_dad", "0");
  }
  router.sysctl("net.ipv4.ip_forward", "1");
  router.sysctl("net.ipv6.conf.all.forwarding", "1");
  router.sysctl("net.ipv4.conf.all.rp_filter", "0");
  router.sysctl("net.ipv4.conf.default.rp_filter", "0");
  // Error messages are rate limited per destination by default.
  router.sysctl("net.ipv4.icmp_ratelimit", "0");
  router.sysctl("net.ipv6.icmp.ratelimit", "0");
  scripted.sysctl("net.ipv4.icmp_echo_ignore_all", "1");

  lab.link(prober, "eth0", router, "prober0");
  lab.link(router, "hosts0", hosts, "eth0");
  lab.link(router, "scripted0", scripted, "eth0");
  const hostAddresses = [10, 11, 12, 14];

  prober.ip("addr", "add", "198.18.0.2/24", "dev", "eth0");
  prober.ip("addr", "add", "2001:db8:0:1::2/64", "dev", "eth0", "nodad");
  for (const prefix of ["198.51.100.0/24", "203.0.113.0/24", "198.19.0.0/16"]) {
    prober.ip("route", "add", prefix, "via", "198.18.0.1");
  }
  for (const prefix of ["2001:db8:1::/48", "2001:db8:dead::/48"]) {
    prober.ip("-6", "route", "add", prefix, "via", "2001:db8:0:1::1");
  }

  router.ip("addr", "add", "198.18.0.1/24", "dev", "prober0");
  router.ip("addr", "add", "2001:db8:0:1::1/64", "dev", "prober0", "nodad");
  router.ip("addr", "add", "198.51.100.1/24", "dev", "hosts0");
  router.ip("addr", "add", "2001:db8:1::1/64", "dev", "hosts0", "nodad");
  router.ip("addr", "add", "203.0.113.1/24", "dev", "scripted0");
  router.ip("route", "add", "unreachable", "198.19.0.0/16");
  router.ip("-6", "route", "add", "unreachable", "2001:db8:dead::/48");

  for (const host of hostAddresses) {
    hosts.ip("addr", "add", `198.51.100.${host}/24`, "dev", "eth0");
    hosts.ip("addr", "add", `2001:db8:1::${host}/64`, "dev", "eth0", "nodad");
  }
  hosts.ip("route", "add", "default", "via", "198.51.100.1");
  hosts.ip("-6", "route", "add", "default", "via", "2001:db8:1::1");
  hosts.exec("nft", ["-f", "-"], HOST_RULES);

  scripted.ip("addr", "add", `${LATE}/24`, "dev", "eth0");
  scripted.ip("addr", "add", `${FOREIGN_ERROR}/24`, "dev", "eth0");
  scripted.ip("route", "add", "default", "via", "203.0.113.1");
  return { prober, scripted };
}

interface RunOutcome {
  report: RunnerReport;
  exitCode: number | null;
  /** From the report line to the process exit: the closed prober must not hold the process. */
  exitAfterReportMs: number;
}

/** Starts a TypeScript script under node in `ns`, behind `wrapper` (e.g. setpriv ... --) when given. */
function startNode(
  ns: Namespace,
  script: string,
  arg: string,
  wrapper: readonly string[] = [],
): ChildProcess {
  const [command = process.execPath, ...args] = [
    ...wrapper,
    process.execPath,
    "--import",
    "tsx",
    script,
    arg,
  ];
  return ns.spawn(command, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
}

/** Runs the probe runner in `ns` and waits for its report and its exit (at most 20 s). */
async function runProbes(
  ns: Namespace,
  plan: RunnerPlan,
  wrapper: readonly string[] = [],
): Promise<RunOutcome> {
  const child = startNode(ns, RUNNER, JSON.stringify(plan), wrapper);
  let stdout = "";
  let stderr = "";
  let reportedAt = 0;
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
    if (stdout.includes("\n") && reportedAt === 0) reportedAt = performance.now();
  });
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const killer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  try {
    const [exitCode] = (await once(child, "exit")) as [number | null];
    const exitAfterReportMs = performance.now() - reportedAt;
    assert.ok(reportedAt > 0, `runner printed no report (exit ${exitCode}): ${stderr}`);
    return { report: JSON.parse(stdout) as RunnerReport, exitCode, exitAfterReportMs };
  } finally {
    clearTimeout(killer);
    child.kill("SIGKILL");
  }
}

async function startResponder(ns: Namespace, script: ResponderScript): Promise<ChildProcess> {
  const child = startNode(ns, RESPONDER, JSON.stringify(script));
  let stdout = "";
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout?.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes("ready\n")) resolve();
    });
    child.once("exit", (code) => reject(new Error(`responder exited with ${code}`)));
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  try {
    await ready;
    return child;
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

const probes = (
  prober: number,
  deadlineMs: number,
  targets: readonly string[],
  repeat = 1,
): RunnerPlan["probes"] => targets.map((target) => ({ prober, target, deadlineMs, repeat }));

function assertTimedOut(result: RunnerResult | undefined, deadlineMs: number): void {
  assert.ok(result, "no result");
  assert.equal(result.ok, false, `${result.target} counted as alive`);
  assert.equal(result.code, "TIMEOUT", `${result.target}: ${result.code} ${result.message}`);
  assert.ok(result.durationMs >= deadlineMs - 5, `${result.target} gave up early: ${result.durationMs} ms`);
  assert.ok(result.wallMs <= deadlineMs + MARGIN_MS, `${result.target} resolved late: ${result.wallMs} ms`);
}

function assertQuickFailure(result: RunnerResult | undefined, code: string): void {
  assert.ok(result, "no result");
  assert.equal(result.ok, false, `${result.target} counted as alive`);
  assert.equal(result.code, code, `${result.target}: ${result.code} ${result.message}`);
  assert.ok(result.wallMs < DEADLINE_MS, `${result.target} took ${result.wallMs} ms for an immediate answer`);
}

describe("ICMP prober in network namespaces", () => {
  const lab = new Lab("icmp");
  let responder: ChildProcess | undefined;
  let run: RunOutcome;
  const results = new Map<string, RunnerResult[]>();
  const first = (prober: number, target: string): RunnerResult | undefined =>
    results.get(`${prober} ${target}`)?.[0];

  before(async () => {
    try {
      const topology = buildTopology(lab);
      responder = await startResponder(topology.scripted, {
        [LATE]: { delayMs: LATE_MS },
        [FOREIGN_ERROR]: { claim: "203.0.113.99" },
      });
      run = await runProbes(topology.prober, {
        probers: [
          { identifier: 0x3333 },
          { identifier: 0x1111 },
          { identifier: 0x2222 },
          { identifier: 0x4444 },
          // A long backstop timeout: only the abort can free the late request's slot in time.
          { identifier: 0x5555, timeoutMs: 30_000 },
        ],
        probes: [
          ...probes(MAIN, DEADLINE_MS, [LIVE4, LIVE6, SILENT4, SILENT6]),
          ...probes(MAIN, DEADLINE_MS, [ROUTER_UNREACHABLE4, ROUTER_UNREACHABLE6, NO_ROUTE4, NO_ROUTE6]),
          ...probes(MAIN, DEADLINE_MS, ["198.51.100.256", "example.com"]),
          // B first: its sockets must exist, with sequence 2 in flight, when
          // A's reply with sequence 2 comes back (each prober starts at 2).
          ...probes(B, DEADLINE_MS, [LIVE4, LIVE6], 5),
          ...probes(A, DEADLINE_MS, [LIVE4, LIVE6], 5),
          ...probes(SPOOF, DEADLINE_MS, [SPOOFED4, SPOOFED6]),
          ...probes(SCRIPTED, 200, [LATE]),
          ...probes(SCRIPTED, DEADLINE_MS, [FOREIGN_ERROR]),
        ],
        settleMs: LATE_MS,
      });
      if ("results" in run.report) {
        for (const runs of run.report.results) {
          const head = runs[0];
          if (head) results.set(`${head.prober} ${head.target}`, runs);
        }
      }
    } catch (error) {
      responder?.kill("SIGKILL");
      lab.destroy();
      throw error;
    }
  });

  after(() => {
    responder?.kill("SIGKILL");
    lab.destroy();
  });

  it("runs, closes and lets its process exit", () => {
    assert.ok("results" in run.report, JSON.stringify(run.report));
    assert.equal(run.exitCode, 0);
    assert.ok(run.exitAfterReportMs < 2_000, `process lingered ${run.exitAfterReportMs} ms after close()`);
    assert.deepEqual(
      run.report.stats.map((s) => s.outstanding),
      [0, 0, 0, 0, 0],
    );
  });

  it("counts a live IPv4 host and a live IPv6 host", () => {
    for (const target of [LIVE4, LIVE6]) {
      const result = first(MAIN, target);
      assert.equal(result?.ok, true, `${target}: ${result?.code} ${result?.message}`);
      assert.equal(result.code, undefined);
      assert.ok(result.durationMs < DEADLINE_MS / 2, `${target} took ${result.durationMs} ms`);
    }
  });

  it("reports TIMEOUT at the deadline for hosts that drop echo requests", () => {
    assertTimedOut(first(MAIN, SILENT4), DEADLINE_MS);
    assertTimedOut(first(MAIN, SILENT6), DEADLINE_MS);
  });

  it("reports UNREACHABLE, naming the router, when a router answers with an unreachable for both families", () => {
    const v4 = first(MAIN, ROUTER_UNREACHABLE4);
    const v6 = first(MAIN, ROUTER_UNREACHABLE6);
    assertQuickFailure(v4, "UNREACHABLE");
    assertQuickFailure(v6, "UNREACHABLE");
    assert.match(v4?.message ?? "", /unreachable for 198\.19\.0\.5 \(reported by 198\.18\.0\.1\)/);
    assert.match(v6?.message ?? "", /for 2001:db8:dead::5 \(reported by 2001:db8:0:1::1\)/);
  });

  it("reports SEND_ERROR when there is no route at all, for both families", () => {
    assertQuickFailure(first(MAIN, NO_ROUTE4), "SEND_ERROR");
    assertQuickFailure(first(MAIN, NO_ROUTE6), "SEND_ERROR");
    assert.match(first(MAIN, NO_ROUTE4)?.message ?? "", /Network is unreachable/);
  });

  it("reports INVALID_TARGET for what is not an IP address, at once", () => {
    assertQuickFailure(first(MAIN, "198.51.100.256"), "INVALID_TARGET");
    assertQuickFailure(first(MAIN, "example.com"), "INVALID_TARGET");
  });

  it("does not count an echo reply whose source is not the target, and keeps waiting", () => {
    assertTimedOut(first(SPOOF, SPOOFED4), DEADLINE_MS);
    assertTimedOut(first(SPOOF, SPOOFED6), DEADLINE_MS);
    // Proof that the forged replies did arrive and were refused, one per family.
    assert.ok("stats" in run.report);
    assert.equal(run.report.stats[SPOOF]?.rejectedAnswers, 2);
  });

  it("keeps two probers in one namespace apart, even with the same sequence numbers", () => {
    for (const target of [LIVE4, LIVE6]) {
      const answered = results.get(`${A} ${target}`) ?? [];
      const dropped = results.get(`${B} ${target}`) ?? [];
      assert.equal(answered.length, 5);
      assert.equal(dropped.length, 5);
      for (const result of answered) assert.equal(result.ok, true, `A ${target}: ${result.code}`);
      for (const result of dropped) assertTimedOut(result, DEADLINE_MS);
    }
    assert.ok("identifiers" in run.report);
    assert.deepEqual(run.report.identifiers.slice(A, B + 1), [0x1111, 0x2222]);
  });

  it("on abort resolves with TIMEOUT at once, frees the request and ignores the late reply", () => {
    assertTimedOut(first(SCRIPTED, LATE), 200);
    assert.ok("stats" in run.report);
    const stats = run.report.stats[SCRIPTED];
    assert.equal(stats?.outstanding, 0);
    assert.equal(stats.unmatchedAnswers, 1, "the late reply arrived and completed nothing");
  });

  it("does not count an unreachable that embeds a request to another address", () => {
    assertTimedOut(first(SCRIPTED, FOREIGN_ERROR), DEADLINE_MS);
    assert.ok("stats" in run.report);
    assert.equal(run.report.stats[SCRIPTED]?.rejectedAnswers, 1);
  });
});

describe("ICMP prober without NET_RAW", () => {
  const lab = new Lab("icmpcap");
  after(() => lab.destroy());

  it("refuses to start with EGW_ERR_ICMP_PERMISSION and a message naming the capability; the process lives on", async () => {
    const ns = lab.ns("prober");
    const outcome = await runProbes(ns, { probes: [{ target: "127.0.0.1", deadlineMs: 200 }] }, [
      "setpriv",
      "--bounding-set",
      "-net_raw",
      "--inh-caps",
      "-net_raw",
      "--",
    ]);
    assert.ok("error" in outcome.report, JSON.stringify(outcome.report));
    assert.equal(outcome.report.error.code, "EGW_ERR_ICMP_PERMISSION");
    assert.equal(outcome.report.error.name, "IcmpPermissionError");
    assert.match(outcome.report.error.message, /NET_RAW capability/);
    assert.equal(outcome.exitCode, 0);
  });
});

describe("ICMP prober backstop", () => {
  const lab = new Lab("icmpbs");
  after(() => lab.destroy());

  it("ends a request whose signal never aborts with TIMEOUT at timeoutMs, both families", async () => {
    // The sink routes both targets to a blackhole, which drops packets without
    // a word: the sends succeed and nothing ever answers.
    const ns = lab.ns("prober");
    const sink = lab.ns("sink");
    for (const n of [ns, sink]) {
      n.sysctl("net.ipv6.conf.all.accept_dad", "0");
      n.sysctl("net.ipv6.conf.default.accept_dad", "0");
    }
    lab.link(ns, "eth0", sink, "eth0");
    ns.ip("addr", "add", "198.18.0.2/24", "dev", "eth0");
    ns.ip("-6", "addr", "add", "2001:db8:0:1::2/64", "dev", "eth0", "nodad");
    ns.ip("route", "add", "198.51.100.0/24", "via", "198.18.0.1");
    ns.ip("-6", "route", "add", "2001:db8:50::/48", "via", "2001:db8:0:1::1");
    sink.ip("addr", "add", "198.18.0.1/24", "dev", "eth0");
    sink.ip("-6", "addr", "add", "2001:db8:0:1::1/64", "dev", "eth0", "nodad");
    sink.ip("route", "add", "blackhole", "198.51.100.0/24");
    sink.ip("-6", "route", "add", "blackhole", "2001:db8:50::/48");
    const backstopMs = 300;
    const outcome = await runProbes(ns, {
      probers: [{ identifier: 0x6666, timeoutMs: backstopMs }],
      // The signals' deadlines are far away: only the backstop can end these.
      probes: probes(0, 5_000, ["198.51.100.50", "2001:db8:50::50"], 2),
    });
    assert.ok("results" in outcome.report, JSON.stringify(outcome.report));
    for (const runs of outcome.report.results) {
      assert.equal(runs.length, 2);
      for (const result of runs) assertTimedOut(result, backstopMs);
    }
    assert.deepEqual(
      outcome.report.stats.map((s) => s.outstanding),
      [0],
    );
  });
});
