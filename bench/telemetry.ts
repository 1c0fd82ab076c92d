// What kernel telemetry costs with a large conntrack table: 10k, 100k and 250k
// SNATed entries made synthetically (`conntrack -R` of `-I` lines) in a lab
// namespace. This kernel's table limit (262,144) is host-wide and never raised.
//
// The namespace gets an eth0 (a veth pair inside it) and init-gateway.sh's
// ruleset, as a gateway pod has: the rule counters are then one `nft` call per
// refresh, as in production, not a search through every backend.
//
// Per size:
//   kernel:    the table's text read and thrown away (64 KiB reads in a
//              loop): what the kernel alone spends writing it, the floor of
//              any refresh that reads /proc/net/nf_conntrack.
//   refresh:   --rounds refreshes of the built telemetry inside the namespace
//              (rule counters, conntrack size and statistics, and the table read
//              in the worker thread): wall time, CPU (process, worker and kernel
//              time) and the peak RSS of that process; ms per 1k entries shows
//              whether the growth is linear (1M entries must stay under 2 s).
//   non-root:  the same refreshes as UID 65532 with NET_ADMIN only (the
//              non-root image's user), for whom /proc/net/nf_conntrack is
//              closed: the table comes from `conntrack -L -o extended`.
//   readiness: the built gateway in the namespace with TELEMETRY_INTERVAL=1s
//              (a refresh every second) against TELEMETRY_INTERVAL=0s (off),
//              alternating off/on --pairs times: /readiness p99 at 200
//              requests/s from inside the namespace (target on/off <= 1.1);
//              and on as UID 65532, whose refreshes spawn `conntrack -L`
//              from the worker thread (a fork of the whole gateway).
// Then a least-squares line through the three sizes (refresh wall and CPU
// against entries): its slope, its intercept, how well it fits (R^2), and
// what it gives for 1M entries (target < 2 s).
// Loopback and the namespace only.
//
//   npm run build && node --import tsx bench/telemetry.ts [--rounds 5] [--pairs 2] [--seconds 8]
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ROOT } from "../lab/run-lab.js";
import { startGatewayProcess, type GatewayProcess } from "../lab/gateway-process.js";
import { Lab, type Namespace } from "../lab/netns.js";
import type { PacedResult } from "./support/paced.js";
import { peakRssBytes } from "./support/proc.js";
import {
  cleanupOnSignal,
  fixed,
  integerFlags,
  loadLine,
  mebibytes,
  median,
  table,
  verdict,
} from "./support/report.js";

const flags = integerFlags({ rounds: 5, pairs: 2, seconds: 8 });
const SIZES = [10_000, 100_000, 250_000];
const RATE = 200; // /readiness requests a second: 20 node agents polling every 100 ms
const P99_TARGET = 1.1;
const REFRESH_TARGET_MS = 500; // at 250k entries
const RSS_TARGET = 150 * 2 ** 20; // at 250k entries
/** The gateway pod's address in the synthetic entries (their reply destination). */
const POD_IP = "198.19.0.2";

/** `-I` lines for `conntrack -R`: SNATed TCP entries from 200 clients to 50 destinations, ESTABLISHED for 50 min. */
function entries(count: number): string {
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const client = `198.18.${1 + ((i % 200) >> 8)}.${1 + (i % 200)}`;
    const destination = `203.0.113.${1 + (i % 50)}`;
    const sport = 1024 + Math.floor(i / 200);
    const snatPort = 1024 + Math.floor(i / 50);
    lines.push(
      `-I -s ${client} -d ${destination} -p tcp --sport ${sport} --dport 443 -r ${destination} -q ${POD_IP} ` +
        `--reply-port-src 443 --reply-port-dst ${snatPort} --state ESTABLISHED -u SEEN_REPLY,ASSURED -t 3000`,
    );
  }
  return `${lines.join("\n")}\n`;
}

/** eth0 and init's ruleset, so that telemetry reads what it reads in a pod. */
function initPod(ns: Namespace): void {
  ns.ip("link", "add", "eth0", "type", "veth", "peer", "name", "eth0-peer");
  ns.ip("addr", "add", `${POD_IP}/24`, "dev", "eth0");
  ns.ip("link", "set", "eth0", "up");
  ns.ip("link", "set", "eth0-peer", "up");
  ns.exec("env", [
    "-i",
    `PATH=${process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin"}`,
    `EGRESS_POD_IP=${POD_IP}`,
    join(ROOT, "init-gateway.sh"),
  ]);
}

function fill(ns: Namespace, count: number, dir: string): void {
  const file = join(dir, `entries-${count}`);
  writeFileSync(file, entries(count));
  ns.exec("conntrack", ["-R", file]);
  const made = Number(ns.exec("cat", ["/proc/sys/net/netfilter/nf_conntrack_count"]).trim());
  if (made < count) throw new Error(`made ${made} conntrack entries of ${count}`);
}

