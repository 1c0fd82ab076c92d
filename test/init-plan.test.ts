// The init planner and renderers from plain data: what would be done, in which
// order, with which exact text, for every backend and address family.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseArgs } from "../src/init/cli.js";
import { InitError, oneLine } from "../src/init/errors.js";
import { jumpPositions, parseIptablesSave } from "../src/init/iptables-save.js";
import { parseLinks } from "../src/init/links.js";
import { planInit } from "../src/init/plan.js";
import { preflight } from "../src/init/preflight.js";
import { renderIptables } from "../src/init/render-iptables.js";
import { renderNft } from "../src/init/render-nft.js";
import { renderDryRun, renderSummary } from "../src/init/render-plan.js";
import type { InitPlan, Step } from "../src/init/types.js";
import { checkIptables, checkNftTable, checkVxlan } from "../src/init/verify.js";
import { decideVxlan } from "../src/init/vxlan.js";
import {
  detected,
  emptyIptables,
  eth0,
  initConfig,
  iptablesWith,
  POD_V4,
  POD_V6,
  unprivileged,
  vxlan0,
} from "./helpers/init-fixtures.js";

function stepOf<K extends Step["kind"]>(plan: InitPlan, kind: K, index = 0): Extract<Step, { kind: K }> {
  const step = plan.steps.filter((s) => s.kind === kind)[index];
  assert.ok(step, `no ${kind} step ${index}`);
  return step as Extract<Step, { kind: K }>;
}

function throwsInit(fn: () => unknown, code: string, exitCode: number, message?: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof InitError, String(error));
    assert.equal(error.code, code);
    assert.equal(error.exitCode, exitCode);
    if (message) assert.match(error.message, message);
    assert.doesNotMatch(error.message, /\n/);
    return true;
  });
}

const WANT = { vni: 4097, port: 4790, dev: "eth0", mac: "a2:2a:c6:33:64:02" };

describe("vxlan0 keep or replace", () => {
  it("creates a missing one", () => assert.deepEqual(decideVxlan(undefined, WANT), { action: "create" }));

  it("keeps one with the right VNI, port, dev and MAC (a link-local address is fine)", () => {
    assert.deepEqual(decideVxlan(vxlan0(), WANT), { action: "keep", ifindex: 7 });
  });

  it("replaces one with any wrong setting, naming each", () => {
    const wrong = vxlan0({
      mac: "a2:2a:0a:0a:0a:01",
      vxlan: { vni: 99, port: 4789, dev: "eth1" },
      addresses: [{ family: 4, address: "10.0.0.1", scope: "global" }],
    });
    assert.deepEqual(decideVxlan(wrong, WANT), {
      action: "replace",
      ifindex: 7,
      reasons: [
        "VNI 99, not 4097",
        "port 4789, not 4790",
        "dev eth1, not eth0",
        "MAC a2:2a:0a:0a:0a:01, not a2:2a:c6:33:64:02",
        "it has the address 10.0.0.1",
      ],
    });
    const veth = vxlan0({ kind: "veth", vxlan: undefined });
    assert.deepEqual(decideVxlan(veth, WANT), {
      action: "replace",
      ifindex: 7,
      reasons: ["it is a veth device, not vxlan"],
    });
  });

  it("turns the decision into ip -batch lines", () => {
    const create = planInit(initConfig(), detected());
    assert.deepEqual(stepOf(create, "link").batch, [
      "link add vxlan0 address a2:2a:c6:33:64:02 type vxlan id 4097 dstport 4790 dev eth0",
      "link set vxlan0 up",
    ]);
    assert.deepEqual(stepOf(create, "link").argv, ["ip", "-batch", "-"]);
    const keep = planInit(initConfig(), detected({ links: [eth0(), vxlan0({ up: false })] }));
    assert.deepEqual(stepOf(keep, "link").batch, ["link set vxlan0 up"]);
    const replace = planInit(
      initConfig(),
      detected({ links: [eth0(), vxlan0({ vxlan: { vni: 5, port: 4790, dev: "eth0" } })] }),
    );
    assert.equal(stepOf(replace, "link").batch[0], "link del vxlan0");
    assert.match(stepOf(replace, "link").title, /Replace the existing vxlan0 \(VNI 5, not 4097\)/);
  });
});

