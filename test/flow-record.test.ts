// conntrack's event and table lines as this kernel and conntrack 1.4.7 print
// them, parsed into flow records; the token bucket of FLOW_LOGS_RATE.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseCloseEvent, parseConntrackLine, parseCtime } from "../src/flows/conntrack-event.js";
import { isLive } from "../src/flows/conntrack-table.js";
import { DestroyDrops, destroySocketDrops } from "../src/flows/netlink-drops.js";
import { flowRecord, isForwarded } from "../src/flows/record.js";
import { TokenBucket } from "../src/flows/token-bucket.js";

const POD = new Set(["203.0.113.2", "2001:db8::2"]);
const EXPIRED_TCP =
  "[1796576176.300037]\t[DESTROY] ipv4     2 tcp      6 TIME_WAIT src=198.51.100.10 dst=203.0.113.10 sport=59738 dport=8000 packets=5 bytes=268 src=203.0.113.10 dst=203.0.113.2 sport=8000 dport=38054 packets=4 bytes=219 [ASSURED] delta-time=2 [start=Sun Dec  6 16:56:13 2026] [stop=Sun Dec  6 16:56:15 2026] id=936170315";
const REMOVED_UDP =
  "[1796572524.338893]\t[DESTROY] ipv4     2 udp      17 27 src=198.51.100.10 dst=203.0.113.10 sport=37006 dport=8001 packets=1 bytes=30 src=203.0.113.10 dst=203.0.113.2 sport=8001 dport=41735 packets=1 bytes=31 delta-time=3 id=255082754 [USERSPACE] portid=2523086375";
const OWN_TCP =
  "[1796574499.669784]\t[DESTROY] ipv4     2 tcp      6 119 TIME_WAIT src=203.0.113.2 dst=203.0.113.10 sport=48202 dport=8000 packets=5 bytes=268 src=203.0.113.10 dst=203.0.113.2 sport=8000 dport=48202 packets=4 bytes=219 [ASSURED] delta-time=1 id=4035094771";
const ICMP_UNREPLIED =
  "ipv4     2 icmp     1 29 src=198.51.100.10 dst=203.0.113.10 type=8 code=0 id=77 [UNREPLIED] src=203.0.113.10 dst=203.0.113.2 type=0 code=0 id=4242 mark=0 use=1 id=123456";
const IPV6_ESTABLISHED =
  "ipv6     10 tcp      6 431999 ESTABLISHED src=2001:db8:100::10 dst=2001:db8:113::10 sport=40000 dport=443 src=2001:db8:113::10 dst=2001:db8::2 sport=443 dport=50000 [ASSURED] mark=0 use=1 id=99";

describe("conntrack lines", () => {
  it("parses an expired TCP DESTROY: no timeout left, counters, kernel start to the second, id", () => {
    const event = parseConntrackLine(EXPIRED_TCP);
    assert.deepEqual(event, {
      type: "DESTROY",
      at: 1796576176300.037,
      family: 4,
      protocol: "tcp",
      timeout: 0,
      state: "TIME_WAIT",
      original: {
        src: "198.51.100.10",
        dst: "203.0.113.10",
        sport: 59738,
        dport: 8000,
        packets: 5,
        bytes: 268,
      },
      reply: { src: "203.0.113.10", dst: "203.0.113.2", sport: 8000, dport: 38054, packets: 4, bytes: 219 },
      start: Date.UTC(2026, 11, 6, 16, 56, 13),
      id: 936170315,
    });
  });

  it("tells the ICMP tuples' id from the entry's id, across [UNREPLIED]", () => {
    const event = parseConntrackLine(ICMP_UNREPLIED);
    assert.equal(event?.protocol, "icmp");
    assert.equal(event?.reply.dst, "203.0.113.2");
    assert.equal(event?.original.sport, undefined);
    assert.equal(event?.id, 123456);
    assert.equal(event?.type, undefined);
  });

  it("parses IPv6 entries of the table and refuses lines that are not entries", () => {
    const event = parseConntrackLine(IPV6_ESTABLISHED);
    assert.equal(event?.family, 6);
    assert.equal(event?.state, "ESTABLISHED");
    assert.equal(event?.timeout, 431999);
    assert.equal(event?.reply.dport, 50000);
    assert.equal(
      parseConntrackLine("conntrack v1.4.7 (conntrack-tools): 2 flow events have been shown."),
      undefined,
    );
    assert.equal(parseConntrackLine(""), undefined);
    assert.equal(parseConntrackLine("[1.2]\t[DESTROY] ipv4 2 tcp 6 src=1.1.1.1"), undefined);
  });

  it("reads ctime in UTC and refuses anything else", () => {
    assert.equal(parseCtime("Thu Jan  1 00:00:01 1970"), 1000);
    assert.equal(parseCtime("Sun Dec 13 08:00:00 2026"), Date.UTC(2026, 11, 13, 8));
    assert.equal(parseCtime("2026-12-06T16:56:13Z"), undefined);
  });
});

