// The README's variable table is src/config/variables.ts word for word: the
// same variables in the same order, with the same default, reader and meaning.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { variables, type Variable } from "../src/config/index.js";
import { ROOT } from "../lab/gateway-process.js";

const readme = readFileSync(join(ROOT, "README.md"), "utf8");

/** The cells of the table under "## Configuration", padding trimmed (prettier aligns the columns). */
function readmeRows(): string[][] {
  const section = readme.split("\n## Configuration\n")[1]?.split("\n## ")[0] ?? "";
  return section
    .split("\n")
    .filter((line) => line.startsWith("| `"))
    .map((line) =>
      line
        .split("|")
        .slice(1, -1)
        .map((cell) => cell.trim()),
    );
}

/** The row variables.ts says the README must have. */
function expectedRow(v: Variable): string[] {
  const shownDefault = v.default === "" ? (v.defaultDoc ?? "none") : `\`${v.default}\``;
  return [`\`${v.name}\``, shownDefault, v.who, (v.ours ? "Ours. " : "") + v.description];
}

describe("README variable table", () => {
  const rows = readmeRows();

  it("lists the variables of variables.ts in the same order", () => {
    assert.deepEqual(
      rows.map((cells) => cells[0]),
      variables.map((v) => `\`${v.name}\``),
    );
  });

  for (const [i, variable] of variables.entries()) {
    it(`says for ${variable.name} what variables.ts says`, () => {
      const expected = expectedRow(variable);
      assert.deepEqual(rows[i], expected, `README row should read: | ${expected.join(" | ")} |`);
    });
  }
});
