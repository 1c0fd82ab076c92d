// The kernel side of the return path: reads what we own on vxlan0/eth0 with
// `ip -j`/`bridge -j` and applies changes with one `ip -batch` and one
// `bridge -batch` per pass, both with -force so that one rejected line does not
// keep the others out. Parsing and rendering are pure and exported for tests.
// `ip -j` over text: the same cost when measured (about 80 ms either way for
// 11,000 routes, mostly the dump itself) and named fields instead of a format
// to guess; netlink from Node needs a native addon, and reads are rare anyway
// (reconcile.ts).
//
// What "ours" means, per table, so that nobody else's entry is ever touched:
// * routes: protocol 0x45 (RETURN_PATH_PROTO) on vxlan0 or eth0, main table;
// * neighbours and FDB entries: permanent, on vxlan0, with a node MAC (first byte
//   0x66, see pod-network/mac.ts). FDB entries carry no owner mark in the kernel,
//   and the neighbour protocol attribute needs kernel 5.2+ that pods may not have;
//   the MAC space is a mark every kernel keeps. An entry someone adds by hand with a
//   0x66 MAC is therefore treated as ours.
import { runCommand, type CommandResult, type CommandRunner } from "../exec/run-command.js";
import { parseIpv4Cidr } from "../ip/cidr.js";
import { POD_DEVICE, VXLAN_DEVICE } from "../pod-network/devices.js";
import { isNodeMac } from "../pod-network/mac.js";
import { DataplaneApplyError, DataplaneReadError } from "./errors.js";
import {
  RETURN_PATH_PROTO,
  type Changes,
  type FdbEntry,
  type Neighbour,
  type OwnedState,
  type ProgrammedRoute,
} from "./types.js";

export interface KernelView {
  readonly owned: OwnedState;
  /** Next hop of the pod's IPv4 default route, undefined when it has none. */
  readonly podGateway: string | undefined;
}

export interface Kernel {
  /** Throws DataplaneReadError. */
  read(): Promise<KernelView>;
  /** Applies every line it can; throws DataplaneApplyError naming what failed. */
  apply(changes: Changes): Promise<void>;
}

export interface KernelOptions {
  /** VNI of vxlan0: the kernel omits an FDB entry's VNI when it equals the device's. */
  readonly vni: number;
  /** Run `ip -n`/`bridge -n` in this named namespace (labs and tests; the pod uses its own). */
  readonly netns?: string;
  readonly run?: CommandRunner;
}

const PROTO = `0x${RETURN_PATH_PROTO.toString(16)}`;
const MAX_REPORTED_ERRORS = 3;

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
const text = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? (v as unknown[]) : []);

function entries(json: string, what: string): Json[] {
  const parsed: unknown = JSON.parse(json.trim() === "" ? "[]" : json);
  if (!Array.isArray(parsed)) throw new Error(`${what} did not print a JSON array`);
  return parsed.filter(isObject);
}

/** `ip -j neigh show dev vxlan0`: the permanent entries with a node MAC. */
export function parseNeighbours(json: string): Neighbour[] {
  return entries(json, "ip neigh").flatMap((e) => {
    const ip = text(e.dst);
    const mac = text(e.lladdr)?.toLowerCase();
    const permanent = list(e.state).includes("PERMANENT");
    return ip && mac && permanent && isNodeMac(mac) ? [{ ip, mac }] : [];
  });
}

/** `bridge -j fdb show dev vxlan0`: the permanent unicast entries with a node MAC. */
export function parseFdb(json: string, deviceVni: number): FdbEntry[] {
  return entries(json, "bridge fdb").flatMap((e) => {
    const mac = text(e.mac)?.toLowerCase();
    const dst = text(e.dst);
    const ours = mac && dst && e.state === "permanent" && list(e.flags).includes("self") && isNodeMac(mac);
    return ours ? [{ mac, dst, vni: typeof e.vni === "number" ? e.vni : deviceVni }] : [];
  });
}

/**
 * `ip -j route show proto 0x45`: our routes on vxlan0/eth0. One not in the shape
 * we program (no single gateway, not onlink) gets `via: ""`, so it never equals
 * a desired route: it is replaced or deleted.
 */
export function parseRoutes(json: string): ProgrammedRoute[] {
  return entries(json, "ip route").flatMap((e) => {
    const dev = text(e.dev);
    const cidr = parseIpv4Cidr(text(e.dst) ?? "");
    if ((dev !== VXLAN_DEVICE && dev !== POD_DEVICE) || cidr === undefined) return [];
    const shaped = list(e.flags).includes("onlink") && e.metric === undefined;
    return [{ dst: cidr.text, via: shaped ? (text(e.gateway) ?? "") : "", dev }];
  });
}

/** `ip -j -4 route show default`: the gateway of the first default route, preferring eth0's. */
export function parseDefaultGateway(json: string): string | undefined {
  const routes = entries(json, "ip route").filter((e) => text(e.gateway) !== undefined);
  const chosen = routes.find((e) => e.dev === POD_DEVICE) ?? routes[0];
  return chosen === undefined ? undefined : text(chosen.gateway);
}

