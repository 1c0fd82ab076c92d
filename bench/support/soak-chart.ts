// The soak's chart: one small panel per series (samples as dots, the fitted
// line after warm-up, warm-up shaded), as a self-contained SVG.
import type { SeriesSummary, SoakSample } from "./soak-stats.js";

const PANEL = { width: 460, height: 190, left: 64, right: 16, top: 42, bottom: 34 } as const;
const COLUMNS = 2;

const escapeXml = (text: string): string =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** Round numbers for the axis: min, max and one step between, widened when the data is flat. */
function axisRange(values: readonly number[]): [number, number] {
  let low = Math.min(...values);
  let high = Math.max(...values);
  if (!Number.isFinite(low) || !Number.isFinite(high)) return [0, 1];
  const pad = high - low === 0 ? Math.max(Math.abs(high) * 0.05, 1) : (high - low) * 0.1;
  low -= pad;
  high += pad;
  if (low < 0 && Math.min(...values) >= 0) low = 0;
  return [low, high];
}

const label = (n: number): string =>
  Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2);

function panel(
  summary: SeriesSummary,
  samples: readonly SoakSample[],
  warmupMinutes: number,
  lastMinute: number,
): string {
  const { series } = summary;
  const values = samples.map((s) => s[series.key] * series.scale).filter(Number.isFinite);
  const [low, high] = axisRange(series.target.kind === "max" ? [...values, series.target.limit] : values);
  const plotW = PANEL.width - PANEL.left - PANEL.right;
  const plotH = PANEL.height - PANEL.top - PANEL.bottom;
  const x = (minute: number): number => PANEL.left + (lastMinute > 0 ? (minute / lastMinute) * plotW : 0);
  const y = (value: number): number => PANEL.top + plotH - ((value - low) / (high - low)) * plotH;
  const round = (n: number): string => n.toFixed(1);
  const out: string[] = [];
  const status = summary.met ? "met" : "NOT MET";
  const figure =
    series.target.kind === "slope"
      ? `slope ${label(summary.slopePer10Min)} ${series.unit}/10 min`
      : `max ${label(summary.max)} ${series.unit}`;
  out.push(
    `<text x="${PANEL.left}" y="16" class="title">${escapeXml(`${series.label} (${series.unit})`)}</text>`,
    `<text x="${PANEL.left}" y="32" class="${summary.met ? "met" : "miss"}">${escapeXml(`${figure}: ${status}`)}</text>`,
    `<rect x="${PANEL.left}" y="${PANEL.top}" width="${plotW}" height="${plotH}" class="frame"/>`,
  );
  if (warmupMinutes > 0) {
    const w = Math.min(x(warmupMinutes), PANEL.left + plotW) - PANEL.left;
    out.push(
      `<rect x="${PANEL.left}" y="${PANEL.top}" width="${round(w)}" height="${plotH}" class="warmup"/>`,
    );
  }
  for (const value of [low, (low + high) / 2, high]) {
    out.push(
      `<text x="${PANEL.left - 6}" y="${round(y(value) + 4)}" class="tick" text-anchor="end">${label(value)}</text>`,
    );
  }
  for (const minute of [0, lastMinute / 2, lastMinute]) {
    out.push(
      `<text x="${round(x(minute))}" y="${PANEL.top + plotH + 16}" class="tick" text-anchor="middle">${label(minute)}</text>`,
    );
  }
  out.push(
    `<text x="${PANEL.left + plotW}" y="${PANEL.height - 4}" class="tick" text-anchor="end">minutes</text>`,
  );
  if (series.target.kind === "max") {
    const ty = round(y(series.target.limit));
    out.push(`<line x1="${PANEL.left}" y1="${ty}" x2="${PANEL.left + plotW}" y2="${ty}" class="limit"/>`);
  }
  for (const s of samples) {
    const value = s[series.key] * series.scale;
    if (!Number.isFinite(value)) continue;
    out.push(`<circle cx="${round(x(s.minute))}" cy="${round(y(value))}" r="2.5" class="dot"/>`);
  }
  if (series.target.kind === "slope" && Number.isFinite(summary.slopePer10Min)) {
    const at = (minute: number): number => summary.intercept + (summary.slopePer10Min / 10) * minute;
    out.push(
      `<line x1="${round(x(warmupMinutes))}" y1="${round(y(at(warmupMinutes)))}" x2="${round(x(lastMinute))}" y2="${round(y(at(lastMinute)))}" class="fit"/>`,
    );
  }
  return out.join("\n    ");
}

/** The whole chart: a title line, then the panels two to a row. */
export function soakChart(
  title: string,
  samples: readonly SoakSample[],
  summaries: readonly SeriesSummary[],
  warmupMinutes: number,
): string {
  const lastMinute = Math.max(0, ...samples.map((s) => s.minute));
  const rows = Math.ceil(summaries.length / COLUMNS);
  const width = PANEL.width * COLUMNS;
  const height = 30 + rows * PANEL.height;
  const panels = summaries.map((summary, i) => {
    const [dx, dy] = [(i % COLUMNS) * PANEL.width, 30 + Math.floor(i / COLUMNS) * PANEL.height];
    return `  <g transform="translate(${dx},${dy})">\n    ${panel(summary, samples, warmupMinutes, lastMinute)}\n  </g>`;
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    "  <style>",
    "    .title { font-size: 14px; font-weight: bold; } .tick { font-size: 11px; fill: #555; }",
    "    .met { font-size: 12px; fill: #1a7f37; } .miss { font-size: 12px; fill: #cf222e; }",
    "    .frame { fill: none; stroke: #999; } .warmup { fill: #eee; } .dot { fill: #0969da; }",
    "    .fit { stroke: #cf222e; stroke-width: 1.5; } .limit { stroke: #cf222e; stroke-dasharray: 4 3; }",
    "  </style>",
    `  <rect width="${width}" height="${height}" fill="#fff"/>`,
    `  <text x="12" y="20" class="title">${escapeXml(title)}</text>`,
    ...panels,
    "</svg>",
    "",
  ].join("\n");
}