describe("MSS clamp", () => {
  it("is MTU(vxlan0) - 40 for IPv4 and - 60 for IPv6, with vxlan0 MTU = eth0 MTU - 50 when created", () => {
    assert.deepEqual(planInit(initConfig(), detected()).mss, { 4: 1410, 6: 1390 });
    const jumbo = planInit(initConfig(), detected({ links: [eth0({ mtu: 9000 })] }));
    assert.equal(jumbo.vxlan?.mtu, 8950);
    assert.deepEqual(jumbo.mss, { 4: 8910, 6: 8890 });
  });

  it("follows a kept vxlan0's own MTU", () => {
    const plan = planInit(initConfig(), detected({ links: [eth0(), vxlan0({ mtu: 1400 })] }));
    assert.equal(plan.vxlan?.decision.action, "keep");
    assert.deepEqual(plan.mss, { 4: 1360, 6: 1340 });
  });

  it("only lowers: the rules match an MSS above the value", () => {
    const nft = renderNft({
      egress: "eth0",
      snat: {},
      snatPorts: { first: 1024, last: 65_535 },
      mss: { 4: 1410 },
      dropIcmpv6Redirects: false,
    });
    assert.match(nft.input, /tcp option maxseg size > 1410 tcp option maxseg size set 1410/);
    const ipt = renderIptables(
      "nft",
      4,
      {
        egress: "eth0",
        snat: {},
        snatPorts: { first: 1024, last: 65_535 },
        mss: { 4: 1410 },
        dropIcmpv6Redirects: false,
      },
      undefined,
    );
    assert.match(ipt.input, /-m tcpmss --mss 1411:65535 -j TCPMSS --set-mss 1410/);
  });
});

describe("plan order", () => {
  it("puts the rules first, forwarding last, and rp_filter default before vxlan0 is created", () => {
    const plan = planInit(initConfig(), detected());
    const titles = plan.steps.map((s) => `${s.kind}: ${s.title.split(/[:(]/)[0]?.trim()}`);
    assert.deepEqual(titles, [
      "ruleset: Install the SNAT with fully random ports 1024-65535, MSS clamp and ICMPv6-redirect drop rules",
      "sysctl: Turn conntrack accounting and timestamps on",
      "sysctl: Suppress ICMP redirects",
      "sysctl: Turn reverse-path filtering off",
      "link: Create vxlan0",
      "sysctl: Turn reverse-path filtering off on vxlan0",
      "sysctl: Turn forwarding on",
    ]);
    assert.deepEqual(stepOf(plan, "sysctl", 0).writes, [
      { key: "net.netfilter.nf_conntrack_acct", value: "1" },
      { key: "net.netfilter.nf_conntrack_timestamp", value: "1" },
    ]);
    assert.deepEqual(stepOf(plan, "sysctl", 1).writes, [
      { key: "net.ipv4.conf.all.send_redirects", value: "0" },
      { key: "net.ipv4.conf.default.send_redirects", value: "0" },
      { key: "net.ipv4.conf.eth0.send_redirects", value: "0" },
    ]);
    assert.deepEqual(stepOf(plan, "sysctl", 2).writes, [
      { key: "net.ipv4.conf.all.rp_filter", value: "0" },
      { key: "net.ipv4.conf.default.rp_filter", value: "0" },
    ]);
    assert.deepEqual(stepOf(plan, "sysctl", 3).writes, [
      { key: "net.ipv4.conf.vxlan0.rp_filter", value: "0" },
    ]);
    assert.deepEqual(stepOf(plan, "sysctl", 4).writes, [
      { key: "net.ipv4.ip_forward", value: "1" },
      { key: "net.ipv6.conf.all.forwarding", value: "1" },
    ]);
    assert.equal(plan.expect.sysctls.length, 10);
  });

  it("IPv4 only: no IPv6 rule, no IPv6 forwarding", () => {
    const plan = planInit(initConfig({ podIPv6: undefined }), detected());
    assert.deepEqual(plan.families, [4]);
    const text = stepOf(plan, "ruleset").input;
    assert.doesNotMatch(text, /ip6|ipv6|icmpv6/);
    assert.deepEqual(stepOf(plan, "sysctl", 4).writes, [{ key: "net.ipv4.ip_forward", value: "1" }]);
  });

  it("IPv6 only: SNAT and forwarding for IPv6, no vxlan0 and no MSS clamp, with a note", () => {
    const plan = planInit(initConfig({ podIPv4: undefined }), detected());
    assert.equal(plan.vxlan, undefined);
    assert.deepEqual(plan.mss, {});
    assert.equal(plan.steps.filter((s) => s.kind === "link").length, 0);
    assert.ok(
      plan.notes.some((n) => n.startsWith("IPv6-only pod: no IPv4 address to derive the vxlan0 MAC")),
    );
    const text = stepOf(plan, "ruleset").input;
    assert.match(text, /snat ip6 to \[2001:db8:100::2\]:1024-65535 fully-random/);
    assert.doesNotMatch(text, /snat ip to|maxseg/);
    assert.deepEqual(stepOf(plan, "sysctl", 3).writes, [{ key: "net.ipv6.conf.all.forwarding", value: "1" }]);
  });
});