const routeLine = (verb: "replace" | "del", r: ProgrammedRoute): string =>
  verb === "replace"
    ? `route replace ${r.dst} via ${r.via} dev ${r.dev} onlink proto ${PROTO}`
    : `route del ${r.dst}${r.via === "" ? "" : ` via ${r.via}`} dev ${r.dev} proto ${PROTO}`;

/**
 * The `ip -batch` lines of a pass, in an order that keeps traffic right at each
 * step: exit routes before anything may send to a tunnel address, neighbours
 * before the routes that use them; removals in reverse. Neighbour deletions go
 * last because `ip` ends the whole batch on a failed neighbour command.
 */
export function ipBatchLines(changes: Changes): string[] {
  const { routes, neighbours } = changes;
  const onDev = (rs: readonly ProgrammedRoute[], dev: string) => rs.filter((r) => r.dev === dev);
  return [
    ...onDev(routes.replace, POD_DEVICE).map((r) => routeLine("replace", r)),
    ...neighbours.replace.map(
      (n) => `neigh replace ${n.ip} lladdr ${n.mac} dev ${VXLAN_DEVICE} nud permanent`,
    ),
    ...onDev(routes.replace, VXLAN_DEVICE).map((r) => routeLine("replace", r)),
    ...onDev(routes.remove, VXLAN_DEVICE).map((r) => routeLine("del", r)),
    ...onDev(routes.remove, POD_DEVICE).map((r) => routeLine("del", r)),
    ...neighbours.remove.map((n) => `neigh del ${n.ip} dev ${VXLAN_DEVICE}`),
  ];
}

export function bridgeBatchLines(changes: Changes): string[] {
  return [
    ...changes.fdb.replace.map(
      (f) => `fdb replace ${f.mac} dev ${VXLAN_DEVICE} dst ${f.dst} vni ${f.vni} self permanent`,
    ),
    ...changes.fdb.remove.map((f) => `fdb del ${f.mac} dev ${VXLAN_DEVICE} self`),
  ];
}

/** The distinct complaints of a failed command, without iproute2's "Command failed -:N" bookkeeping. */
function complaints(result: CommandResult): string[] {
  const lines = result.stderr
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("Command failed"));
  return [...new Set(lines.length > 0 ? lines : [result.stderr.trim()])];
}

export function createKernel(options: KernelOptions): Kernel {
  const run = options.run ?? runCommand;
  const inNs = options.netns === undefined ? [] : ["-n", options.netns];
  const ip = (...args: string[]) => ["ip", ...inNs, ...args];
  const bridge = (...args: string[]) => ["bridge", ...inNs, ...args];

  const show = async (argv: string[]): Promise<string> => {
    const result = await run(argv);
    if (!result.ok) {
      const what = argv.filter((a) => a !== "-n" && a !== options.netns).join(" ");
      throw new DataplaneReadError(`${what}: ${complaints(result).join("; ")}`);
    }
    return result.stdout;
  };

  return {
    async read() {
      const [neighbours, fdb, routes, defaults] = await Promise.all([
        show(ip("-j", "neigh", "show", "dev", VXLAN_DEVICE)),
        show(bridge("-j", "fdb", "show", "dev", VXLAN_DEVICE)),
        show(ip("-j", "-4", "route", "show", "table", "main", "proto", PROTO)),
        show(ip("-j", "-4", "route", "show", "table", "main", "default")),
      ]);
      try {
        return {
          owned: {
            neighbours: parseNeighbours(neighbours),
            fdb: parseFdb(fdb, options.vni),
            routes: parseRoutes(routes),
          },
          podGateway: parseDefaultGateway(defaults),
        };
      } catch (error) {
        throw new DataplaneReadError(`unexpected output: ${String(error)}`);
      }
    },

    async apply(changes) {
      const failed: string[] = [];
      let rejected = 0;
      // ip first: exit routes exist before an FDB entry sends anything to a tunnel address.
      for (const [argv, lines] of [
        [ip("-force", "-batch", "-"), ipBatchLines(changes)],
        [bridge("-force", "-batch", "-"), bridgeBatchLines(changes)],
      ] as const) {
        if (lines.length === 0) continue;
        const result = await run(argv, `${lines.join("\n")}\n`);
        if (result.ok) continue;
        rejected += Math.max(1, (result.stderr.match(/^Command failed/gm) ?? []).length);
        failed.push(...complaints(result).map((c) => `${argv[0]}: ${c}`));
      }
      if (failed.length === 0) return;
      const shown = [...new Set(failed)].slice(0, MAX_REPORTED_ERRORS);
      const more = failed.length > shown.length ? ` (and ${failed.length - shown.length} more)` : "";
      throw new DataplaneApplyError(`${rejected} batch command(s) failed: ${shown.join("; ")}${more}`);
    },
  };
}
