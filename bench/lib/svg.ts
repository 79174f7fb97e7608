/** A grouped horizontal bar chart of the results, written as SVG by hand (no dependencies). */

import { COLUMNS, type Results, type Row } from "./report.ts";
import { round } from "./stats.ts";

const COLORS: Record<string, string> = {
  kf: "#2563eb",
  kubectl: "#ea580c",
  kftui: "#16a34a",
  direct: "#9ca3af",
};

const WIDTH = 980;
const LABEL_WIDTH = 400;
const BAR_AREA = 470;
const BAR_HEIGHT = 11;
const BAR_GAP = 2;
const GROUP_GAP = 12;

function esc(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** Splits text into lines of at most `width` characters, at spaces. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

function plottable(row: Row): boolean {
  const values = COLUMNS.map((c) => row.values[c]).filter((v): v is number =>
    v !== undefined && Number.isFinite(v)
  );
  return values.length >= 2 || (values.length === 1 && row.values.kf !== undefined);
}

/** One group of bars per metric, each group scaled to its own largest value (units differ between metrics). */
export function chart(results: Results): string {
  const rows = results.scenarios.flatMap((s) => s.rows).filter(plottable);
  const parts: string[] = [];
  let y = 56;
  let lastScenario = -1;
  for (const row of rows) {
    if (row.scenario !== lastScenario) {
      const scenario = results.scenarios.find((s) => s.id === row.scenario);
      y += 6;
      parts.push(
        `<text x="8" y="${y + 10}" font-weight="bold" font-size="13">${row.scenario}. ${
          esc(scenario?.title ?? "")
        }</text>`,
      );
      y += 18;
      lastScenario = row.scenario;
    }
    const columns = COLUMNS.filter((c) => row.values[c] !== undefined);
    // the scale is the tools' largest value; a far larger direct (physical limit) bar is cut off and marked
    const tools = columns.filter((c) => c !== "direct").map((c) => row.values[c]!).filter(Number.isFinite);
    const finite = tools.length ? tools : columns.map((c) => row.values[c]!).filter(Number.isFinite);
    const top = Math.max(...finite.map(Math.abs), 1e-9) * 1.05;
    const groupHeight = columns.length * (BAR_HEIGHT + BAR_GAP);
    const arrow = row.better === "higher"
      ? "higher is better"
      : row.better === "lower"
      ? "lower is better"
      : "";
    const mark = row.met === undefined ? "" : row.met ? " ✓ goal met" : " ✗ goal missed";
    const label = wrap(`${row.metric}, ${row.unit}`, 62);
    label.forEach((line, i) =>
      parts.push(`<text x="16" y="${y + 9 + i * 13}" font-size="11">${esc(line)}</text>`)
    );
    const color = row.met === false ? "#b91c1c" : "#555";
    parts.push(
      `<text x="16" y="${y + 9 + label.length * 13}" font-size="10" fill="${color}">${
        esc(arrow + mark)
      }</text>`,
    );
    columns.forEach((column, i) => {
      const value = row.values[column]!;
      const barY = y + i * (BAR_HEIGHT + BAR_GAP);
      const full = Number.isFinite(value) ? Math.max(1, (Math.abs(value) / top) * BAR_AREA) : 0;
      const width = Math.min(full, BAR_AREA);
      const text = `${full > BAR_AREA ? "» " : ""}${column} ${Number.isFinite(value) ? round(value) : "n/a"}`;
      parts.push(
        `<rect x="${LABEL_WIDTH}" y="${barY}" width="${width.toFixed(1)}" height="${BAR_HEIGHT}" fill="${
          COLORS[column]
        }"><title>${column}: ${value}</title></rect>`,
        `<text x="${LABEL_WIDTH + width + 4}" y="${barY + BAR_HEIGHT - 2}" font-size="10">${
          esc(text)
        }</text>`,
      );
    });
    y += Math.max(groupHeight, label.length * 13 + 16) + GROUP_GAP;
  }
  const legend = Object.entries(COLORS).map(([name, color], i) =>
    `<rect x="${570 + i * 100}" y="30" width="12" height="12" fill="${color}"/><text x="${
      570 + i * 100 + 16
    }" y="40" font-size="12">${name}</text>`
  );
  const height = y + 10;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="8" y="20" font-size="15" font-weight="bold">kf vs kubectl port-forward${
      results.tools.kftui.installed ? " vs kftui" : ""
    } (direct = no Kubernetes), ${esc(results.machine.date.slice(0, 10))}</text>`,
    `<text x="8" y="40" font-size="11" fill="#555">each metric scaled to the largest tool value (» = direct, cut off); medians</text>`,
    ...legend,
    ...parts,
    `</svg>`,
  ].join("\n") + "\n";
}
