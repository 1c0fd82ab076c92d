// The built init-gateway.sh run inside the gateway pod of the pod-on-bridge lab,
// for every rule backend, dual-stack: the client routed via the gateway reaches
// the external host as the gateway, without ICMP redirects, with its SYNs'
// MSS clamped; reruns change nothing; bad input and missing privilege change
// nothing. One lab per backend, reused across the assertions.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ADDR, buildPodLab, type PodLab } from "../lab/pod-lab.js";
import {
  askPeerAddress,
  dumpState,
  ensureInitBuilt,
  occurrences,
  rulesetText,
  runInit,
  startCapture,
  startEchoServer,
  synMss,
  sysctlValues,
  vxlanLink,
  type InitRun,
} from "./helpers/init-lab.js";
import type { NsProcess } from "../lab/ns-process.js";

const ECHO_PORT = 8080;
const VXLAN_MTU = 1500 - 50;
const GATEWAY_MAC = "a2:2a:c6:33:64:02"; // 198.51.100.2
// A narrow range, so that a source port outside it cannot pass by chance.
const SNAT_PORTS = { first: 20_000, last: 20_999 };
const POD_ENV = {
  EGRESS_POD_IPS: `${ADDR.gateway.v4},${ADDR.gateway.v6}`,
  SNAT_PORT_RANGE: `${SNAT_PORTS.first}-${SNAT_PORTS.last}`,
};
const RANGE = POD_ENV.SNAT_PORT_RANGE;

const BACKEND_ENV = {
  nftables: { DATAPLANE: "nftables" },
  "iptables-nft": { DATAPLANE: "iptables", IPTABLES_BACKEND: "nft" },
  "iptables-legacy": { DATAPLANE: "iptables", IPTABLES_BACKEND: "legacy" },
} as const;

type Backend = keyof typeof BACKEND_ENV;

/** Each backend, and the one a later run switches to (whose run must remove this one's rules). */
const BACKENDS: readonly { name: Backend; switchTo: Backend }[] = [
  { name: "nftables", switchTo: "iptables-legacy" },
  { name: "iptables-nft", switchTo: "nftables" },
  { name: "iptables-legacy", switchTo: "nftables" },
];

/** The markers of our rules as each backend prints them; each must appear exactly once. */
const RULE_MARKERS = {
  nftables: [
    `snat ip to ${ADDR.gateway.v4}:${RANGE} fully-random comment "egw-snat-ipv4"`,
    `snat ip to ${ADDR.gateway.v4} fully-random comment "egw-snat-ipv4"`,
    `snat ip6 to [${ADDR.gateway.v6}]:${RANGE} fully-random comment "egw-snat-ipv6"`,
    `snat ip6 to ${ADDR.gateway.v6} fully-random comment "egw-snat-ipv6"`,
    'comment "egw-forwarded-ipv4"',
    'comment "egw-snat-established-ipv6"',
    `maxseg size set ${VXLAN_MTU - 40}`,
    `maxseg size set ${VXLAN_MTU - 60}`,
    "nd-redirect drop",
  ],
  iptables: [
    `-p tcp -m comment --comment egw-snat-ipv4 -j SNAT --to-source ${ADDR.gateway.v4}:${RANGE} --random-fully`,
    `-p udp -m comment --comment egw-snat-ipv4 -j SNAT --to-source ${ADDR.gateway.v4}:${RANGE} --random-fully`,
    `eth0 -m comment --comment egw-snat-ipv4 -j SNAT --to-source ${ADDR.gateway.v4} --random-fully`,
    `-p tcp -m comment --comment egw-snat-ipv6 -j SNAT --to-source [${ADDR.gateway.v6}]:${RANGE} --random-fully`,
    `-p udp -m comment --comment egw-snat-ipv6 -j SNAT --to-source [${ADDR.gateway.v6}]:${RANGE} --random-fully`,
    `eth0 -m comment --comment egw-snat-ipv6 -j SNAT --to-source ${ADDR.gateway.v6} --random-fully`,
    "--comment egw-forwarded-ipv4",
    "--comment egw-snat-established-ipv6",
    `--set-mss ${VXLAN_MTU - 40}`,
    `--set-mss ${VXLAN_MTU - 60}`,
    "--icmpv6-type 137",
  ],
};

