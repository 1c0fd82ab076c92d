// A fail-closed data plane at run time, through the built gateway in a lab pod
// after init-gateway.sh, on each backend init supports: what the gateway
// container can put back (the ruleset, vxlan0) is repaired within 10 s with
// init's own plan; what it cannot (/proc/sys) turns /readiness 503 with a
// detail naming the drift, and 200 again within 10 s of the fix.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { componentOf, metricsOf, readinessOf, awaitReadiness } from "../lab/gateway-health.js";
import { GATEWAY_POD_IPS, runInit, startGateway } from "../lab/gateway-pod.js";
import { ADDR, buildPodLab, type PodLab } from "../lab/pod-lab.js";
import type { NamespaceHttpClient } from "../lab/namespace-http.js";
import type { GatewayProcess } from "../lab/gateway-process.js";

const HEALTH_PORT = 8080;
// Shorter than the default 5s to keep CI quick; bench/integrity.ts measures the default.
const CHECK_INTERVAL = "2s";
const LIMIT_MS = 10_000;
const COMPONENT = "DataplaneIntegrity";
const READINESS = `http://${ADDR.gateway.v4}:${HEALTH_PORT}/readiness`;
const METRICS = `http://${ADDR.gateway.v4}:${HEALTH_PORT}/metrics`;

const BACKENDS = {
  nftables: { DATAPLANE: "nftables" },
  "iptables-nft": { DATAPLANE: "iptables", IPTABLES_BACKEND: "nft" },
  "iptables-legacy": { DATAPLANE: "iptables", IPTABLES_BACKEND: "legacy" },
} as const;

/** Polls `holds` every 20 ms; the ms it took, or a failure after LIMIT_MS. */
async function msUntil(what: string, holds: () => boolean): Promise<number> {
  const start = performance.now();
  for (;;) {
    if (holds()) return performance.now() - start;
    if (performance.now() - start > LIMIT_MS) assert.fail(`${what}: not within ${LIMIT_MS} ms`);
    await sleep(20);
  }
}

const succeeds = (run: () => unknown): boolean => {
  try {
    run();
    return true;
  } catch {
    return false;
  }
};

class GatewayPod {
  gateway!: GatewayProcess;
  client!: NamespaceHttpClient;
  constructor(readonly pod: PodLab) {}

  async start(env: Record<string, string>): Promise<void> {
    const init = await runInit(this.pod, env);
    assert.equal(init.code, 0, init.stderr);
    this.gateway = startGateway(this.pod, {
      HEALTH_PORT: String(HEALTH_PORT),
      EGRESS_POD_IPS: GATEWAY_POD_IPS,
      DATAPLANE_CHECK_INTERVAL: CHECK_INTERVAL,
    });
    this.client = await this.pod.httpClient(this.pod.gateway);
    const { matched, answer } = await awaitReadiness(this.client, READINESS, (a) => a.status === 200, 15_000);
    assert.ok(matched, `${answer.body}\n${this.gateway.dump()}`);
    assert.match(componentOf(answer, COMPONENT)?.detail ?? "", /as init set them up/);
  }

  exec(cmd: string, ...args: string[]): string {
    return this.pod.gateway.exec(cmd, args);
  }

  /** Breaks something, then measures until `repaired` holds again, and checks the log line and the counter. */
  async repaired(kind: string, breakIt: () => void, repaired: () => boolean): Promise<number> {
    const before = await this.metric(`egress_gateway_dataplane_repairs_total{kind="${kind}"}`);
    // Kernel events make the repair quick: the counter and the log line, not a
    // look at the broken state, prove that there was something to repair.
    breakIt();
    const ms = await msUntil(`${kind} repaired`, repaired);
    const after = await this.waitMetric(`egress_gateway_dataplane_repairs_total{kind="${kind}"}`, before + 1);
    assert.equal(after, before + 1);
    const line = await this.gateway.waitForLog(
      (l) => l.kind === kind && l.repaired === true && this.unseen(l),
    );
    assert.match(line.msg, /^data plane drift repaired: /);
    return ms;
  }

  private seen = new Set<unknown>();
  private unseen(line: unknown): boolean {
    if (this.seen.has(line)) return false;
    this.seen.add(line);
    return true;
  }

  async metric(key: string): Promise<number> {
    return (await metricsOf(this.client, METRICS)).get(key) ?? 0;
  }

  async waitMetric(key: string, atLeast: number): Promise<number> {
    for (let i = 0; i < 100; i++) {
      const value = await this.metric(key);
      if (value >= atLeast) return value;
      await sleep(50);
    }
    return this.metric(key);
  }

