// The byte-level conntrack parser against a plain reference parser on random
// tables: every family, protocol and state, with and without SNAT, flags,
// accounting, zones and marks, cut into chunks anywhere, with a last line cut
// short or not.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConntrackTally } from "../src/telemetry/conntrack-tally.js";
import { randomLine, referenceTally, seeded } from "./helpers/conntrack-lines.js";

describe("conntrack parser", () => {
  it("tallies random tables as the reference parser does, wherever they are cut", () => {
    for (let seed = 1; seed <= 400; seed++) {
      const random = seeded(seed);
      const lines = Array.from({ length: 1 + Math.floor(random() * 60) }, () => randomLine(random));
      let text = lines.join("\n");
      const ending = random();
      if (ending < 0.4) text += "\n";
      else if (ending < 0.7) text = text.slice(0, text.length - Math.floor(random() * lines.at(-1)!.length));
      const bytes = Buffer.from(text, "latin1");
      const cuts = Array.from({ length: Math.floor(random() * 8) }, () =>
        Math.floor(random() * bytes.length),
      );
      cuts.sort((a, b) => a - b);
      const topN = Math.floor(random() * 6);
      const tally = new ConntrackTally(topN);
      let from = 0;
      for (const cut of [...cuts, bytes.length]) {
        tally.write(bytes.subarray(from, cut));
        from = cut;
      }
      assert.deepEqual(tally.end(), referenceTally(text, topN), `seed ${seed}, cuts ${cuts.join(",")}`);
    }
  });

  it("counts every entry of the kernel's own states, SYN_SENT2 among them", () => {
    const line =
      "ipv4     2 tcp      6 119 SYN_SENT2 src=198.51.100.10 dst=203.0.113.10 sport=40000 dport=443 src=203.0.113.10 dst=198.51.100.2 sport=443 dport=40000 mark=0 zone=0 use=2";
    const tally = new ConntrackTally(10);
    tally.write(`${line}\n`);
    const summary = tally.end();
    assert.equal(summary.entries, 1);
    assert.equal(summary.liveForwarded, 1);
    assert.deepEqual(summary.destinations, [
      { address: "203.0.113.10", port: 443, protocol: "tcp", portsInUse: 1 },
    ]);
  });

  it("skips lines that are not entries and counts the ones around them", () => {
    const entry =
      "ipv4     2 udp      17 29 src=198.51.100.10 dst=203.0.113.53 sport=5000 dport=53 src=203.0.113.53 dst=198.51.100.2 sport=53 dport=5000 mark=0 zone=0 use=2";
    const tally = new ConntrackTally(10);
    tally.write(
      ["", "garbage", "ipv4", "ipv4     2 udp      17 29 src=198.51.100.10", entry, "ipv9 x"].join("\n"),
    );
    assert.deepEqual(tally.end(), referenceTally(entry, 10));
    assert.equal(referenceTally(entry, 10).entries, 1);
  });
});
