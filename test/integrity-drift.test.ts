// The pure core of src/integrity: what init set up (the baseline), and drift
// as init's own read-back would call it, from plain data.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  detectedFrom,
  initConfigFor,
  learnBaseline,
  initSnatOf,
  type ObservedRules,
} from "../src/integrity/baseline.js";
import {
  findDrift,
  repairSteps,
  sysctlMismatch,
  TELEMETRY_ONLY,
  type Reading,
} from "../src/integrity/drift.js";
import { planInit } from "../src/init/plan.js";
import { COUNTER_COMMENTS } from "../src/init/rules.js";
import type { InitPlan, LinkInfo } from "../src/init/types.js";
import { detected, eth0, initConfig, iptablesWith, vxlan0 } from "./helpers/init-fixtures.js";

const config = initConfig();
const nftables = { dataplane: { kind: "nftables" }, vxlanPort: 4790, rulesetFound: true } as const;

/** What `nft list table` shows after init: the rendered table without the delete-then-declare prologue. */
function listedTable(plan: InitPlan): string {
  const step = plan.steps.find((s) => s.kind === "ruleset");
  assert.ok(step?.kind === "ruleset");
  return step.input.split("\n").slice(2).join("\n");
}

const SYSCTLS_AS_INIT_LEFT_THEM = (plan: InitPlan): Map<string, string | undefined> =>
  new Map(plan.expect.sysctls.map((w) => [w.key, w.value]));

/** Init's plan for this reading, and the drifts found in it. */
function look(links: readonly LinkInfo[], rules: ObservedRules, sysctls?: Map<string, string | undefined>) {
  const plan = planInit(initConfigFor(config, nftables), detectedFrom(links, rules));
  const reading: Reading = { links, rules, sysctls: sysctls ?? SYSCTLS_AS_INIT_LEFT_THEM(plan) };
  return { plan, drifts: findDrift(plan, reading) };
}

/** The table exactly as init wrote it for a pod with eth0 and vxlan0. */
const cleanTable = (): string => listedTable(look([eth0(), vxlan0()], { kind: "nftables", table: "x" }).plan);