  /** A sysctl drift: 503 naming it within 10 s, 200 within 10 s of the fix. */
  async reported(
    kind: string,
    key: string,
    bad: string,
    good: string,
  ): Promise<{ down: number; up: number }> {
    const before = await this.metric(`egress_gateway_dataplane_drifts_total{kind="${kind}"}`);
    this.pod.gateway.sysctl(key, bad);
    const start = performance.now();
    const down = await awaitReadiness(this.client, READINESS, (a) => a.status === 503, LIMIT_MS);
    assert.ok(down.matched, down.answer.body);
    const downMs = performance.now() - start;
    const row = componentOf(down.answer, COMPONENT);
    assert.equal(row?.ready, false);
    assert.ok(row?.detail.includes(`${key} is ${bad}, expected ${good}`), row?.detail);
    assert.match(row?.detail ?? "", /cannot write \/proc\/sys/);
    const line = await this.gateway.waitForLog((l) => l.kind === kind && this.unseen(l));
    assert.ok(line.msg.startsWith(`data plane drift: ${key} is ${bad}`), line.msg);
    assert.equal(await this.metric(`egress_gateway_dataplane_drifts_total{kind="${kind}"}`), before + 1);

    this.pod.gateway.sysctl(key, good);
    const fixed = performance.now();
    const up = await awaitReadiness(this.client, READINESS, (a) => a.status === 200, LIMIT_MS);
    assert.ok(up.matched, up.answer.body);
    return { down: downMs, up: performance.now() - fixed };
  }
}

/** vxlan0's MAC, "" while it is gone (a repair replaces the device: delete, then add). */
function vxlanMac(pod: GatewayPod): string {
  try {
    const links = JSON.parse(pod.exec("ip", "-j", "link", "show", "dev", "vxlan0")) as { address: string }[];
    return links[0]?.address ?? "";
  } catch {
    return "";
  }
}
const WANT_MAC = "a2:2a:c6:33:64:02"; // 198.51.100.2

const times: Record<string, number[]> = {};
const record = (what: string, ms: number): void => void (times[what] ??= []).push(Math.round(ms));

describe("data plane integrity: nftables, through the built gateway", () => {
  let pod: PodLab;
  const gw = new GatewayPod(undefined as unknown as PodLab);
  before(async () => {
    pod = buildPodLab("integnft");
    Object.assign(gw, { pod });
    await gw.start(BACKENDS.nftables);
  });
  after(async () => {
    await gw.gateway?.kill();
    pod?.destroy();
    console.log(`# integrity times (ms): ${JSON.stringify(times)}`);
  });

  const table = (): boolean => succeeds(() => gw.exec("nft", "list", "table", "inet", "egress_gateway"));
  const snatRule = (): boolean =>
    gw
      .exec("nft", "list", "chain", "inet", "egress_gateway", "postrouting")
      .includes(`snat ip to ${ADDR.gateway.v4}`);

  it("deleting the nft table: repaired within 10 s", async () => {
    record(
      "nft table deleted",
      await gw.repaired("ruleset", () => gw.exec("nft", "delete", "table", "inet", "egress_gateway"), table),
    );
    assert.ok(snatRule());
    // Init's counting rules (kernel telemetry) are back with the rest of its table.
    const listed = gw.exec("nft", "list", "table", "inet", "egress_gateway");
    for (const comment of ["egw-forwarded-ipv4", "egw-snat-established-ipv4", "egw-snat-ipv4"])
      assert.ok(listed.includes(`comment "${comment}"`), comment);
  });

  it("flushing the SNAT chain: repaired within 10 s", async () => {
    record(
      "nft chain flushed",
      await gw.repaired(
        "ruleset",
        () => gw.exec("nft", "flush", "chain", "inet", "egress_gateway", "postrouting"),
        snatRule,
      ),
    );
  });

  it("deleting vxlan0: recreated with its MAC, VNI and port within 10 s", async () => {
    const exists = (): boolean => succeeds(() => gw.exec("ip", "link", "show", "dev", "vxlan0"));
    record(
      "vxlan0 deleted",
      await gw.repaired("vxlan", () => gw.exec("ip", "link", "del", "vxlan0"), exists),
    );
    const link = JSON.parse(gw.exec("ip", "-d", "-j", "link", "show", "dev", "vxlan0")) as {
      address: string;
      flags: string[];
      linkinfo: { info_data: { id: number; port: number } };
    }[];
    assert.equal(link[0]?.address, WANT_MAC);
    assert.deepEqual([link[0]?.linkinfo.info_data.id, link[0]?.linkinfo.info_data.port], [4097, 4790]);
    assert.ok(link[0]?.flags.includes("UP"));
  });

  it("changing vxlan0's MAC: put back within 10 s", async () => {
    record(
      "vxlan0 MAC changed",
      await gw.repaired(
        "vxlan",
        () => gw.exec("ip", "link", "set", "vxlan0", "address", "a2:2a:00:00:00:01"),
        () => vxlanMac(gw) === WANT_MAC,
      ),
    );
  });

  it("ip_forward=0: 503 naming it within 10 s, 200 within 10 s of the fix", async () => {
    const { down, up } = await gw.reported("forwarding", "net.ipv4.ip_forward", "0", "1");
    record("ip_forward=0 to 503", down);
    record("ip_forward=1 to 200", up);
  });

  it("send_redirects=1 on eth0: 503 naming it, 200 after the fix", async () => {
    const { down, up } = await gw.reported("redirects", "net.ipv4.conf.eth0.send_redirects", "1", "0");
    record("send_redirects=1 to 503", down);
    record("send_redirects=0 to 200", up);
  });

  it("nf_conntrack_acct=0: counted, logged and named in the detail, but /readiness stays 200", async () => {
    const key = 'egress_gateway_dataplane_drifts_total{kind="conntrack"}';
    const before = await gw.metric(key);
    gw.pod.gateway.sysctl("net.netfilter.nf_conntrack_acct", "0");
    const line = await gw.gateway.waitForLog((l) => l.kind === "conntrack", LIMIT_MS);
    assert.ok(
      line.msg.startsWith("data plane drift: net.netfilter.nf_conntrack_acct is 0, expected 1"),
      line.msg,
    );
    assert.match(line.msg, /flow logs lack byte counts/);
    assert.equal(await gw.metric(key), before + 1);
    const noted = await readinessOf(gw.client, READINESS);
    assert.equal(noted.status, 200, noted.body);
    assert.match(componentOf(noted, COMPONENT)?.detail ?? "", /nf_conntrack_acct is 0, expected 1/);

    gw.pod.gateway.sysctl("net.netfilter.nf_conntrack_acct", "1");
    const cleared = await awaitReadiness(
      gw.client,
      READINESS,
      (a) => a.status === 200 && !(componentOf(a, COMPONENT)?.detail ?? "").includes("nf_conntrack_acct"),
      LIMIT_MS,
    );
    assert.ok(cleared.matched, cleared.answer.body);
  });

  it("the counters name every kind; readiness 200 with the repairs counted in the detail", async () => {
    const metrics = await metricsOf(gw.client, METRICS);
    for (const kind of ["ruleset", "vxlan", "forwarding", "redirects", "rp_filter", "conntrack"]) {
      assert.ok(metrics.has(`egress_gateway_dataplane_drifts_total{kind="${kind}"}`), kind);
    }
    assert.equal(metrics.get('egress_gateway_dataplane_drifts_total{kind="ruleset"}'), 2);
    assert.equal(metrics.get('egress_gateway_dataplane_drifts_total{kind="vxlan"}'), 2);
    const answer = await readinessOf(gw.client, READINESS);
    assert.equal(answer.status, 200);
    assert.match(componentOf(answer, COMPONENT)?.detail ?? "", /\(4 drifts repaired\)/);
  });
});

