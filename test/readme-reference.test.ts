// The README's environment reference must list every variable the
// configuration accepts, with the default the code uses.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { variables } from "../src/config/index.js";
import { ROOT } from "../lab/gateway-process.js";

const readme = readFileSync(join(ROOT, "README.md"), "utf8");
const rows = new Map(
  readme
    .split("\n")
    .filter((line) => line.startsWith("| `"))
    .map((line) => line.split("|").map((cell) => cell.trim()))
    .map((cells) => [cells[1]!.replaceAll("`", ""), cells] as const),
);

describe("README environment reference", () => {
  for (const variable of variables) {
    it(`documents ${variable.name} with its default`, () => {
      const row = rows.get(variable.name);
      assert.ok(row, `README has no table row for ${variable.name}`);
      if (variable.default !== "") {
        assert.equal(
          row[2],
          `\`${variable.default}\``,
          `${variable.name}: README default differs from the code`,
        );
      }
    });
  }
});