describe("nftables rendering", () => {
  it("replaces one table atomically: declare, delete, then the full table, in one nft -f", () => {
    const plan = planInit(initConfig(), detected());
    const step = stepOf(plan, "ruleset");
    assert.deepEqual(step.argv, ["nft", "-f", "-"]);
    assert.equal(
      step.input,
      `table inet egress_gateway
delete table inet egress_gateway
table inet egress_gateway {
\tchain postrouting {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\toifname "eth0" ip saddr != ${POD_V4} meta l4proto { tcp, udp } counter snat ip to ${POD_V4}:1024-65535 fully-random comment "egw-snat-ipv4"
\t\toifname "eth0" ip saddr != ${POD_V4} counter snat ip to ${POD_V4} fully-random comment "egw-snat-ipv4"
\t\toifname "eth0" ip6 saddr != ${POD_V6} meta l4proto { tcp, udp } counter snat ip6 to [${POD_V6}]:1024-65535 fully-random comment "egw-snat-ipv6"
\t\toifname "eth0" ip6 saddr != ${POD_V6} counter snat ip6 to ${POD_V6} fully-random comment "egw-snat-ipv6"
\t}

\tchain forward {
\t\ttype filter hook forward priority mangle; policy accept;
\t\tmeta nfproto ipv4 counter comment "egw-forwarded-ipv4"
\t\tmeta nfproto ipv4 ct status snat counter comment "egw-snat-established-ipv4"
\t\tmeta nfproto ipv6 counter comment "egw-forwarded-ipv6"
\t\tmeta nfproto ipv6 ct status snat counter comment "egw-snat-established-ipv6"
\t\toifname "eth0" meta nfproto ipv4 tcp flags & (syn | rst) == syn tcp option maxseg size > 1410 tcp option maxseg size set 1410
\t\toifname "eth0" meta nfproto ipv6 tcp flags & (syn | rst) == syn tcp option maxseg size > 1390 tcp option maxseg size set 1390
\t}

\tchain output {
\t\ttype filter hook output priority filter; policy accept;
\t\ticmpv6 type nd-redirect drop
\t}
}
`,
    );
    assert.deepEqual(
      plan.expect.chains.map((c) => [c.chain, c.markers]),
      [
        [
          "postrouting",
          [
            `snat ip to ${POD_V4}:1024-65535 fully-random`,
            `snat ip to ${POD_V4} fully-random`,
            `snat ip6 to [${POD_V6}]:1024-65535 fully-random`,
            `snat ip6 to ${POD_V6} fully-random`,
          ],
        ],
        [
          "forward",
          [
            "egw-forwarded-ipv4",
            "egw-snat-established-ipv4",
            "egw-forwarded-ipv6",
            "egw-snat-established-ipv6",
            "maxseg size set 1410",
            "maxseg size set 1390",
          ],
        ],
        ["output", ["nd-redirect"]],
      ],
    );
  });
});

