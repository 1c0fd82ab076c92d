// The kernel telemetry's pure cores (conntrack tally, statistics, rule
// counters, metric families) on real kernel output, the refresh loop's
// deadline and error accounting, and the conntrack worker on a real file.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { systemClock } from "../src/clock.js";
import { ConntrackReader } from "../src/telemetry/conntrack-reader.js";
import { parseConntrackStats } from "../src/telemetry/conntrack-stats.js";
import { ConntrackTally, topOf, type ConntrackSummary } from "../src/telemetry/conntrack-tally.js";
import { portUtilizationVerdict, telemetryFamilies } from "../src/telemetry/families.js";
import { parseIptablesCounters, parseNftCounters } from "../src/telemetry/rule-counters.js";
import { Telemetry, type TelemetrySources } from "../src/telemetry/telemetry.js";
import { randomLine, referenceTally, seeded } from "./helpers/conntrack-lines.js";

const GW = "198.51.100.2";
// As /proc/net/nf_conntrack writes them (IPv6 in full), accounting on for some.
const TABLE = [
  `ipv4     2 tcp      6 431999 ESTABLISHED src=198.51.100.10 dst=203.0.113.10 sport=40000 dport=443 src=203.0.113.10 dst=${GW} sport=443 dport=40000 [ASSURED] mark=0 zone=0 use=2`,
  `ipv4     2 tcp      6 431999 ESTABLISHED src=198.51.100.10 dst=203.0.113.10 sport=40001 dport=443 packets=5 bytes=400 src=203.0.113.10 dst=${GW} sport=443 dport=40001 packets=4 bytes=300 [ASSURED] mark=0 zone=0 use=2`,
  `ipv4     2 tcp      6 119 TIME_WAIT src=198.51.100.11 dst=203.0.113.10 sport=40002 dport=443 src=203.0.113.10 dst=${GW} sport=443 dport=40002 [ASSURED] mark=0 zone=0 use=2`,
  `ipv4     2 tcp      6 9 CLOSE src=198.51.100.11 dst=203.0.113.10 sport=40003 dport=443 src=203.0.113.10 dst=${GW} sport=443 dport=40003 mark=0 zone=0 use=2`,
  `ipv4     2 udp      17 29 src=198.51.100.11 dst=203.0.113.53 sport=5000 dport=53 packets=1 bytes=60 [UNREPLIED] src=203.0.113.53 dst=${GW} sport=53 dport=5000 packets=0 bytes=0 mark=0 zone=0 use=2`,
  `ipv4     2 icmp     1 29 src=198.51.100.12 dst=203.0.113.10 type=8 code=0 id=7 [UNREPLIED] src=203.0.113.10 dst=${GW} type=0 code=0 id=7 mark=0 zone=0 use=2`,
  // The gateway's own probe: not SNATed (the reply comes back to the address it left from).
  `ipv4     2 tcp      6 100 ESTABLISHED src=${GW} dst=203.0.113.10 sport=50000 dport=80 src=203.0.113.10 dst=${GW} sport=80 dport=50000 [ASSURED] mark=0 zone=0 use=2`,
  "ipv6     10 tcp      6 431999 ESTABLISHED src=2001:0db8:0100:0000:0000:0000:0000:0010 dst=2001:0db8:0113:0000:0000:0000:0000:0010 sport=40000 dport=443 src=2001:0db8:0113:0000:0000:0000:0000:0010 dst=2001:0db8:0100:0000:0000:0000:0000:0002 sport=443 dport=40000 [ASSURED] mark=0 zone=0 use=2",
].join("\n");

const EXPECTED: ConntrackSummary = {
  entries: 8,
  snatConnections: 7,
  liveForwarded: 5,
  destinations: [
    { address: "203.0.113.10", port: 443, protocol: "tcp", portsInUse: 4 },
    { address: "2001:db8:113::10", port: 443, protocol: "tcp", portsInUse: 1 },
    { address: "203.0.113.53", port: 53, protocol: "udp", portsInUse: 1 },
  ],
  talkers: [
    { client: "198.51.100.10", connections: 2 },
    { client: "198.51.100.11", connections: 1 },
    { client: "198.51.100.12", connections: 1 },
    { client: "2001:db8:100::10", connections: 1 },
  ],
};

