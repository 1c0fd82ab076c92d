// iptables-save text in, tables -> chains -> rules out. Pure. Only what the
// plan needs: which chains exist and, in order, the rule specs of each.
import type { SavedTables } from "./types.js";

export function parseIptablesSave(text: string): SavedTables {
  const tables = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("*")) {
      current = new Map();
      tables.set(line.slice(1), current);
    } else if (current === undefined || line === "" || line.startsWith("#") || line === "COMMIT") {
      continue;
    } else if (line.startsWith(":")) {
      const chain = line.slice(1).split(/\s+/)[0] ?? "";
      if (!current.has(chain)) current.set(chain, []);
    } else if (line.startsWith("-A ")) {
      const [, chain = "", ...rest] = line.split(/\s+/);
      const rules = current.get(chain) ?? [];
      rules.push(rest.join(" "));
      current.set(chain, rules);
    }
  }
  return tables;
}

/** 1-based positions of the rules in `rules` that jump (or go) to `target`. */
export function jumpPositions(rules: readonly string[], target: string): number[] {
  const jump = new RegExp(`(?:^|\\s)-[jg]\\s+${target.replace(/[-]/g, "\\-")}(?:\\s|$)`);
  return rules.flatMap((rule, index) => (jump.test(rule) ? [index + 1] : []));
}