describe("iptables rendering", () => {
  it("rewrites our chains with --noflush and inserts one jump (IPv4, iptables-nft)", () => {
    const plan = planInit(initConfig({ dataplane: "iptables", iptablesBackend: "nft" }), detected());
    assert.deepEqual(plan.dataplane, { kind: "iptables", flavour: "nft" });
    const v4 = stepOf(plan, "ruleset", 0);
    assert.deepEqual(v4.argv, ["iptables-nft-restore", "-w", "5", "--noflush"]);
    assert.equal(
      v4.input,
      `*nat
:EGRESS-GW-POSTROUTING - [0:0]
-I POSTROUTING 1 -j EGRESS-GW-POSTROUTING
-A EGRESS-GW-POSTROUTING -o eth0 ! -s ${POD_V4}/32 -p tcp -m comment --comment egw-snat-ipv4 -j SNAT --to-source ${POD_V4}:1024-65535 --random-fully
-A EGRESS-GW-POSTROUTING -o eth0 ! -s ${POD_V4}/32 -p udp -m comment --comment egw-snat-ipv4 -j SNAT --to-source ${POD_V4}:1024-65535 --random-fully
-A EGRESS-GW-POSTROUTING -o eth0 ! -s ${POD_V4}/32 -m comment --comment egw-snat-ipv4 -j SNAT --to-source ${POD_V4} --random-fully
COMMIT
*mangle
:EGRESS-GW-FORWARD - [0:0]
-I FORWARD 1 -j EGRESS-GW-FORWARD
-A EGRESS-GW-FORWARD -m comment --comment egw-forwarded-ipv4
-A EGRESS-GW-FORWARD -m conntrack --ctstate SNAT -m comment --comment egw-snat-established-ipv4
-A EGRESS-GW-FORWARD -o eth0 -p tcp -m tcp --tcp-flags SYN,RST SYN -m tcpmss --mss 1411:65535 -j TCPMSS --set-mss 1410
COMMIT
`,
    );
  });

  it("drops ICMPv6 redirects in its own filter chain (IPv6, iptables-legacy)", () => {
    const plan = planInit(initConfig({ dataplane: "iptables", iptablesBackend: "legacy" }), detected());
    const v6 = stepOf(plan, "ruleset", 1);
    assert.deepEqual(v6.argv, ["ip6tables-legacy-restore", "-w", "5", "--noflush"]);
    assert.match(
      v6.input,
      new RegExp(
        `-A EGRESS-GW-POSTROUTING -o eth0 ! -s ${POD_V6}/128 -p udp -m comment --comment egw-snat-ipv6 -j SNAT --to-source \\[${POD_V6}\\]:1024-65535 --random-fully\n` +
          `-A EGRESS-GW-POSTROUTING -o eth0 ! -s ${POD_V6}/128 -m comment --comment egw-snat-ipv6 -j SNAT --to-source ${POD_V6} --random-fully\n`,
      ),
    );
    assert.match(v6.input, /--set-mss 1390/);
    assert.match(
      v6.input,
      /\*filter\n:EGRESS-GW-OUTPUT - \[0:0\]\n-I OUTPUT 1 -j EGRESS-GW-OUTPUT\n-A EGRESS-GW-OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type 137 -j DROP\nCOMMIT\n$/,
    );
  });

  it("deletes every existing jump, highest position first, and leaves foreign rules alone", () => {
    const saved = `*nat
:POSTROUTING ACCEPT [0:0]
:EGRESS-GW-POSTROUTING - [0:0]
:KUBE-POSTROUTING - [0:0]
-A POSTROUTING -j EGRESS-GW-POSTROUTING
-A POSTROUTING -j KUBE-POSTROUTING
-A POSTROUTING -o eth0 -j EGRESS-GW-POSTROUTING
-A POSTROUTING -j EGRESS-GW-POSTROUTING
-A EGRESS-GW-POSTROUTING -o eth0 ! -s ${POD_V4}/32 -j SNAT --to-source ${POD_V4}
COMMIT
`;
    const plan = planInit(
      initConfig({ dataplane: "iptables", iptablesBackend: "legacy", podIPv6: undefined }),
      detected({ iptables: { nft: emptyIptables(), legacy: iptablesWith({ 4: saved }) } }),
    );
    const lines = stepOf(plan, "ruleset")
      .input.split("\n")
      .filter((l) => !l.startsWith("#"));
    assert.deepEqual(lines.slice(0, 7), [
      "*nat",
      ":EGRESS-GW-POSTROUTING - [0:0]",
      "-D POSTROUTING 4",
      "-D POSTROUTING 3",
      "-D POSTROUTING 1",
      "-I POSTROUTING 1 -j EGRESS-GW-POSTROUTING",
      `-A EGRESS-GW-POSTROUTING -o eth0 ! -s ${POD_V4}/32 -p tcp -m comment --comment egw-snat-ipv4 -j SNAT --to-source ${POD_V4}:1024-65535 --random-fully`,
    ]);
    assert.ok(!lines.some((l) => l.includes("KUBE")));
    assert.equal(lines.filter((l) => l.startsWith("-I ")).length, 2, "one jump per owned chain");
  });

  it("parses iptables-save and finds jumps by target only", () => {
    const tables = parseIptablesSave(
      "# x\n*nat\n:POSTROUTING ACCEPT [1:2]\n-A POSTROUTING -j EGRESS-GW-POSTROUTING-X\n-A POSTROUTING -g EGRESS-GW-POSTROUTING\nCOMMIT\n",
    );
    const rules = tables.get("nat")?.get("POSTROUTING") ?? [];
    assert.deepEqual(rules, ["-j EGRESS-GW-POSTROUTING-X", "-g EGRESS-GW-POSTROUTING"]);
    assert.deepEqual(jumpPositions(rules, "EGRESS-GW-POSTROUTING"), [2]);
  });
});

