/** Keeps the state file of the running `kf forward` process current, debounced, and removes it on exit. */

import type { ForwardStatus } from "../forward/status.ts";
import { type ControlHandlers, type ControlServer, serveControl } from "./control.ts";
import { processArgv, processStartTime } from "./process_identity.ts";
import {
  newSessionId,
  recordPath,
  removeSessionRecord,
  type SessionRecord,
  socketPath,
  writeSessionRecord,
} from "./session_file.ts";
import { ensureStateDir } from "./state_dir.ts";

export interface SessionRecorderOptions {
  /** The state dir (see `resolveStateDir`); created 0700 if missing. */
  dir: string;
  /** @default the process's real command line, `/proc/self/cmdline` */
  argv?: string[];
  configFiles: string[];
  /** Called at every write: the current status of every forward. Must be cheap. */
  snapshot: () => ForwardStatus[];
  logFile?: string;
  /** The session's grace period for open connections, recorded so `kf stop` waits long enough. */
  graceMs?: number;
  /** When given, serves the control channel on `<dir>/<id>.sock` with these handlers. */
  control?: ControlHandlers;
  /** At most one write per this interval, so busy forwards don't write per byte. @default 250 */
  minIntervalMs?: number;
  /** Re-snapshot this often without being told, so byte and connection counters stay fresh. @default 2000 */
  refreshMs?: number;
  /** A failed write or control error; the session keeps running. @default ignore */
  onError?: (error: unknown) => void;
}

/**
 * The session of one `kf forward` process. `start()` writes the first record before resolving; call
 * `changed()` whenever a forward's state changes; `close()` on clean exit removes the file and socket.
 * If the process exits without `close()` (e.g. `Deno.exit`), an unload handler removes them too; after
 * SIGKILL they stay until `kf ps` sees the dead pid.
 */
export class SessionRecorder {
  readonly id: string;
  readonly dir: string;
  /** `<dir>/<id>.json` */
  readonly file: string;
  readonly controlSocket: string;
  #base: Omit<SessionRecord, "forwards" | "updatedAt">;
  #snapshot: () => ForwardStatus[];
  #minIntervalMs: number;
  #onError: (error: unknown) => void;
  #control?: ControlServer;
  #lastWrittenForwards = "";
  /** performance.now() of the last write, for the debounce. */
  #lastWriteAt = -Infinity;
  #lastRecord?: SessionRecord;
  #timer?: ReturnType<typeof setTimeout>;
  #refresh?: ReturnType<typeof setInterval>;
  #chain: Promise<void> = Promise.resolve();
  #closed = false;
  /** Number of files written; for tests and debugging. */
  writes = 0;
  #onUnload = () => {
    for (const path of [this.file, this.controlSocket]) {
      try {
        Deno.removeSync(path);
      } catch { /* already gone */ }
    }
  };

  private constructor(id: string, options: SessionRecorderOptions) {
    this.id = id;
    this.dir = options.dir;
    this.file = recordPath(options.dir, id);
    this.controlSocket = socketPath(options.dir, id);
    this.#snapshot = options.snapshot;
    this.#minIntervalMs = options.minIntervalMs ?? 250;
    this.#onError = options.onError ?? (() => {});
    this.#base = {
      version: 1,
      id,
      pid: Deno.pid,
      startTime: processStartTime(Deno.pid),
      argv: options.argv ?? processArgv(Deno.pid) ?? [Deno.execPath(), ...Deno.args],
      configFiles: options.configFiles,
      startedAt: new Date().toISOString(),
      controlSocket: this.controlSocket,
      ...(options.logFile ? { logFile: options.logFile } : {}),
      ...(options.graceMs !== undefined ? { graceMs: options.graceMs } : {}),
    };
  }

  /** Creates the session: picks an id, serves the control socket (if asked), writes the first record. */
  static async start(options: SessionRecorderOptions): Promise<SessionRecorder> {
    await ensureStateDir(options.dir);
    const recorder = new SessionRecorder(await newSessionId(options.dir), options);
    globalThis.addEventListener("unload", recorder.#onUnload);
    try {
      if (options.control) {
        const handlers = options.control;
        recorder.#control = await serveControl({
          path: recorder.controlSocket,
          onError: recorder.#onError,
          handlers: {
            stop: () => handlers.stop(),
            status: () => handlers.status(),
            // Flush before answering, so `kf ps` right after `kf stop NAME` shows the result.
            stopForward: async (name) => {
              const result = await handlers.stopForward(name);
              await recorder.flush();
              return result;
            },
          },
        });
      }
      await recorder.flush();
    } catch (error) {
      await recorder.close();
      throw error;
    }
    const refresh = setInterval(() => recorder.changed(), options.refreshMs ?? 2000);
    Deno.unrefTimer(refresh);
    recorder.#refresh = refresh;
    return recorder;
  }

  /** The record as it was last written. */
  get record(): SessionRecord | undefined {
    return this.#lastRecord;
  }

  /** Something changed: write soon (now, if the last write was long enough ago). Never throws. */
  changed(): void {
    if (this.#closed || this.#timer !== undefined) return;
    const delay = Math.max(0, this.#lastWriteAt + this.#minIntervalMs - performance.now());
    const timer = setTimeout(() => {
      this.#timer = undefined;
      this.#enqueueWrite().catch(this.#onError);
    }, delay);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  /** Writes now if the forwards changed since the last write; resolves when the file is on disk. */
  async flush(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    await this.#enqueueWrite();
  }

  /** Stops writing, closes the control socket, removes the state file. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    clearInterval(this.#refresh);
    this.#timer = this.#refresh = undefined;
    await this.#chain.catch(() => {});
    await this.#control?.close();
    await removeSessionRecord(this.dir, this.id);
    globalThis.removeEventListener("unload", this.#onUnload);
  }

  #enqueueWrite(): Promise<void> {
    const write = this.#chain.then(() => this.#write());
    this.#chain = write.catch(() => {});
    return write;
  }

  async #write(): Promise<void> {
    if (this.#closed) return;
    const forwards = this.#snapshot();
    const serialized = JSON.stringify(forwards);
    if (serialized === this.#lastWrittenForwards) return;
    const record: SessionRecord = { ...this.#base, updatedAt: new Date().toISOString(), forwards };
    await writeSessionRecord(this.dir, record);
    this.#lastRecord = record;
    this.#lastWrittenForwards = serialized;
    this.#lastWriteAt = performance.now();
    this.writes++;
  }
}