describe("conntrack tally", () => {
  it("counts SNATed entries, live ones (not TIME_WAIT or CLOSE), ports per destination and clients", () => {
    const tally = new ConntrackTally(10);
    tally.write(`${TABLE}\n`);
    assert.deepEqual(tally.end(), EXPECTED);
  });

  it("gives the same result wherever the chunks are cut, with or without a final newline", () => {
    const bytes = Buffer.from(TABLE, "latin1");
    for (let cut = 0; cut <= bytes.length; cut += 7) {
      for (const second of [cut, Math.min(bytes.length, cut + 150)]) {
        const tally = new ConntrackTally(10);
        for (const part of [bytes.subarray(0, cut), bytes.subarray(cut, second), bytes.subarray(second)]) {
          tally.write(part);
        }
        assert.deepEqual(tally.end(), EXPECTED, `cut at ${cut} and ${second}`);
      }
    }
  });

  it("keeps only the top N, and none with N = 0", () => {
    const top2 = new ConntrackTally(2);
    top2.write(TABLE);
    const summary = top2.end();
    assert.deepEqual(summary.destinations, EXPECTED.destinations.slice(0, 2));
    assert.deepEqual(summary.talkers, EXPECTED.talkers.slice(0, 2));
    const none = new ConntrackTally(0);
    none.write(TABLE);
    assert.deepEqual(none.end(), { ...EXPECTED, destinations: [], talkers: [] });
  });

  it("orders the top by count, then by key, whatever the order of arrival", () => {
    const counts = new Map([
      ["c", 2],
      ["a", 5],
      ["d", 2],
      ["b", 2],
      ["e", 1],
    ]);
    assert.deepEqual(topOf(counts, 3), [
      ["a", 5],
      ["b", 2],
      ["c", 2],
    ]);
    assert.deepEqual(topOf(new Map([...counts].reverse()), 3), topOf(counts, 3));
  });
});

describe("conntrack statistics", () => {
  it("sums the per-CPU rows of /proc/net/stat/nf_conntrack by column name", () => {
    const text = `entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart
00000032  00000000 00000000 00000000 00000003 00000000 00000000 00000000 00000000 00000001 00000010 00000002 00000000  00000000 00000000 00000000 00000000
00000032  00000001 00000000 00000000 0000000a 00000000 00000000 00000000 00000000 00000002 00000000 00000001 00000000  00000000 00000000 00000000 00000000
`;
    assert.deepEqual(parseConntrackStats(text), { insertFailed: 3, drop: 16, earlyDrop: 3, invalid: 13 });
  });

  it("names the missing column when the kernel's format differs", () => {
    assert.throws(() => parseConntrackStats("entries found\n00000001 00000002\n"), /no insert_failed column/);
  });
});