describe("dataplane choice", () => {
  it("auto: native nftables when nft works", () => {
    assert.deepEqual(planInit(initConfig(), detected()).dataplane, { kind: "nftables" });
  });

  it("auto: iptables when nft does not work, the flavour that already has rules", () => {
    const nftFails = {
      tool: { state: "fails", reason: "nft is not installed" },
      hasOurTable: false,
    } as const;
    const legacyRules = iptablesWith({ 4: "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n" });
    const plan = planInit(
      initConfig(),
      detected({ nft: nftFails, iptables: { nft: emptyIptables(), legacy: legacyRules } }),
    );
    assert.deepEqual(plan.dataplane, { kind: "iptables", flavour: "legacy" });
    assert.deepEqual(planInit(initConfig(), detected({ nft: nftFails })).dataplane, {
      kind: "iptables",
      flavour: "nft",
    });
  });

  it("honours DATAPLANE and IPTABLES_BACKEND, and refuses a tool that does not work (exit 3)", () => {
    assert.deepEqual(
      planInit(initConfig({ dataplane: "iptables", iptablesBackend: "legacy" }), detected()).dataplane,
      {
        kind: "iptables",
        flavour: "legacy",
      },
    );
    const broken = {
      tool: { state: "fails", reason: "iptables-legacy-save is not installed" },
      saved: {},
    } as const;
    throwsInit(
      () =>
        planInit(
          initConfig({ dataplane: "iptables", iptablesBackend: "legacy" }),
          detected({ iptables: { nft: emptyIptables(), legacy: broken } }),
        ),
      "EGW_ERR_INIT_NO_DATAPLANE",
      3,
      /IPTABLES_BACKEND=legacy, but iptables-legacy does not work here \(iptables-legacy-save is not installed\)/,
    );
    const nftFails = {
      tool: { state: "fails", reason: "Operation not supported" },
      hasOurTable: false,
    } as const;
    throwsInit(
      () => planInit(initConfig({ dataplane: "nftables" }), detected({ nft: nftFails })),
      "EGW_ERR_INIT_NO_DATAPLANE",
      3,
    );
  });

  it("removes what a run with another dataplane left (our nft table, our iptables chains)", () => {
    const ours = `*nat\n:POSTROUTING ACCEPT [0:0]\n:EGRESS-GW-POSTROUTING - [0:0]\n-A POSTROUTING -j EGRESS-GW-POSTROUTING\nCOMMIT\n`;
    const toNft = planInit(
      initConfig({ podIPv6: undefined }),
      detected({ iptables: { nft: emptyIptables(), legacy: iptablesWith({ 4: ours }) } }),
    );
    const removal = stepOf(toNft, "ruleset", 1);
    assert.deepEqual(removal.argv, ["iptables-legacy-restore", "-w", "5", "--noflush"]);
    assert.match(
      removal.input,
      /-D POSTROUTING 1\n-F EGRESS-GW-POSTROUTING\n-X EGRESS-GW-POSTROUTING\nCOMMIT/,
    );
    assert.deepEqual(toNft.expect.removed, [
      { kind: "iptables-chain", flavour: "legacy", family: 4, table: "nat", chain: "EGRESS-GW-POSTROUTING" },
    ]);

    const toIptables = planInit(
      initConfig({ dataplane: "iptables" }),
      detected({ nft: { tool: { state: "works" }, hasOurTable: true } }),
    );
    const dropTable = toIptables.steps.find((s) => s.kind === "ruleset" && s.argv[0] === "nft");
    assert.equal(
      dropTable?.kind === "ruleset" && dropTable.input,
      "table inet egress_gateway\ndelete table inet egress_gateway\n",
    );
    assert.deepEqual(toIptables.expect.removed, [{ kind: "nft-table" }]);
  });
});