describe("integrity: the baseline is what init set up", () => {
  it("our nft table: nftables", () => {
    const found = learnBaseline(config, detected({ nft: { tool: { state: "works" }, hasOurTable: true } }));
    assert.deepEqual(found, { dataplane: { kind: "nftables" }, vxlanPort: 4790, rulesetFound: true });
  });

  it("our chains in iptables-legacy, although nft works: iptables-legacy (init was told so)", () => {
    const legacy = iptablesWith({ 4: "*nat\n:EGRESS-GW-POSTROUTING - [0:0]\nCOMMIT\n" });
    const found = learnBaseline(config, detected({ iptables: { nft: iptablesWith({}), legacy } }));
    assert.deepEqual(found.dataplane, { kind: "iptables", flavour: "legacy" });
    assert.equal(found.rulesetFound, true);
  });

  it("vxlan0's port as init set it, not the gateway's default (EGRESS_VXLAN_PORT is init's only)", () => {
    const links = [eth0(), vxlan0({ vxlan: { vni: 4097, port: 4789, dev: "eth0" } })];
    assert.equal(learnBaseline(config, detected({ links })).vxlanPort, 4789);
  });

  it("init's SNAT addresses and port range, from its rules on each backend", () => {
    const table = [
      "table inet egress_gateway {",
      "  chain postrouting {",
      '    oifname "eth0" ip saddr != 198.51.100.2 meta l4proto { tcp, udp } counter packets 3 bytes 180 snat ip to 198.51.100.2:40000-40099 fully-random comment "egw-snat-ipv4"',
      '    oifname "eth0" ip saddr != 198.51.100.2 counter packets 0 bytes 0 snat ip to 198.51.100.2 fully-random comment "egw-snat-ipv4"',
      '    oifname "eth0" ip6 saddr != 2001:db8:100::2 meta l4proto { tcp, udp } counter packets 0 bytes 0 snat ip6 to [2001:db8:100::2]:40000-40099 fully-random comment "egw-snat-ipv6"',
      "  }",
      "}",
    ].join("\n");
    assert.deepEqual(initSnatOf({ kind: "nftables", table }), {
      pod: { 4: "198.51.100.2", 6: "2001:db8:100::2" },
      ports: { first: 40_000, last: 40_099 },
    });
    assert.equal(initSnatOf({ kind: "nftables", table: undefined }), undefined);
    const saved = iptablesWith({
      4: [
        "*nat",
        ":EGRESS-GW-POSTROUTING - [0:0]",
        "-A EGRESS-GW-POSTROUTING -o eth0 ! -s 198.51.100.2/32 -p tcp -m comment --comment egw-snat-ipv4 -j SNAT --to-source 198.51.100.2:5000-5999 --random-fully",
        "COMMIT",
      ].join("\n"),
    }).saved;
    assert.deepEqual(initSnatOf({ kind: "iptables", flavour: "nft", saved }), {
      pod: { 4: "198.51.100.2" },
      ports: { first: 5000, last: 5999 },
    });
  });

  it("repairs use init's families, addresses and ports over the gateway container's own", () => {
    // Init had EGRESS_POD_IPS (dual-stack) and a port range; the gateway container only EGRESS_POD_IP.
    const gatewayOnly = { ...config, podIPv6: undefined };
    const snat = { pod: { 4: "198.51.100.2", 6: "2001:db8:100::2" }, ports: { first: 40_000, last: 40_099 } };
    const pinned = { ...nftables, snat };
    const init = initConfigFor(gatewayOnly, pinned);
    assert.deepEqual(
      [init.podIPv4, init.podIPv6, init.snatPorts],
      ["198.51.100.2", "2001:db8:100::2", snat.ports],
    );
    const plan = planInit(init, detectedFrom([eth0(), vxlan0()], { kind: "nftables", table: undefined }));
    const step = plan.steps.find((s) => s.kind === "ruleset");
    assert.ok(step?.kind === "ruleset");
    assert.match(step.input, /snat ip to 198\.51\.100\.2:40000-40099/);
    assert.match(step.input, /snat ip6 to \[2001:db8:100::2\]:40000-40099/);
    // No ruleset of init's found: the gateway's own configuration.
    assert.deepEqual(initConfigFor(gatewayOnly, nftables).podIPv6, undefined);
    assert.deepEqual(initConfigFor(config, nftables).snatPorts, config.snatPorts);
  });

  it("nothing of init's: where init would write it, and missing from the first check", () => {
    const found = learnBaseline(config, detected());
    assert.deepEqual(found, { dataplane: { kind: "nftables" }, vxlanPort: 4790, rulesetFound: false });
  });
});