describe("flow records", () => {
  it("keeps translated entries of clients only: not the pod's own traffic, not untranslated ones", () => {
    assert.ok(isForwarded(parseConntrackLine(EXPIRED_TCP)!, POD));
    assert.ok(isForwarded(parseConntrackLine(IPV6_ESTABLISHED)!, POD));
    assert.ok(!isForwarded(parseConntrackLine(OWN_TCP)!, POD));
    assert.ok(!isForwarded(parseConntrackLine(EXPIRED_TCP)!, new Set(["203.0.113.9"])));
    // Without known pod addresses: any translated entry.
    assert.ok(isForwarded(parseConntrackLine(EXPIRED_TCP)!, new Set()));
    assert.ok(!isForwarded(parseConntrackLine(OWN_TCP)!, new Set()));
  });

  it("ends at the close when one was seen, else at the event; start and duration from the kernel", () => {
    const event = parseConntrackLine(EXPIRED_TCP)!;
    const closedAt = Date.UTC(2026, 11, 6, 16, 56, 13, 250);
    assert.deepEqual(flowRecord(event, closedAt, 0), {
      protocol: "tcp",
      family: 4,
      clientIp: "198.51.100.10",
      clientPort: 59738,
      destinationIp: "203.0.113.10",
      destinationPort: 8000,
      snatIp: "203.0.113.2",
      snatPort: 38054,
      packetsOut: 5,
      bytesOut: 268,
      packetsIn: 4,
      bytesIn: 219,
      start: "2026-12-06T16:56:13.000Z",
      end: "2026-12-06T16:56:13.250Z",
      durationSeconds: 0.25,
      state: "TIME_WAIT",
      conntrackId: 936170315,
    });
    const udp = flowRecord(parseConntrackLine(REMOVED_UDP)!, undefined, 0);
    assert.equal(udp.end, new Date(1796572524338.893).toISOString());
    assert.equal(udp.start, undefined);
    assert.equal(udp.durationSeconds, undefined);
    assert.equal("state" in udp, false);
  });

  it("counts TCP as live until TIME_WAIT or CLOSE, other protocols while in the table", () => {
    assert.equal(isLive(parseConntrackLine(IPV6_ESTABLISHED)!), true);
    assert.equal(isLive(parseConntrackLine(EXPIRED_TCP)!), false);
    assert.equal(isLive(parseConntrackLine(REMOVED_UDP)!), true);
  });
});

describe("close events", () => {
  it("reads the time and the entry's id of a TCP close, and nothing from a line without an id", () => {
    const close =
      "[1796576174.250112]\t[UPDATE] ipv4     2 tcp      6 120 TIME_WAIT src=198.51.100.10 dst=203.0.113.10 sport=59738 dport=8000 src=203.0.113.10 dst=203.0.113.2 sport=8000 dport=38054 [ASSURED] id=936170315";
    assert.deepEqual(parseCloseEvent(close), { at: 1796576174250.112, id: 936170315 });
    assert.deepEqual(parseCloseEvent(EXPIRED_TCP), { at: 1796576176300.037, id: 936170315 });
    assert.equal(
      parseCloseEvent("conntrack v1.4.7 (conntrack-tools): 0 flow events have been shown."),
      undefined,
    );
  });
});

// /proc/net/netlink as this kernel prints it: a DESTROY listener (group 4), a
// close listener (group 2), a query socket, and an rtnetlink socket with drops.
const NETLINK = `sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode
00000000f2c23762 12  4232512896 00000004 212480   0        0     2        834      9549712
0000000012345678 12  3232512896 00000002 0        0        0     2        17       9549713
000000005ffa3e63 12  14243      00000000 0        0        0     2        0        9549711
00000000203b7ff8 0   0          00000551 0        0        0     2        99       9549650
`;

describe("kernel drops of DESTROY events", () => {
  it("reads the drops of conntrack sockets subscribed to DESTROY only", () => {
    assert.deepEqual([...destroySocketDrops(NETLINK)], [["9549712", 834]]);
  });

  it("keeps the drops of a listener's socket after it is gone, and adds its successor's", () => {
    let text = NETLINK;
    const drops = new DestroyDrops(() => text);
    assert.equal(drops.total(), 834);
    text = NETLINK.replace("9549712", "9549800").replace(" 834 ", " 5   ");
    assert.equal(drops.total(), 839);
    text = NETLINK.replace("9549712", "9549800").replace(" 834 ", " 7   ");
    assert.equal(drops.total(), 841);
  });
});

describe("token bucket", () => {
  it("lets a burst through, then the rate", () => {
    const bucket = new TokenBucket(10, 20, 0);
    let passed = 0;
    for (let i = 0; i < 100; i++) if (bucket.take(0)) passed++;
    assert.equal(passed, 20);
    assert.equal(bucket.take(50), false, "half a token after 50 ms");
    assert.equal(bucket.take(100), true, "one token after 100 ms");
    passed = 0;
    for (let t = 125; t <= 1_100; t += 25) if (bucket.take(t)) passed++;
    assert.equal(passed, 10, "10 a second");
    assert.equal(
      [...Array(50).keys()].filter(() => bucket.take(1_000_000)).length,
      20,
      "never more than the burst",
    );
  });
});
