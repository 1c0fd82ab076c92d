// Values grouped by key, for the incremental return path (incremental.ts).

const NONE: readonly never[] = [];

/**
 * Values by key; a key with one value (most: one workload per kernel dst, per
 * node IP a node's few) holds it without a Set, which at 30,000 routes was
 * most of a rebuild's garbage.
 */
export class Index<K, V extends object> {
  private readonly map = new Map<K, V | Set<V>>();

  get(key: K): Iterable<V> {
    const held = this.map.get(key);
    return held === undefined ? NONE : held instanceof Set ? held : [held];
  }

  keys(): Iterable<K> {
    return this.map.keys();
  }

  add(key: K, value: V): void {
    const held = this.map.get(key);
    if (held === undefined) this.map.set(key, value);
    else if (held instanceof Set) held.add(value);
    else this.map.set(key, new Set([held, value]));
  }

  delete(key: K, value: V): void {
    const held = this.map.get(key);
    if (held === value) {
      this.map.delete(key);
    } else if (held instanceof Set) {
      held.delete(value);
      if (held.size === 1) this.map.set(key, held.values().next().value!);
    }
  }

  clear(): void {
    this.map.clear();
  }
}

export function addTo<K, V>(index: Map<K, Set<V>>, key: K, value: V): void {
  const set = index.get(key);
  if (set === undefined) index.set(key, new Set([value]));
  else set.add(value);
}

export function removeFrom<K, V>(index: Map<K, Set<V>>, key: K, value: V): void {
  const set = index.get(key);
  if (set === undefined) return;
  set.delete(value);
  if (set.size === 0) index.delete(key);
}