describe("validation before any change", () => {
  it("refuses a namespace without eth0 (exit 3)", () => {
    throwsInit(
      () => planInit(initConfig(), detected({ links: [] })),
      "EGW_ERR_INIT_NO_ETH0",
      3,
      /eth0 does not exist/,
    );
  });

  it("refuses a pod IP that eth0 does not have (exit 3)", () => {
    throwsInit(
      () => planInit(initConfig({ podIPv4: "198.51.100.9" }), detected()),
      "EGW_ERR_INIT_POD_IP_NOT_ON_ETH0",
      3,
      /the pod IP 198\.51\.100\.9 .* is not an address of eth0/,
    );
  });

  it("refuses unknown arguments (exit 2)", () => {
    assert.deepEqual(parseArgs(["--dry-run"]), { dryRun: true, help: false });
    throwsInit(() => parseArgs(["--force"]), "EGW_ERR_INIT_USAGE", 2, /unknown argument "--force"/);
  });

  it("preflight names the first step that lacks a privilege, and the fix (exit 4)", () => {
    const plan = planInit(initConfig(), detected());
    preflight(plan, { netAdmin: true, procSysProblem: undefined });
    throwsInit(
      () => preflight(plan, { netAdmin: false, procSysProblem: undefined }),
      "EGW_ERR_INIT_NO_PRIVILEGE",
      4,
      /^cannot run step 1 \(Install the SNAT with fully random ports 1024-65535, MSS clamp and ICMPv6-redirect drop rules\): the process lacks CAP_NET_ADMIN; run the init container privileged/,
    );
    throwsInit(
      () => preflight(plan, { netAdmin: true, procSysProblem: "EROFS: read-only file system" }),
      "EGW_ERR_INIT_NO_PRIVILEGE",
      4,
      /^cannot run step 2 \(Turn conntrack accounting and timestamps on\): \/proc\/sys is not writable \(EROFS: read-only file system\); run the init/,
    );
  });
});

