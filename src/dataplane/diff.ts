// Desired against owned: what to replace and what to delete. Pure. An entry is
// keyed the way the kernel keys it (neighbour by IP, FDB entry by MAC, route by
// dst in the main table), so a replace also takes over a foreign entry that sits
// on a key we need, and a delete only ever names an entry we own. Two forms:
// whole lists (against a kernel read back) and keyed entries compared at the
// keys a pass touched (against what the last passes applied).
import type {
  Changes,
  DesiredState,
  FdbEntry,
  KeyedEntries,
  Neighbour,
  OwnedState,
  ProgrammedRoute,
  TouchedKeys,
} from "./types.js";

const sameFdb = (a: FdbEntry, b: FdbEntry): boolean => a.dst === b.dst && a.vni === b.vni;
const sameNeighbour = (a: Neighbour, b: Neighbour): boolean => a.mac === b.mac;
const sameRoute = (a: ProgrammedRoute, b: ProgrammedRoute): boolean => a.via === b.via && a.dev === b.dev;

function diffBy<T>(
  desired: readonly T[],
  owned: readonly T[],
  key: (item: T) => string,
  same: (a: T, b: T) => boolean,
): { replace: T[]; remove: T[] } {
  const have = new Map(owned.map((item) => [key(item), item]));
  const want = new Set(desired.map(key));
  return {
    replace: desired.filter((item) => {
      const current = have.get(key(item));
      return current === undefined || !same(current, item);
    }),
    remove: owned.filter((item) => !want.has(key(item))),
  };
}

export function diff(
  desired: Pick<DesiredState, "neighbours" | "fdb" | "routes">,
  owned: OwnedState,
): Changes {
  return {
    fdb: diffBy<FdbEntry>(desired.fdb, owned.fdb, (f) => f.mac, sameFdb),
    neighbours: diffBy<Neighbour>(desired.neighbours, owned.neighbours, (n) => n.ip, sameNeighbour),
    routes: diffBy<ProgrammedRoute>(desired.routes, owned.routes, (r) => r.dst, sameRoute),
  };
}

function* allKeys(a: ReadonlyMap<string, unknown>, b: ReadonlyMap<string, unknown>): Iterable<string> {
  yield* a.keys();
  for (const key of b.keys()) if (!a.has(key)) yield key;
}

function diffAt<T>(
  desired: ReadonlyMap<string, T>,
  applied: ReadonlyMap<string, T>,
  keys: Iterable<string>,
  same: (a: T, b: T) => boolean,
): { replace: T[]; remove: T[] } {
  const replace: T[] = [];
  const remove: T[] = [];
  for (const key of keys) {
    const want = desired.get(key);
    const have = applied.get(key);
    if (want !== undefined && (have === undefined || !same(have, want))) replace.push(want);
    else if (want === undefined && have !== undefined) remove.push(have);
  }
  return { replace, remove };
}

/** Desired against applied at the touched keys, or at every key of either. */
export function diffKeyed(
  desired: KeyedEntries,
  applied: KeyedEntries,
  touched: TouchedKeys | "all",
): Changes {
  const keys = (kind: keyof KeyedEntries): Iterable<string> =>
    touched === "all" ? allKeys(desired[kind], applied[kind]) : touched[kind];
  return {
    fdb: diffAt(desired.fdb, applied.fdb, keys("fdb"), sameFdb),
    neighbours: diffAt(desired.neighbours, applied.neighbours, keys("neighbours"), sameNeighbour),
    routes: diffAt(desired.routes, applied.routes, keys("routes"), sameRoute),
  };
}

export function changeCount(changes: Changes): number {
  return [changes.fdb, changes.neighbours, changes.routes].reduce(
    (n, c) => n + c.replace.length + c.remove.length,
    0,
  );
}
