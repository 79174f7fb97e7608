/** One JSON file per session in the state dir: its format, atomic writes, tolerant reads, ids. */

import type { ForwardStatus } from "../forward/status.ts";

/** The state file of one running `kf forward` process, `<dir>/<id>.json`. */
export interface SessionRecord {
  version: 1;
  /** Short id, see {@linkcode newSessionId}. Also the file name. */
  id: string;
  pid: number;
  /** `processStartTime(pid)` when the session started; absent when the platform cannot tell. */
  startTime?: string;
  /** The process's real command line (`processArgv(pid)`), part of its identity. */
  argv: string[];
  /** Config files the session was started from, absolute paths. */
  configFiles: string[];
  /** ISO 8601. */
  startedAt: string;
  /** ISO 8601, last write. */
  updatedAt: string;
  /** Unix socket of the control channel, `<dir>/<id>.sock`. */
  controlSocket: string;
  logFile?: string;
  /**
   * How long the session lets open connections finish when it or one of its forwards is stopped
   * (`kf forward --grace`); `kf stop` waits at least this long before giving up. Absent in older files.
   */
  graceMs?: number;
  forwards: ForwardStatus[];
}

/** A session file that could not be used, reported instead of thrown so one bad file cannot hide the others. */
export interface RecordProblem {
  file: string;
  error: string;
}

export interface ReadResult {
  records: SessionRecord[];
  problems: RecordProblem[];
}

/** Ids: lowercase, no 0/o, 1/l/i lookalikes; the first char is a letter so an id never reads as a pid. */
const LETTERS = "abcdefghjkmnpqrstuvwxyz";
const ALPHABET = `${LETTERS}23456789`;
const ID_LENGTH = 6;
const ID_PATTERN = /^[a-z2-9]{6}$/;
/** A temp file (or --detach report) this old was left by a writer or reader that was killed. */
const ORPHAN_TEMP_MS = 60_000;

export function recordPath(dir: string, id: string): string {
  return `${dir}/${id}.json`;
}

export function socketPath(dir: string, id: string): string {
  return `${dir}/${id}.sock`;
}

/** Writes `<dir>/<id>.json` atomically: a new temp file (mode 0600) in the same dir, then rename over. */
export async function writeSessionRecord(dir: string, record: SessionRecord): Promise<void> {
  const temp = `${dir}/.${record.id}.${randomChars(8)}.tmp`;
  try {
    // createNew: never follow or reuse something already at the temp path.
    await Deno.writeTextFile(temp, JSON.stringify(record, null, 2) + "\n", { mode: 0o600, createNew: true });
    await Deno.rename(temp, recordPath(dir, record.id));
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
}

/** Reads every `<id>.json` in dir. Temp files are skipped (and removed once orphaned); bad files become problems. */
export async function readSessionRecords(dir: string): Promise<ReadResult> {
  const result: ReadResult = { records: [], problems: [] };
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return result;
    throw error;
  }
  await Promise.all(entries.map(async (entry) => {
    const file = `${dir}/${entry.name}`;
    // Dot files are never session files: temp files of a write in progress, and the start report of
    // `kf forward --detach` (left behind when the waiting command was interrupted).
    if (entry.name.startsWith(".")) {
      if (entry.isFile && (entry.name.endsWith(".tmp") || entry.name.endsWith(".json"))) {
        await removeOrphanTemp(file);
      }
      return;
    }
    if (!entry.isFile || !entry.name.endsWith(".json")) return;
    try {
      const record = parseSessionRecord(await Deno.readTextFile(file));
      if (record.id !== entry.name.slice(0, -".json".length)) {
        throw new Error(`its id '${record.id}' does not match the file name`);
      }
      result.records.push(record);
    } catch (error) {
      // NotFound: the session removed its file while we listed; that is not a problem.
      if (error instanceof Deno.errors.NotFound) return;
      result.problems.push({ file, error: (error as Error).message });
    }
  }));
  result.records.sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.id.localeCompare(b.id));
  result.problems.sort((a, b) => a.file.localeCompare(b.file));
  return result;
}

/** Removes a session's file and control socket; missing ones are fine. */
export async function removeSessionRecord(dir: string, id: string): Promise<void> {
  await Promise.all(
    [recordPath(dir, id), socketPath(dir, id)].map((path) =>
      Deno.remove(path).catch((error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      })
    ),
  );
}

/** A new id like `k3m9qa`, not used by a file or socket in dir. */
export async function newSessionId(dir: string): Promise<string> {
  for (;;) {
    const id = randomChars(1, LETTERS) + randomChars(ID_LENGTH - 1);
    const taken = await Promise.all(
      [recordPath(dir, id), socketPath(dir, id)].map((path) =>
        Deno.lstat(path).then(() => true, () => false)
      ),
    );
    if (!taken.includes(true)) return id;
  }
}

export function isSessionId(text: string): boolean {
  return ID_PATTERN.test(text) && LETTERS.includes(text[0]);
}

/** Parses and validates a session file's text; throws an Error saying what is wrong. */
export function parseSessionRecord(text: string): SessionRecord {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error(`it is not valid JSON (${(error as Error).message}); a partial or foreign file?`);
  }
  if (typeof value !== "object" || value === null) throw new Error("it is not a JSON object");
  const r = value as Record<string, unknown>;
  if (r.version !== 1) throw new Error(`unsupported version ${JSON.stringify(r.version)} (this kf reads 1)`);
  const need = (field: string, ok: boolean) => {
    if (!ok) throw new Error(`field '${field}' is missing or has the wrong type`);
  };
  need("id", typeof r.id === "string");
  need("pid", Number.isInteger(r.pid) && (r.pid as number) > 0);
  need("startTime", r.startTime === undefined || typeof r.startTime === "string");
  need("argv", isStringArray(r.argv));
  need("configFiles", isStringArray(r.configFiles));
  need("startedAt", typeof r.startedAt === "string");
  need("updatedAt", typeof r.updatedAt === "string");
  need("controlSocket", typeof r.controlSocket === "string");
  need("logFile", r.logFile === undefined || typeof r.logFile === "string");
  need(
    "graceMs",
    r.graceMs === undefined ||
      (typeof r.graceMs === "number" && Number.isFinite(r.graceMs) && r.graceMs >= 0),
  );
  need("forwards", Array.isArray(r.forwards));
  for (const [i, f] of (r.forwards as unknown[]).entries()) {
    const fw = f as Record<string, unknown>;
    need(
      `forwards[${i}]`,
      typeof f === "object" && f !== null && typeof fw.name === "string" && typeof fw.state === "string" &&
        Array.isArray(fw.listeners),
    );
  }
  return value as SessionRecord;
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === "string");
}

function randomChars(count: number, alphabet = ALPHABET): string {
  let out = "";
  while (out.length < count) {
    for (const byte of crypto.getRandomValues(new Uint8Array(count * 2))) {
      // Rejection sampling keeps every char equally likely.
      if (byte < 256 - (256 % alphabet.length) && out.length < count) out += alphabet[byte % alphabet.length];
    }
  }
  return out;
}

async function removeOrphanTemp(file: string): Promise<void> {
  try {
    const info = await Deno.lstat(file);
    if (info.mtime && Date.now() - info.mtime.getTime() > ORPHAN_TEMP_MS) await Deno.remove(file);
  } catch {
    // Renamed or removed meanwhile: nothing to do.
  }
}