describe("rule counters", () => {
  const nftRule = (comment: string, packets: number, bytes: number, extra: object[] = []): object => ({
    rule: {
      family: "inet",
      table: "egress_gateway",
      chain: "x",
      comment,
      expr: [{ counter: { packets, bytes } }, ...extra],
    },
  });

  it("reads nft -j: SNAT packets are the SNAT rule's first packets plus the established ones", () => {
    const json = JSON.stringify({
      nftables: [
        { metainfo: { version: "1.0.6" } },
        nftRule("egw-snat-ipv4", 3, 180, [
          { snat: { family: "ip", addr: GW, port: { range: [20000, 29999] }, flags: "fully-random" } },
        ]),
        nftRule("egw-snat-ipv4", 1, 84, [{ snat: { family: "ip", addr: GW, flags: "fully-random" } }]),
        nftRule("egw-forwarded-ipv4", 30, 9000),
        nftRule("egw-snat-established-ipv4", 20, 8000),
        nftRule("foreign", 99, 99),
      ],
    });
    assert.deepEqual(parseNftCounters(json), {
      ipv4: {
        forwarded: { packets: 30, bytes: 9000 },
        snat: { packets: 24, bytes: 8264 },
        snatConnections: 4,
        snatPorts: 10_000,
      },
    });
  });

  it("reads iptables-save -c of both families, adding up the SNAT rules, and their port range", () => {
    const v4 = `*nat
[0:0] -A POSTROUTING -j EGRESS-GW-POSTROUTING
[2:120] -A EGRESS-GW-POSTROUTING ! -s ${GW}/32 -o eth0 -p tcp -m comment --comment egw-snat-ipv4 -j SNAT --to-source ${GW}:1024-65535 --random-fully
[0:0] -A EGRESS-GW-POSTROUTING ! -s ${GW}/32 -o eth0 -p udp -m comment --comment egw-snat-ipv4 -j SNAT --to-source ${GW}:1024-65535 --random-fully
[1:84] -A EGRESS-GW-POSTROUTING ! -s ${GW}/32 -o eth0 -m comment --comment egw-snat-ipv4 -j SNAT --to-source ${GW} --random-fully
COMMIT
*mangle
[10:5000] -A EGRESS-GW-FORWARD -m comment --comment egw-forwarded-ipv4
[8:4880] -A EGRESS-GW-FORWARD -m conntrack --ctstate SNAT -m comment --comment egw-snat-established-ipv4
COMMIT
`;
    assert.deepEqual(parseIptablesCounters(v4, 4), {
      ipv4: {
        forwarded: { packets: 10, bytes: 5000 },
        snat: { packets: 11, bytes: 5084 },
        snatConnections: 3,
        snatPorts: 64_512,
      },
    });
    const v6 = v4
      .replaceAll("ipv4", "ipv6")
      .replace(`! -s ${GW}/32`, "! -s 2001:db8:100::2/128")
      .replaceAll(`--to-source ${GW}:1024-65535`, "--to-source [2001:db8:100::2]:1024-2047")
      .replace(`--to-source ${GW}`, "--to-source 2001:db8:100::2");
    assert.equal(parseIptablesCounters(v6, 6).ipv6?.snatPorts, 1024);
  });

  it("refuses a listing without our rules", () => {
    assert.throws(() => parseIptablesCounters("*nat\nCOMMIT\n", 4), { code: "EGW_ERR_TELEMETRY_NO_RULES" });
  });
});

describe("metric families", () => {
  const record = {
    refreshes: 1,
    lastDurationSeconds: 0.25,
    deadlineExceeded: 0,
    errors: { rules: 0, usage: 0, stats: 0, table: 0 },
  };

  it("name every family by the conventions: help, counters in _total, no duplicate", () => {
    const families = telemetryFamilies({ table: EXPECTED }, record);
    assert.equal(new Set(families.map((f) => f.name)).size, families.length);
    for (const f of families) {
      assert.match(f.name, /^egress_gateway_[a-z_]+$/);
      assert.ok(f.help.length > 10, f.name);
      assert.equal(f.type === "counter", f.name.endsWith("_total"), f.name);
    }
    const max = families.find((f) => f.name === "egress_gateway_snat_port_utilization_max_ratio");
    assert.deepEqual(max?.samples, [{ labels: {}, value: Math.round((4 / 64_512) * 1e6) / 1e6 }]);
  });

  it("leave out what the last refresh could not read, and say which source failed", () => {
    const families = telemetryFamilies({}, record);
    const up = families.find((f) => f.name === "egress_gateway_telemetry_source_up");
    assert.deepEqual(
      up?.samples.map((s) => [s.labels.source, s.value]),
      [
        ["rules", 0],
        ["usage", 0],
        ["stats", 0],
        ["table", 0],
      ],
    );
    const empty = families.filter((f) => f.samples.length === 0).map((f) => f.name);
    assert.ok(empty.includes("egress_gateway_forwarded_connections"));
    assert.ok(empty.includes("egress_gateway_snat_port_utilization_max_ratio"));
    assert.ok(empty.includes("egress_gateway_forwarded_packets_total"));
  });

  it("give the SNATPortUtilization verdict, ready when utilisation is unknown", () => {
    assert.equal(portUtilizationVerdict({ table: EXPECTED }, 0.5).ready, true);
    const over = portUtilizationVerdict({ table: EXPECTED }, 0.00005);
    assert.equal(over.ready, false);
    assert.match(over.detail, /4 SNAT ports in use toward 203\.0\.113\.10:443\/tcp, 0% \(limit 0%\)/);
    assert.equal(portUtilizationVerdict({}, 0.5).ready, true);
  });
});