describe("dry run and summary", () => {
  it("lists numbered steps with the exact sysctls, ruleset text and ip commands", () => {
    const text = renderDryRun(planInit(initConfig(), detected()));
    assert.match(text, /^egress-gateway init: dry run, nothing is changed\n/);
    assert.match(
      text,
      /\n1\. Install the SNAT.*\n {3}nft -f - <<'EOF'\n {3}table inet egress_gateway\n {3}delete table inet egress_gateway\n/,
    );
    assert.match(
      text,
      /\n2\. Turn conntrack accounting and timestamps on.*\n {3}echo 1 > \/proc\/sys\/net\/netfilter\/nf_conntrack_acct .*\n {3}echo 1 > \/proc\/sys\/net\/netfilter\/nf_conntrack_timestamp /,
    );
    assert.match(
      text,
      /meta l4proto \{ tcp, udp \} counter snat ip to 198\.51\.100\.2:1024-65535 fully-random comment "egw-snat-ipv4"\n/,
    );
    assert.match(
      text,
      /\n3\. Suppress ICMP redirects.*\n {3}echo 0 > \/proc\/sys\/net\/ipv4\/conf\/all\/send_redirects /,
    );
    assert.match(
      text,
      /\n5\. Create vxlan0.*\n {3}ip -batch - <<'EOF'\n {3}link add vxlan0 address a2:2a:c6:33:64:02 type vxlan id 4097 dstport 4790 dev eth0\n {3}link set vxlan0 up\n {3}EOF\n/,
    );
    assert.match(
      text,
      /\n7\. Turn forwarding on.*\n {3}echo 1 > \/proc\/sys\/net\/ipv4\/ip_forward .*\n {3}echo 1 > \/proc\/sys\/net\/ipv6\/conf\/all\/forwarding /,
    );
    assert.match(text, /\n8\. Verify: /);
  });

  it("states its assumptions when detection needed privileges it lacked", () => {
    const text = renderDryRun(planInit(initConfig(), unprivileged()));
    assert.match(text, /Assumed: nft works \(not checked: needs CAP_NET_ADMIN\)\./);
    assert.match(text, /dataplane: nftables/);
  });

  it("summarises a run in one line", () => {
    const line = renderSummary(planInit(initConfig(), detected()), 123.4);
    assert.equal(
      line,
      "egress-gateway init: ready in 123 ms: nftables rules replaced; SNAT to 198.51.100.2, 2001:db8:100::2 out of eth0 (ports 1024-65535, fully random); " +
        "vxlan0 created (VNI 4097, port 4790, MAC a2:2a:c6:33:64:02, MTU 1450); MSS clamp 1410/1390; " +
        "redirects and rp_filter off; forwarding on (IPv4, IPv6)",
    );
  });

  it("turns a multi-line tool error into one line", () => {
    assert.equal(
      oneLine("Error: Could not process rule: No such file or directory\nadd rule x\n    ^^^^^\n"),
      "Error: Could not process rule: No such file or directory | add rule x",
    );
  });
});