describe("integrity: drift as init's read-back sees it", () => {
  it("the state init left: no drift", () => {
    assert.deepEqual(look([eth0(), vxlan0()], { kind: "nftables", table: cleanTable() }).drifts, []);
  });

  it("counters that have counted (traffic flowed): no drift", () => {
    const counted = cleanTable().replace(/\bcounter\b/g, () => "counter packets 1234 bytes 567890");
    assert.notEqual(counted, cleanTable());
    assert.deepEqual(look([eth0(), vxlan0()], { kind: "nftables", table: counted }).drifts, []);
  });

  it("a counting rule deleted (kernel telemetry's): ruleset drift, and the repair writes it back", () => {
    const forwarded = COUNTER_COMMENTS.forwarded(4);
    const table = cleanTable()
      .split("\n")
      .filter((line) => !line.includes(`"${forwarded}"`))
      .join("\n");
    const { plan, drifts } = look([eth0(), vxlan0()], { kind: "nftables", table });
    assert.equal(drifts.length, 1);
    assert.equal(drifts[0]?.kind, "ruleset");
    const step = repairSteps(plan, drifts)[0];
    assert.ok(step?.kind === "ruleset" && step.input.includes(`comment "${forwarded}"`));
  });

  it("the table deleted: ruleset drift, repaired by init's ruleset step alone", () => {
    const { plan, drifts } = look([eth0(), vxlan0()], { kind: "nftables", table: undefined });
    assert.deepEqual(drifts, [{ kind: "ruleset", problems: ["table inet egress_gateway is missing"] }]);
    const steps = repairSteps(plan, drifts);
    assert.deepEqual(
      steps.map((s) => s.kind),
      ["ruleset"],
    );
    const input = steps[0]?.kind === "ruleset" ? steps[0].input : "";
    assert.match(input, /snat ip to 198\.51\.100\.2/);
    // Init's counting rules come back with the rest of its table.
    for (const family of [4, 6] as const) {
      for (const comment of [
        COUNTER_COMMENTS.snat,
        COUNTER_COMMENTS.forwarded,
        COUNTER_COMMENTS.snatEstablished,
      ])
        assert.ok(input.includes(`comment "${comment(family)}"`), comment(family));
    }
  });

  it("the SNAT chain flushed: ruleset drift naming the chain", () => {
    const table = cleanTable()
      .split("\n")
      .filter((line) => !/^\s*oifname "eth0" ip6? saddr/.test(line))
      .join("\n");
    const { drifts } = look([eth0(), vxlan0()], { kind: "nftables", table });
    assert.deepEqual(drifts, [
      { kind: "ruleset", problems: ["table inet egress_gateway chain postrouting has 0 rules, expected 4"] },
    ]);
  });

  it("vxlan0 deleted: vxlan drift, its rp_filter not judged until it is back; only the link step repairs", () => {
    const plan = look([eth0(), vxlan0()], { kind: "nftables", table: cleanTable() }).plan;
    const sysctls = SYSCTLS_AS_INIT_LEFT_THEM(plan);
    sysctls.set("net.ipv4.conf.vxlan0.rp_filter", undefined);
    const gone = look([eth0()], { kind: "nftables", table: cleanTable() }, sysctls);
    assert.deepEqual(gone.drifts, [{ kind: "vxlan", problems: ["vxlan0 is missing"] }]);
    const steps = repairSteps(gone.plan, gone.drifts);
    assert.deepEqual(
      steps.map((s) => (s.kind === "link" ? s.batch : s.kind)),
      [
        [
          "link add vxlan0 address a2:2a:c6:33:64:02 type vxlan id 4097 dstport 4790 dev eth0",
          "link set vxlan0 up",
        ],
      ],
    );
  });

  it("vxlan0's MAC changed: replaced, as init would; vxlan0 down: set up", () => {
    const changed = look([eth0(), vxlan0({ mac: "a2:2a:00:00:00:01" })], {
      kind: "nftables",
      table: cleanTable(),
    });
    assert.deepEqual(changed.drifts, [
      { kind: "vxlan", problems: ["vxlan0: MAC a2:2a:00:00:00:01, not a2:2a:c6:33:64:02"] },
    ]);
    assert.equal(repairSteps(changed.plan, changed.drifts)[0]?.kind, "link");
    const down = look([eth0(), vxlan0({ up: false })], { kind: "nftables", table: cleanTable() });
    assert.deepEqual(down.drifts, [{ kind: "vxlan", problems: ["vxlan0 is down"] }]);
  });

  it("forwarding off and redirects on: reported by kind, and no step would touch /proc/sys", () => {
    const plan = look([eth0(), vxlan0()], { kind: "nftables", table: cleanTable() }).plan;
    const sysctls = SYSCTLS_AS_INIT_LEFT_THEM(plan);
    sysctls.set("net.ipv4.ip_forward", "0");
    sysctls.set("net.ipv4.conf.eth0.send_redirects", "1");
    sysctls.set("net.ipv4.conf.all.rp_filter", "2");
    const { plan: again, drifts } = look(
      [eth0(), vxlan0()],
      { kind: "nftables", table: cleanTable() },
      sysctls,
    );
    assert.deepEqual(drifts, [
      { kind: "forwarding", problems: ["net.ipv4.ip_forward is 0, expected 1"] },
      { kind: "redirects", problems: ["net.ipv4.conf.eth0.send_redirects is 1, expected 0"] },
      { kind: "rp_filter", problems: ["net.ipv4.conf.all.rp_filter is 2, expected 0"] },
    ]);
    assert.deepEqual(repairSteps(again, drifts), []);
  });

  it("conntrack accounting off: its own kind (noted, not a safety matter), and no step would touch /proc/sys", () => {
    const plan = look([eth0(), vxlan0()], { kind: "nftables", table: cleanTable() }).plan;
    const sysctls = SYSCTLS_AS_INIT_LEFT_THEM(plan);
    sysctls.set("net.netfilter.nf_conntrack_acct", "0");
    sysctls.set("net.netfilter.nf_conntrack_timestamp", undefined);
    const { plan: again, drifts } = look(
      [eth0(), vxlan0()],
      { kind: "nftables", table: cleanTable() },
      sysctls,
    );
    assert.deepEqual(drifts, [
      {
        kind: "conntrack",
        problems: [
          "net.netfilter.nf_conntrack_acct is 0, expected 1",
          "net.netfilter.nf_conntrack_timestamp is unreadable, expected 1",
        ],
      },
    ]);
    assert.ok(TELEMETRY_ONLY.has("conntrack") && !TELEMETRY_ONLY.has("forwarding"));
    assert.deepEqual(repairSteps(again, drifts), []);
  });

  it("the sysctl mismatch a light round compares: empty as init left them, the keys and values read otherwise", () => {
    const plan = look([eth0(), vxlan0()], { kind: "nftables", table: cleanTable() }).plan;
    const sysctls = SYSCTLS_AS_INIT_LEFT_THEM(plan);
    assert.equal(sysctlMismatch(plan, sysctls), "");
    sysctls.set("net.ipv4.ip_forward", "0");
    sysctls.set("net.ipv4.conf.vxlan0.rp_filter", undefined);
    assert.equal(
      sysctlMismatch(plan, sysctls),
      "net.ipv4.conf.vxlan0.rp_filter=unreadable net.ipv4.ip_forward=0",
    );
  });

  it("iptables-legacy: our chain emptied is ruleset drift; the plan stays on legacy and removes nothing elsewhere", () => {
    const legacy = {
      dataplane: { kind: "iptables", flavour: "legacy" },
      vxlanPort: 4790,
      rulesetFound: true,
    } as const;
    const v4only = { ...config, podIPv6: undefined };
    const links = [eth0(), vxlan0()];
    const nat = [
      "*nat",
      ":POSTROUTING ACCEPT [0:0]",
      ":EGRESS-GW-POSTROUTING - [0:0]",
      "-A POSTROUTING -j EGRESS-GW-POSTROUTING",
      "COMMIT",
    ];
    const rulesWith = (mangle: readonly string[]): ObservedRules => ({
      kind: "iptables",
      flavour: "legacy",
      saved: iptablesWith({ 4: [...nat, ...mangle].join("\n") }).saved,
    });
    const planFor = (rules: ObservedRules): InitPlan =>
      planInit(initConfigFor(v4only, legacy), detectedFrom(links, rules));
    // Our forward chain exactly as init writes it (MSS clamp, and whatever else init counts there).
    const ours = planFor(rulesWith([]))
      .steps.flatMap((step) => (step.kind === "ruleset" ? step.input.split("\n") : []))
      .filter((line) => line.startsWith("-A EGRESS-GW-FORWARD "));
    assert.ok(ours.some((line) => line.includes("--set-mss 1410")));
    const rules = rulesWith([
      "*mangle",
      ":FORWARD ACCEPT [0:0]",
      ":EGRESS-GW-FORWARD - [0:0]",
      "-A FORWARD -j EGRESS-GW-FORWARD",
      ...ours,
      "COMMIT",
    ]);
    const plan = planFor(rules);
    assert.deepEqual(plan.dataplane, { kind: "iptables", flavour: "legacy" });
    const drifts = findDrift(plan, { links, rules, sysctls: SYSCTLS_AS_INIT_LEFT_THEM(plan) });
    assert.deepEqual(drifts, [
      {
        kind: "ruleset",
        problems: ["iptables-legacy IPv4 nat EGRESS-GW-POSTROUTING has 0 rules, expected 3"],
      },
    ]);
    const steps = repairSteps(plan, drifts);
    assert.deepEqual(
      steps.map((s) => (s.kind === "ruleset" ? s.argv[0] : s.kind)),
      ["iptables-legacy-restore"],
    );
  });
});