describe("telemetry refresh", () => {
  const summary = { ...EXPECTED };
  const sources = (table: TelemetrySources["table"]): TelemetrySources => ({
    rules: () => Promise.reject(new Error("no rules here")),
    usage: () => Promise.resolve({ entries: 8, limit: 262_144 }),
    stats: () => Promise.resolve({ insertFailed: 0, drop: 0, earlyDrop: 0, invalid: 0 }),
    table,
  });
  const log = {
    warnings: [] as string[],
    warn: (_: object, m: string) => log.warnings.push(m),
    info: () => undefined,
  };

  it("cuts a slow source off at the deadline, counts it, and keeps what the others read", async () => {
    let aborted = false;
    const telemetry = new Telemetry({
      intervalMs: 60_000,
      deadlineMs: 50,
      clock: systemClock,
      log,
      sources: sources(
        (signal) =>
          new Promise((_, reject) =>
            signal.addEventListener("abort", () => {
              aborted = true;
              reject(new Error("aborted"));
            }),
          ),
      ),
    });
    await telemetry.refresh();
    await telemetry.refresh();
    assert.ok(aborted, "the slow source was told to stop");
    const record = telemetry.record();
    assert.equal(record.deadlineExceeded, 2);
    assert.deepEqual(record.errors, { rules: 2, usage: 0, stats: 0, table: 2 });
    // Node may fire a timer up to a millisecond before the clock says it is due.
    assert.ok((record.lastDurationSeconds ?? 0) >= 0.045, String(record.lastDurationSeconds));
    assert.deepEqual(Object.keys(telemetry.snapshot()).sort(), ["stats", "usage"]);
    assert.equal(telemetry.liveForwardedConnections(), undefined);
    assert.deepEqual(log.warnings, [
      "telemetry cannot read rules: no rules here",
      "telemetry cannot read table: no answer within 50 ms",
    ]);
  });

  it("reads the live forwarded connections on demand, keeps them, and counts a failed read", async () => {
    let table: TelemetrySources["table"] = () => Promise.resolve(summary);
    const telemetry = new Telemetry({
      intervalMs: 0,
      deadlineMs: 50,
      clock: systemClock,
      log,
      sources: sources((signal) => table(signal)),
    });
    assert.equal(await telemetry.readLiveForwarded(), 5);
    assert.equal(telemetry.liveForwardedConnections(), 5);
    table = () => new Promise(() => undefined);
    assert.equal(await telemetry.readLiveForwarded(), undefined);
    assert.equal(telemetry.record().errors.table, 1);
    assert.equal(log.warnings.at(-1), "telemetry cannot read table: no answer within 50 ms");
  });

  it("exposes the live forwarded connections of the last refresh to its listeners and callers", async () => {
    const telemetry = new Telemetry({
      intervalMs: 60_000,
      deadlineMs: 1_000,
      clock: systemClock,
      log,
      sources: sources(() => Promise.resolve(summary)),
    });
    const seen: (number | undefined)[] = [];
    telemetry.onRefresh((snapshot) => seen.push(snapshot.table?.liveForwarded));
    telemetry.start();
    await new Promise((resolve) => setTimeout(resolve, 50));
    await telemetry.stop();
    assert.deepEqual(seen, [5]);
    assert.equal(telemetry.liveForwardedConnections(), 5);
    assert.equal(telemetry.record().deadlineExceeded, 0);
  });
});

