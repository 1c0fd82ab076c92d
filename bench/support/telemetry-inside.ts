// The part of bench/telemetry.ts that runs inside the lab namespace (its
// conntrack table and loopback are the namespace's own). Prints one JSON line.
//
//   refresh --rounds N: N kernel telemetry refreshes of the built code (the
//     worker reading /proc/net/nf_conntrack, or `conntrack -L` when run as a
//     user the file refuses, included): wall and CPU (this process, worker,
//     kernel time and the finished child processes included) of each, the
//     peak RSS, and how the table was read.
//   kernel --rounds N: the table's text read and thrown away, 64 KiB reads in
//     a synchronous loop: what the kernel alone spends writing it (the floor of
//     any refresh that reads /proc/net/nf_conntrack).
//   paced --url U --rate R --seconds S: /readiness latency at a fixed rate.
import { closeSync, openSync, readFileSync, readSync } from "node:fs";
import { parseArgs } from "node:util";
import { pacedLatency } from "./paced.js";

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: "string", default: "5" },
    url: { type: "string" },
    rate: { type: "string", default: "200" },
    seconds: { type: "string", default: "8" },
  },
});

/** CPU of the finished child processes (conntrack -L, nft), from /proc/self/stat's cutime and cstime. */
const childrenCpuMs = (): number => {
  const fields = readFileSync("/proc/self/stat", "utf8").split(") ")[1]?.split(" ") ?? [];
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / 100; // clock ticks of 10 ms
};

const peakRssBytes = (): number =>
  Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))?.[1]) * 1024;

if (positionals[0] === "refresh") {
  const dist = new URL("../../dist/telemetry/", import.meta.url);
  const { kernelTelemetry } = (await import(
    new URL("index.js", dist).href
  )) as typeof import("../../src/telemetry/index.js");
  const { systemClock } = (await import(
    new URL("../clock.js", dist).href
  )) as typeof import("../../src/clock.js");
  let method = "file";
  const quiet = { warn: () => undefined, info: () => void (method = "command") };
  const telemetry = kernelTelemetry({ intervalMs: 60_000, topN: 10, clock: systemClock, log: quiet });
  const rounds: { wallMs: number; cpuMs: number; entries: number | undefined }[] = [];
  for (let i = 0; i < Number(values.rounds); i++) {
    const cpu0 = process.cpuUsage();
    const children0 = childrenCpuMs();
    const t0 = performance.now();
    await telemetry.refresh();
    const cpu = process.cpuUsage(cpu0);
    rounds.push({
      wallMs: performance.now() - t0,
      cpuMs: (cpu.user + cpu.system) / 1000 + childrenCpuMs() - children0,
      entries: telemetry.snapshot().table?.entries,
    });
  }
  await telemetry.stop();
  console.log(
    JSON.stringify({ rounds, peakRssBytes: peakRssBytes(), errors: telemetry.record().errors, method }),
  );
} else if (positionals[0] === "kernel") {
  const buffer = Buffer.allocUnsafe(64 * 1024);
  const rounds: { wallMs: number; cpuMs: number; bytes: number }[] = [];
  for (let i = 0; i < Number(values.rounds); i++) {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const fd = openSync("/proc/net/nf_conntrack", "r");
    let bytes = 0;
    for (let got = 1; got > 0; bytes += got) got = readSync(fd, buffer, 0, buffer.length, null);
    closeSync(fd);
    const cpu = process.cpuUsage(cpu0);
    rounds.push({ wallMs: performance.now() - t0, cpuMs: (cpu.user + cpu.system) / 1000, bytes });
  }
  console.log(JSON.stringify({ rounds }));
} else if (positionals[0] === "paced" && values.url) {
  const result = await pacedLatency(values.url, {
    rate: Number(values.rate),
    seconds: Number(values.seconds),
    connections: 4,
  });
  console.log(JSON.stringify(result));
} else {
  console.error(
    "usage: telemetry-inside.ts refresh|kernel [--rounds N] | paced --url URL [--rate R --seconds S]",
  );
  process.exit(2);
}
