// Desired against owned: what to replace and what to delete. Pure. An entry is
// keyed the way the kernel keys it (neighbour by IP, FDB entry by MAC, route by
// dst in the main table), so a replace also takes over a foreign entry that sits
// on a key we need, and a delete only ever names an entry we own.
import type { Changes, DesiredState, FdbEntry, Neighbour, OwnedState, ProgrammedRoute } from "./types.js";

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
    fdb: diffBy<FdbEntry>(
      desired.fdb,
      owned.fdb,
      (f) => f.mac,
      (a, b) => a.dst === b.dst && a.vni === b.vni,
    ),
    neighbours: diffBy<Neighbour>(
      desired.neighbours,
      owned.neighbours,
      (n) => n.ip,
      (a, b) => a.mac === b.mac,
    ),
    routes: diffBy<ProgrammedRoute>(
      desired.routes,
      owned.routes,
      (r) => r.dst,
      (a, b) => a.via === b.via && a.dev === b.dev,
    ),
  };
}

export function changeCount(changes: Changes): number {
  return [changes.fdb, changes.neighbours, changes.routes].reduce(
    (n, c) => n + c.replace.length + c.remove.length,
    0,
  );
}
