// Renders readiness for people (an aligned text table, like the node agent's own
// health report) and for programs (JSON). Bodies are cached per view version:
// the /readiness hot path is a version compare and a string reference.
import { formatDuration } from "../config/duration.js";
import { TERMINATION } from "../readiness/components.js";
import type { ReadinessView } from "../readiness/readiness.js";

export interface RenderedReadiness {
  readonly status: 200 | 503;
  readonly text: string;
  readonly json: string;
}

export function renderReadiness(view: ReadinessView): RenderedReadiness {
  const rows = view.components.map((c) => [
    c.name,
    c.timeoutMs === undefined ? "-" : formatDuration(c.timeoutMs),
    c.ready ? "ready" : "not ready",
    c.detail,
  ]);
  if (view.terminating) rows.push([TERMINATION.name, "-", "not ready", TERMINATION.detail]);
  const table = [["COMPONENT", "TIMEOUT", "READINESS", "DETAIL"], ...rows];
  const widths = [0, 1, 2].map((i) => Math.max(...table.map((r) => r[i]!.length)));
  const lines = table.map((r) => r.map((cell, i) => (i < 3 ? cell.padEnd(widths[i]!) : cell)).join("  "));
  const json = JSON.stringify({
    ready: view.ready,
    terminating: view.terminating,
    components: view.components.map((c) => ({
      name: c.name,
      timeoutSeconds: c.timeoutMs === undefined ? null : c.timeoutMs / 1000,
      ready: c.ready,
      detail: c.detail,
    })),
  });
  return { status: view.ready ? 200 : 503, text: `${lines.join("\n")}\n`, json };
}

/** Memoises renderReadiness on the view's version. */
export function cachedRenderer(): (view: ReadinessView) => RenderedReadiness {
  let version = "";
  let rendered: RenderedReadiness | undefined;
  return (view) => {
    if (rendered === undefined || view.version !== version) {
      rendered = renderReadiness(view);
      version = view.version;
    }
    return rendered;
  };
}