describe("read-back checks", () => {
  const plan = planInit(initConfig(), detected());

  it("accept nft's own listing of the table, and catch a duplicate rule", () => {
    const listed = `table inet egress_gateway {
\tchain postrouting {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\toifname "eth0" ip saddr != ${POD_V4} meta l4proto { tcp, udp } counter packets 3 bytes 180 snat ip to ${POD_V4}:1024-65535 fully-random comment "egw-snat-ipv4"
\t\toifname "eth0" ip saddr != ${POD_V4} counter packets 1 bytes 84 snat ip to ${POD_V4} fully-random comment "egw-snat-ipv4"
\t\toifname "eth0" ip6 saddr != ${POD_V6} meta l4proto { tcp, udp } counter packets 0 bytes 0 snat ip6 to [${POD_V6}]:1024-65535 fully-random comment "egw-snat-ipv6"
\t\toifname "eth0" ip6 saddr != ${POD_V6} counter packets 0 bytes 0 snat ip6 to ${POD_V6} fully-random comment "egw-snat-ipv6"
\t}

\tchain forward {
\t\ttype filter hook forward priority mangle; policy accept;
\t\tmeta nfproto ipv4 counter packets 12 bytes 900 comment "egw-forwarded-ipv4"
\t\tmeta nfproto ipv4 ct status snat counter packets 9 bytes 720 comment "egw-snat-established-ipv4"
\t\tmeta nfproto ipv6 counter packets 0 bytes 0 comment "egw-forwarded-ipv6"
\t\tmeta nfproto ipv6 ct status snat counter packets 0 bytes 0 comment "egw-snat-established-ipv6"
\t\toifname "eth0" meta nfproto ipv4 tcp flags syn / syn,rst tcp option maxseg size > 1410 tcp option maxseg size set 1410
\t\toifname "eth0" meta nfproto ipv6 tcp flags syn / syn,rst tcp option maxseg size > 1390 tcp option maxseg size set 1390
\t}

\tchain output {
\t\ttype filter hook output priority filter; policy accept;
\t\ticmpv6 type nd-redirect drop
\t}
}
`;
    assert.deepEqual(checkNftTable(listed, plan.expect.chains), []);
    const doubled = listed.replace(
      "\t\ticmpv6 type nd-redirect drop\n",
      "\t\ticmpv6 type nd-redirect drop\n\t\ticmpv6 type nd-redirect drop\n",
    );
    assert.deepEqual(checkNftTable(doubled, plan.expect.chains), [
      "table inet egress_gateway chain output has 2 rules, expected 1",
    ]);
  });

  it("catch two jumps to one of our iptables chains", () => {
    const ipt = planInit(initConfig({ dataplane: "iptables", podIPv6: undefined }), detected());
    const saved = parseIptablesSave(`*nat
-A POSTROUTING -j EGRESS-GW-POSTROUTING
-A POSTROUTING -j EGRESS-GW-POSTROUTING
-A EGRESS-GW-POSTROUTING ! -s ${POD_V4}/32 -o eth0 -p tcp -m comment --comment egw-snat-ipv4 -j SNAT --to-source ${POD_V4}:1024-65535 --random-fully
-A EGRESS-GW-POSTROUTING ! -s ${POD_V4}/32 -o eth0 -p udp -m comment --comment egw-snat-ipv4 -j SNAT --to-source ${POD_V4}:1024-65535 --random-fully
-A EGRESS-GW-POSTROUTING ! -s ${POD_V4}/32 -o eth0 -m comment --comment egw-snat-ipv4 -j SNAT --to-source ${POD_V4} --random-fully
COMMIT
*mangle
-A FORWARD -j EGRESS-GW-FORWARD
-A EGRESS-GW-FORWARD -m comment --comment egw-forwarded-ipv4
-A EGRESS-GW-FORWARD -m conntrack --ctstate SNAT -m comment --comment egw-snat-established-ipv4
-A EGRESS-GW-FORWARD -o eth0 -p tcp -m tcp --tcp-flags SYN,RST SYN -m tcpmss --mss 1411:65535 -j TCPMSS --set-mss 1410
COMMIT
`);
    assert.deepEqual(checkIptables(saved, ipt.expect.chains, "iptables-nft"), [
      "iptables-nft IPv4 nat POSTROUTING has 2 jumps to EGRESS-GW-POSTROUTING, expected 1",
    ]);
  });

  it("compare vxlan0 as ip -j shows it", () => {
    const json = JSON.stringify([
      {
        ifindex: 4,
        ifname: "vxlan0",
        flags: ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
        mtu: 1450,
        address: "a2:2a:c6:33:64:02",
        linkinfo: { info_kind: "vxlan", info_data: { id: 4097, link: "eth0", port: 4790 } },
      },
    ]);
    const [link] = parseLinks(json);
    assert.ok(plan.vxlan);
    assert.deepEqual(checkVxlan(link, plan.vxlan), []);
    assert.deepEqual(checkVxlan(link && { ...link, mtu: 1400, up: false }, plan.vxlan), [
      "vxlan0 MTU (the MSS clamp assumes it) is 1400, expected 1450",
      "vxlan0 state is down, expected up",
    ]);
  });
});
