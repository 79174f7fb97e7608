/**
 * What `kf ps` shows: the listing of sessions as a table or JSON, once or redrawn. Free of the CLI framework
 * so that main.ts can answer a plain `kf ps` without loading it (see there).
 */

import type { ForwardStatus } from "../forward/status.ts";
// the state modules directly, not mod.ts: this must start fast (no kube client, no ws)
import { checkStateDir } from "../state/state_dir.ts";
import { listSessions, type SessionView } from "../state/sessions.ts";
import type { RecordProblem } from "../state/session_file.ts";
import { formatAge, formatBytes, formatListeners } from "./format.ts";
import type { CommandIO } from "./io.ts";

/** `-w` redraw interval. */
const WATCH_INTERVAL_MS = 1000;
/** Longer last errors are cut so a row stays on one line; `-o json` has the whole text. */
const MAX_ERROR_CHARS = 60;

/** The whole `kf ps` output for one listing. Problems go to stderr in table mode, into the document in JSON. */
export async function renderOnce(dir: string, format: "table" | "json", io: CommandIO): Promise<string> {
  const problems: RecordProblem[] = [];
  const views = (await checkStateDir(dir))
    ? await listSessions(dir, { onProblem: (p) => problems.push(p) })
    : [];
  if (format === "json") return JSON.stringify(sessionsDocument(dir, views, problems)) + "\n";
  for (const p of problems) io.err(`warning: cannot read session file ${p.file}: ${p.error}\n`);
  if (views.length === 0) return "No kf sessions running.\n";
  const gone = views.filter((v) => v.liveness !== "live").length;
  const note = gone
    ? `(${gone} dead or stale session${gone === 1 ? "" : "s"} shown once; state removed)\n`
    : "";
  return renderSessionsTable(views) + note;
}

export async function watch(dir: string, format: "table" | "json", io: CommandIO): Promise<void> {
  const controller = new AbortController();
  const signal = io.signal ?? controller.signal;
  const onInt = () => controller.abort();
  if (!io.signal) Deno.addSignalListener("SIGINT", onInt);
  try {
    while (!signal.aborted) {
      const text = await renderOnce(dir, format, io);
      if (format === "json") io.out(text);
      else {io.out(
          `\x1b[H\x1b[2J` +
            `Every ${WATCH_INTERVAL_MS / 1000}s: kf ps    ${new Date().toLocaleTimeString()}\n\n` + text,
        );}
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, WATCH_INTERVAL_MS);
        function done() {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          resolve();
        }
        signal.addEventListener("abort", done, { once: true });
      });
    }
  } finally {
    if (!io.signal) Deno.removeSignalListener("SIGINT", onInt);
  }
}

/** `-o json`: `{stateDir, sessions: [{...record, liveness}], problems}`. */
export function sessionsDocument(dir: string, views: SessionView[], problems: RecordProblem[] = []) {
  return {
    stateDir: dir,
    sessions: views.map((v) => ({ ...v.record, liveness: v.liveness })),
    problems,
  };
}

/** One row per forward (one row for a session without forwards); session columns repeat for grep. */
export function renderSessionsTable(views: SessionView[], now: number = Date.now()): string {
  // A forward that failed before it resolved its context reports "": that is not another context.
  const contexts = new Set(views.flatMap((v) => v.record.forwards.map((f) => f.context).filter(Boolean)));
  const withContext = contexts.size > 1;
  const header = [
    "SESSION",
    "PID",
    "AGE",
    "FORWARD",
    "LOCAL",
    ...(withContext ? ["CONTEXT"] : []),
    "TARGET",
    "POD",
    "STATE",
    "CONN",
    "IN",
    "OUT",
    "LAST ERROR",
  ];
  const rows: string[][] = [header];
  for (const { record, liveness } of views) {
    const session = [record.id, String(record.pid), formatAge(now - Date.parse(record.startedAt))];
    const forwards: (ForwardStatus | undefined)[] = record.forwards.length ? record.forwards : [undefined];
    for (const f of forwards) {
      if (!f) {
        rows.push([
          ...session,
          "-",
          "-",
          ...(withContext ? ["-"] : []),
          "-",
          "-",
          stateOf(liveness),
          "-",
          "-",
          "-",
          "",
        ]);
        continue;
      }
      rows.push([
        ...session,
        f.name,
        formatListeners(f.listeners, false) || "-",
        ...(withContext ? [f.context || "-"] : []),
        formatTarget(f),
        f.pod ?? "-",
        liveness === "live" ? f.state : stateOf(liveness),
        `${f.openConnections}/${f.totalConnections}`,
        formatBytes(f.bytesIn),
        formatBytes(f.bytesOut),
        formatLastError(f, now),
      ]);
    }
  }
  const widths = header.map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) =>
    r.map((cell, i) => i === r.length - 1 ? cell : cell.padEnd(widths[i])).join("  ").trimEnd()
  )
    .join("\n") + "\n";
}

function stateOf(liveness: SessionView["liveness"]): string {
  return liveness === "live" ? "-" : liveness;
}

function formatTarget(f: ForwardStatus): string {
  const ports = [...new Set(f.listeners.map((l) => String(l.remote)))].join(",");
  const target = f.namespace ? `${f.namespace}/${f.target}` : f.target;
  return ports ? `${target}:${ports}` : target;
}

function formatLastError(f: ForwardStatus, now: number): string {
  if (!f.lastError) return "";
  const text = f.lastError.replace(/\s+/g, " ");
  const cut = text.length > MAX_ERROR_CHARS ? text.slice(0, MAX_ERROR_CHARS - 1) + "…" : text;
  return f.lastErrorAt ? `${formatAge(now - f.lastErrorAt)} ago: ${cut}` : cut;
}