function assertOneLineFailure(run: InitRun, code: number, pattern: RegExp): void {
  assert.equal(run.code, code, `exit ${run.code}, stderr: ${run.stderr}`);
  assert.equal(run.stdout, "");
  assert.equal(run.stderr.trimEnd().split("\n").length, 1, `one line, got: ${run.stderr}`);
  assert.match(run.stderr, pattern);
  assert.doesNotMatch(run.stderr, /\n\s+at /, "no stack trace");
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

ensureInitBuilt();

for (const backend of BACKENDS) {
  describe(`init e2e with ${backend.name}`, () => {
    const env = { ...POD_ENV, ...BACKEND_ENV[backend.name] };
    const markersOf = (name: Backend) =>
      name === "nftables" ? RULE_MARKERS.nftables : RULE_MARKERS.iptables;
    const markers = markersOf(backend.name);
    let lab: PodLab;
    let server: NsProcess | undefined;
    let afterFirstRerun = "";

    before(async () => {
      lab = buildPodLab("in");
      server = await startEchoServer(lab.external, ECHO_PORT);
    });

    after(async () => {
      await server?.stop("SIGKILL");
      lab?.destroy();
    });

    it("refuses invalid configuration with exit 2 and changes nothing", async () => {
      const before = dumpState(lab.gateway);
      const bads: Record<string, string>[] = [
        { EGRESS_VXLAN_VNI: "0" },
        { EGRESS_POD_IPS: "not-an-ip" },
        { DATAPLANE: "ebpf" },
      ];
      for (const bad of bads) {
        const run = await runInit(lab.gateway, { ...env, ...bad });
        assertOneLineFailure(run, 2, /configuration error: \S+=".*" /);
      }
      assertOneLineFailure(await runInit(lab.gateway, env, { args: ["--bogus"] }), 2, /EGW_ERR_INIT_USAGE/);
      assert.equal(dumpState(lab.gateway), before);
    });

    it("refuses a namespace without eth0, or a pod IP that is not on eth0 (exit 3), changing nothing", async () => {
      const nodeBefore = dumpState(lab.node);
      assertOneLineFailure(await runInit(lab.node, env), 3, /EGW_ERR_INIT_NO_ETH0: eth0 does not exist/);
      assert.equal(dumpState(lab.node), nodeBefore);
      const before = dumpState(lab.gateway);
      const wrongIp = await runInit(lab.gateway, { ...env, EGRESS_POD_IPS: "198.51.100.99" });
      assertOneLineFailure(wrongIp, 3, /EGW_ERR_INIT_POD_IP_NOT_ON_ETH0: the pod IP 198\.51\.100\.99/);
      assert.equal(dumpState(lab.gateway), before);
    });

    it("without CAP_NET_ADMIN: exit 4, one line naming the operation and the fix, nothing changed", async () => {
      const before = dumpState(lab.gateway);
      const run = await runInit(lab.gateway, env, {
        inner: ["setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin"],
      });
      assertOneLineFailure(
        run,
        4,
        /EGW_ERR_INIT_NO_PRIVILEGE: cannot run step 1 \(Install .*CAP_NET_ADMIN.*run the init container privileged/,
      );
      assert.equal(dumpState(lab.gateway), before);
    });

    it("with a read-only /proc/sys: exit 4, one line naming the operation and the fix, nothing changed", async () => {
      const before = dumpState(lab.gateway);
      const readOnlyProcSys =
        'mount --bind /proc/sys /proc/sys && mount -o remount,ro,bind /proc/sys && exec "$@"';
      const run = await runInit(lab.gateway, env, {
        outer: ["unshare", "-m", "sh", "-c", readOnlyProcSys, "sh"],
      });
      assertOneLineFailure(
        run,
        4,
        /cannot run step \d \(Turn conntrack accounting and timestamps on\).*read-only file system.*privileged/,
      );
      assert.equal(dumpState(lab.gateway), before);
    });

    it("prints the plan on --dry-run, even unprivileged, and changes nothing", async () => {
      const before = dumpState(lab.gateway);
      // Root without a single capability: as unprivileged as a user, and it
      // can still read a checkout under a 0700 directory (mktemp -d).
      const noCapabilities = ["setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all"];
      const run = await runInit(lab.gateway, env, { args: ["--dry-run"], inner: noCapabilities });
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /^egress-gateway init: dry run, nothing is changed\n/);
      assert.match(run.stdout, /Assumed: .* \(not checked: needs CAP_NET_ADMIN\)/);
      assert.match(run.stdout, /^1\. Install /m);
      assert.match(run.stdout, /echo 0 > \/proc\/sys\/net\/ipv4\/conf\/eth0\/send_redirects/);
      assert.match(
        run.stdout,
        new RegExp(`link add vxlan0 address ${GATEWAY_MAC} type vxlan id 4097 dstport 4790 dev eth0`),
      );
      assert.match(run.stdout, /\d+\. Turn forwarding on[^\n]*\n.*ip_forward/);
      assert.equal(dumpState(lab.gateway), before);
    });

    it("prepares the namespace and prints one summary line", async () => {
      const run = await runInit(lab.gateway, env);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stderr, "");
      assert.equal(run.stdout.split("\n").length, 2, "one line and its newline");
      assert.match(
        run.stdout,
        new RegExp(`^egress-gateway init: ready in \\d+ ms: ${backend.name} rules replaced`),
      );
      assert.match(run.stdout, /vxlan0 created/);
      assert.match(run.stdout, new RegExp(`out of eth0 \\(ports ${RANGE}, fully random\\)`));
      const sysctls = sysctlValues(lab.gateway);
      assert.match(sysctls, /net\.netfilter\.nf_conntrack_acct = 1\n/);
      assert.match(sysctls, /net\.netfilter\.nf_conntrack_timestamp = 1\n/);
      const vxlan = vxlanLink(lab.gateway);
      assert.deepEqual(
        vxlan && { vni: vxlan.vni, port: vxlan.port, dev: vxlan.dev, mac: vxlan.mac, up: vxlan.up },
        { vni: 4097, port: 4790, dev: "eth0", mac: GATEWAY_MAC, up: true },
      );
    });

    it("SNATs forwarded traffic to the gateway's address, both families, without redirects, MSS clamped", async () => {
      lab.routeClientViaGateway(true);
      const redirects = await startCapture(lab.client, [
        "icmp[icmptype] == icmp-redirect or (icmp6 and ip6[40] == 137)",
      ]);
      const external = await startCapture(lab.external, []);
      const seen: string[] = [];
      let redirectLines = "";
      let externalText = "";
      try {
        for (let round = 0; round < 3; round++) {
          seen.push(await askPeerAddress(lab.client, ADDR.external.v4, ECHO_PORT));
          seen.push(await askPeerAddress(lab.client, ADDR.external.v6, ECHO_PORT));
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      } finally {
        redirectLines = await redirects.stop();
        externalText = await external.stop();
      }
      assert.deepEqual(
        new Set(seen),
        new Set([ADDR.gateway.v4, ADDR.gateway.v6]),
        "the external host saw the gateway",
      );
      assert.equal(redirectLines.trim(), "", "no ICMP redirect reached the client");
      assert.ok(
        !externalText.includes(ADDR.client.v4) && !externalText.includes(ADDR.client.v6),
        externalText,
      );
      const syns = synMss(externalText);
      assert.ok(
        syns.some((s) => s.source === ADDR.gateway.v4),
        `IPv4 SYN seen:\n${externalText}`,
      );
      assert.ok(
        syns.some((s) => s.source === ADDR.gateway.v6),
        `IPv6 SYN seen:\n${externalText}`,
      );
      for (const syn of syns) {
        assert.ok(syn.mss <= VXLAN_MTU - (syn.source.includes(":") ? 60 : 40), `MSS ${syn.mss}`);
        assert.ok(
          syn.port >= SNAT_PORTS.first && syn.port <= SNAT_PORTS.last,
          `source port ${syn.port} in ${RANGE}`,
        );
      }
      const v4Route = lab.client.ip("route", "get", ADDR.external.v4);
      const v6Route = lab.client.ip("-6", "route", "get", ADDR.external.v6);
      assert.match(v4Route, new RegExp(`via ${ADDR.gateway.v4} `));
      assert.match(v6Route, new RegExp(`via ${ADDR.gateway.v6} `));
      assert.doesNotMatch(v4Route + lab.client.ip("route", "show", "cache"), /redirected/);
    });

    it("leaves an identical ruleset, sysctls and link on every rerun, each rule once, in < 1 s (median of 10)", async (t) => {
      const first = dumpState(lab.gateway);
      const again = await runInit(lab.gateway, env);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /vxlan0 kept/);
      afterFirstRerun = dumpState(lab.gateway);
      assert.equal(afterFirstRerun, first);
      const times: number[] = [];
      for (let i = 0; i < 10; i++) {
        const run = await runInit(lab.gateway, env);
        assert.equal(run.code, 0, run.stderr);
        times.push(run.ms);
      }
      t.diagnostic(`${backend.name}: init wall time median ${median(times).toFixed(0)} ms of 10 runs`);
      assert.equal(dumpState(lab.gateway), first);
      const rules = rulesetText(lab.gateway, backend.name);
      for (const marker of markers)
        assert.equal(occurrences(rules, marker), 1, `${marker} once in\n${rules}`);
      assert.ok(median(times) < 1_000, `median ${median(times)} ms`);
    });

    it("replaces a vxlan0 with the wrong VNI, and keeps a right one (same ifindex)", async () => {
      lab.gateway.ip("link", "del", "vxlan0");
      lab.gateway.ip("link", "add", "vxlan0", "type", "vxlan", "id", "99", "dstport", "4790", "dev", "eth0");
      const wrong = vxlanLink(lab.gateway);
      const replaced = await runInit(lab.gateway, env);
      assert.equal(replaced.code, 0, replaced.stderr);
      assert.match(replaced.stdout, /vxlan0 replaced/);
      const right = vxlanLink(lab.gateway);
      assert.equal(right?.vni, 4097);
      assert.equal(right?.mac, GATEWAY_MAC);
      assert.notEqual(right?.ifindex, wrong?.ifindex);
      const kept = await runInit(lab.gateway, env);
      assert.match(kept.stdout, /vxlan0 kept/);
      assert.equal(vxlanLink(lab.gateway)?.ifindex, right?.ifindex);
      const withoutIfindex = (dump: string) => dump.replace(/^\d+: /gm, "");
      assert.equal(withoutIfindex(dumpState(lab.gateway)), withoutIfindex(afterFirstRerun));
    });

    it("reports a failing step in one line with the command's error (exit 1), and recovers on the next run", async () => {
      lab.gateway.ip("link", "del", "vxlan0");
      // Another device already holds the VNI and port on eth0, so creating vxlan0 must fail.
      lab.gateway.ip(
        "link",
        "add",
        "vxlanx",
        "type",
        "vxlan",
        "id",
        "4097",
        "dstport",
        "4790",
        "dev",
        "eth0",
      );
      try {
        const failed = await runInit(lab.gateway, env);
        assertOneLineFailure(
          failed,
          1,
          /EGW_ERR_INIT_APPLY_FAILED: step \d \(Create vxlan0\) failed: ip -batch -: .*VNI already exists/,
        );
      } finally {
        lab.gateway.ip("link", "del", "vxlanx");
      }
      const recovered = await runInit(lab.gateway, env);
      assert.equal(recovered.code, 0, recovered.stderr);
      assert.match(recovered.stdout, /vxlan0 created/);
    });

    it(`a run with ${backend.switchTo} removes the ${backend.name} rules, and the other way round`, async () => {
      const count = (name: Backend) =>
        markersOf(name).map((marker) => occurrences(rulesetText(lab.gateway, name), marker));
      const switched = await runInit(lab.gateway, { ...POD_ENV, ...BACKEND_ENV[backend.switchTo] });
      assert.equal(switched.code, 0, switched.stderr);
      const all = (name: Backend, n: number) => markersOf(name).map(() => n);
      assert.deepEqual(count(backend.name), all(backend.name, 0));
      assert.deepEqual(count(backend.switchTo), all(backend.switchTo, 1));
      const back = await runInit(lab.gateway, env);
      assert.equal(back.code, 0, back.stderr);
      assert.deepEqual(count(backend.switchTo), all(backend.switchTo, 0));
      assert.deepEqual(count(backend.name), all(backend.name, 1));
    });
  });
}