for (const backend of ["iptables-nft", "iptables-legacy"] as const) {
  describe(`data plane integrity: ${backend}, through the built gateway`, () => {
    let pod: PodLab;
    const gw = new GatewayPod(undefined as unknown as PodLab);
    const save = backend === "iptables-nft" ? "iptables-nft-save" : "iptables-legacy-save";
    const tool = backend === "iptables-nft" ? "iptables-nft" : "iptables-legacy";
    before(async () => {
      pod = buildPodLab(`integ${backend === "iptables-nft" ? "ipn" : "ipl"}`);
      Object.assign(gw, { pod });
      await gw.start(BACKENDS[backend]);
    });
    after(async () => {
      await gw.gateway?.kill();
      pod?.destroy();
    });

    const natRules = (): string[] => gw.exec(save, "-t", "nat").split("\n");
    const snatRule = (): boolean => natRules().some((l) => l.includes(`--to-source ${ADDR.gateway.v4}`));
    const oneJump = (): boolean =>
      natRules().filter((l) => l.startsWith("-A POSTROUTING") && l.includes("-j EGRESS-GW-POSTROUTING"))
        .length === 1;

    it("flushing our SNAT chain: repaired within 10 s", async () => {
      record(
        `${backend} chain flushed`,
        await gw.repaired(
          "ruleset",
          () => gw.exec(tool, "-t", "nat", "-F", "EGRESS-GW-POSTROUTING"),
          snatRule,
        ),
      );
    });

    it("deleting the jump to our chain: one jump again within 10 s", async () => {
      record(
        `${backend} jump deleted`,
        await gw.repaired(
          "ruleset",
          () => gw.exec(tool, "-t", "nat", "-D", "POSTROUTING", "-j", "EGRESS-GW-POSTROUTING"),
          oneJump,
        ),
      );
      assert.ok(snatRule());
    });

    it("no nft table appears: repairs stay on init's backend", () => {
      assert.equal(
        succeeds(() => gw.exec("nft", "list", "table", "inet", "egress_gateway")),
        false,
      );
    });
  });
}