describe("conntrack reader (worker thread)", () => {
  const dir = mkdtempSync(join(tmpdir(), "egw-telemetry-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("tallies a table file in its worker, again and again", async () => {
    const path = join(dir, "nf_conntrack");
    writeFileSync(path, `${TABLE}\n`);
    const reader = new ConntrackReader({ path });
    try {
      assert.deepEqual(await reader.read(10), EXPECTED);
      assert.deepEqual(await reader.read(10), EXPECTED);
    } finally {
      await reader.close();
    }
  });

  it("tallies a table larger than the slots its reading thread fills, as one piece would be", async () => {
    // ~3 MB: the four 256 KiB slots are refilled several times while the worker parses.
    const random = seeded(12);
    const text = `${Array.from({ length: 16_000 }, () => randomLine(random)).join("\n")}\n`;
    const path = join(dir, "large");
    writeFileSync(path, text);
    const reader = new ConntrackReader({ path });
    try {
      const expected = referenceTally(text, 10);
      assert.ok(Buffer.byteLength(text) > 2 * 1024 * 1024 && expected.entries === 16_000);
      assert.deepEqual(await reader.read(10), expected);
      // At once, as the drain's read can come during a refresh: one after the other on the slots.
      const [ten, three] = await Promise.all([reader.read(10), reader.read(3)]);
      assert.deepEqual(ten, expected);
      assert.deepEqual(three, referenceTally(text, 3));
    } finally {
      await reader.close();
    }
  });

  it("reads through the command, once and for good, when the file is refused (the non-root image)", async () => {
    const path = join(dir, "listed");
    writeFileSync(path, `${TABLE}\n`);
    const fallbacks: string[] = [];
    // Even root gets EACCES here (/proc/sys checks its mode bits without DAC_OVERRIDE), as
    // UID 65532 does on /proc/net/nf_conntrack (0440 root).
    const reader = new ConntrackReader({
      path: "/proc/sys/net/ipv4/route/flush",
      command: ["cat", path],
      onFallback: (reason) => fallbacks.push(reason),
    });
    try {
      assert.deepEqual(await reader.read(10), EXPECTED);
      assert.equal(reader.method, "command");
      assert.deepEqual(await reader.read(10), EXPECTED);
      assert.equal(fallbacks.length, 1);
      assert.match(
        fallbacks[0]!,
        /route\/flush is not readable as uid 0 \(EACCES: .*\); reading the table with `cat /,
      );
    } finally {
      await reader.close();
    }
  });

  it("rejects with one clear line when the command fails too, and does not fall back for other errors", async () => {
    const reader = new ConntrackReader({
      path: "/proc/sys/net/ipv4/route/flush",
      command: ["sh", "-c", "echo 'Operation failed: not permitted' >&2; exit 1"],
    });
    try {
      await assert.rejects(reader.read(10), {
        code: "EGW_ERR_TELEMETRY_READ",
        message: /exited \(1\): Operation failed: not permitted$/,
      });
    } finally {
      await reader.close();
    }
    const missing = new ConntrackReader({ path: join(dir, "absent"), command: ["false"] });
    try {
      await assert.rejects(missing.read(10), { message: /ENOENT/ });
      assert.equal(missing.method, "file");
    } finally {
      await missing.close();
    }
  });

  it("rejects with the file's error, and stops reading when aborted", async () => {
    const reader = new ConntrackReader({ path: join(dir, "missing") });
    try {
      await assert.rejects(reader.read(10), { code: "EGW_ERR_TELEMETRY_READ", message: /ENOENT/ });
      const controller = new AbortController();
      const read = reader.read(10, controller.signal);
      controller.abort();
      await assert.rejects(read, { code: "EGW_ERR_TELEMETRY_DEADLINE" });
    } finally {
      await reader.close();
    }
  });
});