/** UID 65532 with NET_ADMIN (ambient here, from file capabilities in the image): the non-root variant. */
const NON_ROOT = [
  ...["setpriv", "--reuid=65532", "--regid=65532", "--clear-groups"],
  ...["--inh-caps=-all,+net_admin", "--ambient-caps=-all,+net_admin", "--"],
];
/** The non-root image's gateway: NET_ADMIN and NET_RAW. */
const NON_ROOT_GATEWAY = [
  ...["setpriv", "--reuid=65532", "--regid=65532", "--clear-groups"],
  ...["--inh-caps=-all,+net_admin,+net_raw", "--ambient-caps=-all,+net_admin,+net_raw", "--"],
];

function inside(ns: Namespace, args: readonly string[], wrapper: readonly string[] = []): unknown {
  const [command = process.execPath, ...rest] = [...wrapper, process.execPath];
  const out = ns.exec(command, [
    ...rest,
    "--import",
    "tsx",
    join(ROOT, "bench/support/telemetry-inside.ts"),
    ...args,
  ]);
  return JSON.parse(out.trim().split("\n").at(-1) ?? "{}");
}

interface RefreshRun {
  readonly rounds: { wallMs: number; cpuMs: number; entries: number | undefined }[];
  readonly peakRssBytes: number;
  readonly method: string;
}

async function readinessP99(
  ns: Namespace,
  telemetryOn: boolean,
  wrapper: readonly string[] = [],
): Promise<{ p99Ms: number; rss: number }> {
  const gateway: GatewayProcess = startGatewayProcess(
    {
      HEALTH_LISTEN_ADDRESS: "127.0.0.1",
      HEALTH_PORT: "8080",
      TELEMETRY_INTERVAL: telemetryOn ? "1s" : "0s",
      LOG_SEVERITY: "warn",
    },
    { netns: ns.name, wrapper },
  );
  try {
    await sleep(2_000); // listening, and the first refresh done
    const paced = inside(ns, [
      "paced",
      "--url",
      "http://127.0.0.1:8080/readiness",
      "--rate",
      String(RATE),
      "--seconds",
      String(flags.seconds),
    ]) as PacedResult;
    if (paced.errors > 0 || paced.non2xx > 0) throw new Error(`readiness failed: ${JSON.stringify(paced)}`);
    return { p99Ms: paced.p99Ms, rss: peakRssBytes(gateway.child.pid ?? 0) };
  } finally {
    await gateway.kill();
  }
}

const spread = (values: readonly number[], digits = 0): string =>
  `${fixed(median(values), digits)} (${fixed(Math.min(...values), digits)}-${fixed(Math.max(...values), digits)})`;

/** Least squares y = intercept + slope * x, and R^2. */
function line(points: readonly (readonly [number, number])[]): {
  slope: number;
  intercept: number;
  r2: number;
} {
  const n = points.length;
  const mx = points.reduce((sum, [x]) => sum + x, 0) / n;
  const my = points.reduce((sum, [, y]) => sum + y, 0) / n;
  const sxy = points.reduce((sum, [x, y]) => sum + (x - mx) * (y - my), 0);
  const sxx = points.reduce((sum, [x]) => sum + (x - mx) ** 2, 0);
  const syy = points.reduce((sum, [, y]) => sum + (y - my) ** 2, 0);
  const slope = sxy / sxx;
  return { slope, intercept: my - slope * mx, r2: (sxy * sxy) / (sxx * syy) };
}

const dir = mkdtempSync(join(tmpdir(), "egw-telemetry-bench-"));
const labs: Lab[] = [];
const cleanup = cleanupOnSignal(() => {
  for (const lab of labs) lab.destroy();
  rmSync(dir, { recursive: true, force: true });
});
const rows: string[][] = [
  [
    "entries",
    "kernel ms",
    "refresh ms",
    "/kernel",
    "CPU ms",
    "ms/1k",
    "peak RSS",
    "non-root ms",
    "non-root CPU",
    "p99 off ms",
    "p99 on ms",
    "on/off",
    "p99 non-root ms",
    "non-root/off",
    "gateway RSS",
  ],
];
const perThousand: number[] = [];
const wallPoints: [number, number][] = [];
const cpuPoints: [number, number][] = [];
let worst = { refreshMs: 0, rss: 0, ratio: 0 };
try {
  execFileSync("npm", ["run", "--silent", "build"], { cwd: ROOT, stdio: "inherit" });
  console.log(loadLine());
  for (const size of SIZES) {
    const lab = new Lab("tbench");
    labs.push(lab);
    const ns = lab.ns("gw");
    initPod(ns);
    const made = performance.now();
    fill(ns, size, dir);
    console.log(`${size} entries made in ${fixed((performance.now() - made) / 1000)} s`);

    const kernel = inside(ns, ["kernel", "--rounds", String(flags.rounds)]) as {
      rounds: { wallMs: number; cpuMs: number }[];
    };
    const refresh = inside(ns, ["refresh", "--rounds", String(flags.rounds)]) as RefreshRun;
    // The first refresh starts the worker thread; the steady state is what repeats every interval.
    const steady = refresh.rounds.slice(1);
    if (steady.some((r) => r.entries !== size))
      throw new Error(`a refresh missed entries: ${JSON.stringify(refresh)}`);
    const wall = steady.map((r) => r.wallMs);
    perThousand.push(median(wall) / (size / 1000));
    wallPoints.push([size, median(wall)]);
    cpuPoints.push([size, median(steady.map((r) => r.cpuMs))]);
    const nonRoot = inside(ns, ["refresh", "--rounds", String(flags.rounds)], NON_ROOT) as RefreshRun;
    const nonRootSteady = nonRoot.rounds.slice(1);
    if (nonRoot.method !== "command" || nonRootSteady.some((r) => r.entries !== size))
      throw new Error(
        `the non-root refresh did not read the table with conntrack -L: ${JSON.stringify(nonRoot)}`,
      );

    const off: number[] = [];
    const on: number[] = [];
    const onNonRoot: number[] = [];
    let gatewayRss = 0;
    for (let pair = 0; pair < flags.pairs; pair++) {
      off.push((await readinessP99(ns, false)).p99Ms);
      const withTelemetry = await readinessP99(ns, true);
      on.push(withTelemetry.p99Ms);
      const nonRootGateway = await readinessP99(ns, true, NON_ROOT_GATEWAY);
      onNonRoot.push(nonRootGateway.p99Ms);
      gatewayRss = Math.max(gatewayRss, withTelemetry.rss, nonRootGateway.rss);
    }
    const ratio = median(on) / median(off);
    rows.push([
      String(size),
      `${spread(kernel.rounds.map((r) => r.wallMs))} / CPU ${fixed(median(kernel.rounds.map((r) => r.cpuMs)), 0)}`,
      spread(wall),
      fixed(median(wall) / median(kernel.rounds.map((r) => r.wallMs)), 2),
      spread(steady.map((r) => r.cpuMs)),
      fixed(median(wall) / (size / 1000), 2),
      mebibytes(refresh.peakRssBytes),
      spread(nonRootSteady.map((r) => r.wallMs)),
      spread(nonRootSteady.map((r) => r.cpuMs)),
      spread(off, 2),
      spread(on, 2),
      fixed(ratio, 2),
      spread(onNonRoot, 2),
      fixed(median(onNonRoot) / median(off), 2),
      mebibytes(gatewayRss),
    ]);
    if (size === SIZES.at(-1))
      worst = { refreshMs: median(wall), rss: Math.max(refresh.peakRssBytes, gatewayRss), ratio };
    worst.ratio = Math.max(worst.ratio, ratio);
    lab.destroy();
  }
  console.log(`\n${table(rows)}`);
  console.log("(medians of the steady refreshes, range in brackets; p99 of /readiness at 200/s)");
  console.log(
    `\nms per 1k entries: ${perThousand.map((v) => fixed(v, 2)).join(", ")} (linear growth keeps these equal)`,
  );
  const wallLine = line(wallPoints);
  const cpuLine = line(cpuPoints);
  const oneMillion = wallLine.intercept + wallLine.slope * 1_000_000;
  for (const [name, fit] of [
    ["refresh", wallLine],
    ["CPU", cpuLine],
  ] as const)
    console.log(
      `${name} = ${fixed(fit.intercept)} ms + ${fixed(fit.slope * 1000, 3)} ms per 1k entries ` +
        `(least squares over ${SIZES.join(", ")}; R^2 ${fixed(fit.r2, 4)}); 1M entries: ` +
        `${fixed(fit.intercept + fit.slope * 1_000_000)} ms`,
    );
  console.log(
    `1M entries, from the line: ${fixed(oneMillion)} ms < 2000 ms: ${verdict(oneMillion < 2000)} ` +
      `(from 250k alone: ${fixed((perThousand.at(-1) ?? NaN) * 1000)} ms)`,
  );
  console.log(
    `250k refresh ${fixed(worst.refreshMs)} ms < ${REFRESH_TARGET_MS} ms: ${verdict(worst.refreshMs < REFRESH_TARGET_MS)}`,
  );
  console.log(
    `250k peak RSS ${mebibytes(worst.rss)} < ${mebibytes(RSS_TARGET)}: ${verdict(worst.rss < RSS_TARGET)}`,
  );
  console.log(
    `readiness p99 on/off ${fixed(worst.ratio, 2)} <= ${P99_TARGET}: ${verdict(worst.ratio <= P99_TARGET)}`,
  );
  console.log(loadLine());
} finally {
  cleanup();
}
