/** The control channel of a session: a unix socket speaking newline-delimited JSON, one answer per request. */

import type { ForwardStatus } from "../forward/status.ts";
import { ControlError } from "./errors.ts";
import { writeAll } from "../bytes.ts";

/**
 * Requests, one JSON object per line:
 * - `{"op":"status"}` -> `{"ok":true,"pid":4242,"forwards":[...]}`
 * - `{"op":"stop-forward","name":"api"}` -> `{"ok":true,"pid":4242}` once that forward has stopped, or
 *   `{"ok":false,"pid":4242,"error":"no forward named 'api'"}`; the other forwards keep running
 * - `{"op":"stop"}` -> `{"ok":true,"pid":4242}`, answered before the session starts shutting down
 *   (the process may be gone before the client could read a later answer)
 *
 * Anything else gets `{"ok":false,"error":...}`. Every answer carries the server's pid so a client can
 * check it reached the process the session file names.
 */
export type ControlRequest = { op: "stop" } | { op: "stop-forward"; name: string } | { op: "status" };

export interface ControlResponse {
  ok: boolean;
  pid?: number;
  error?: string;
  forwards?: ForwardStatus[];
}

export interface ControlHandlers {
  /** Shut the whole session down (as on SIGTERM). */
  stop(): Promise<void>;
  /** Stop one forward, leaving the others running. */
  stopForward(name: string): Promise<{ ok: boolean; error?: string }>;
  status(): ForwardStatus[];
}

export interface ServeControlOptions {
  /** Socket path, `<state dir>/<id>.sock`. */
  path: string;
  /** Aborting closes the socket and removes its file. */
  signal?: AbortSignal;
  handlers: ControlHandlers;
  /** Errors of single connections or of `stop()`; the server keeps running. @default ignore */
  onError?: (error: unknown) => void;
}

export interface ControlServer {
  path: string;
  /** Stops accepting, removes the socket file; resolves when the accept loop has ended. */
  close(): Promise<void>;
}

/** Longest unix socket path: sun_path is 108 bytes on Linux, 104 on macOS, with a NUL at the end. */
const MAX_SOCKET_PATH = Deno.build.os === "darwin" ? 103 : 107;
/** A request line longer than this is not from kf; drop the connection instead of buffering it. */
const MAX_LINE_BYTES = 64 * 1024;
/** How long to wait for an old socket at our path to answer before calling it stale. */
const PROBE_TIMEOUT_MS = 500;

/**
 * Listens on a unix socket (mode 0600; the 0700 state dir already keeps others out while it is being
 * chmod'ed). A socket file left by a killed process is replaced; one that still answers is refused.
 */
export async function serveControl(options: ServeControlOptions): Promise<ControlServer> {
  const { path, handlers, onError = () => {} } = options;
  if (new TextEncoder().encode(path).length > MAX_SOCKET_PATH) {
    throw new ControlError(path, `the path is longer than ${MAX_SOCKET_PATH} bytes, the unix socket limit`, {
      hint: "set KF_STATE_DIR to a shorter directory",
    });
  }
  await removeStaleSocket(path);
  const listener = Deno.listen({ transport: "unix", path });
  await Deno.chmod(path, 0o600);

  const connections = new Set<Deno.Conn>();
  let closed = false;
  const loop = (async () => {
    try {
      for await (const conn of listener) {
        connections.add(conn);
        serveConnection(conn, handlers, onError).finally(() => connections.delete(conn));
      }
    } catch (error) {
      if (!closed) onError(error);
    }
  })();

  const close = async () => {
    if (closed) return loop;
    closed = true;
    options.signal?.removeEventListener("abort", onAbort);
    try {
      listener.close(); // Deno removes the socket file when a unix listener closes.
    } catch { /* already closed */ }
    for (const conn of connections) {
      try {
        conn.close();
      } catch { /* already closed */ }
    }
    await Deno.remove(path).catch(() => {});
    await loop;
  };
  const onAbort = () => void close();
  if (options.signal?.aborted) await close();
  else options.signal?.addEventListener("abort", onAbort, { once: true });
  return { path, close };
}

/** Sends one request and waits for its answer. Throws {@linkcode ControlError} when nobody answers in time. */
export async function sendControl(
  path: string,
  request: ControlRequest,
  options: { timeoutMs?: number } = {},
): Promise<ControlResponse> {
  const { timeoutMs = 3000 } = options;
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path });
  } catch (error) {
    const detail = error instanceof Deno.errors.NotFound
      ? "its control socket does not exist"
      : error instanceof Deno.errors.ConnectionRefused
      ? "nothing listens on its control socket"
      : (error as Error).message;
    throw new ControlError(path, detail, { cause: error, hint: "stop the whole session with kf stop <id>" });
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    conn.close();
  }, timeoutMs);
  try {
    await writeAll(conn, new TextEncoder().encode(JSON.stringify(request) + "\n"));
    const line = await readLine(conn);
    if (line === undefined) throw new Error("it closed the connection without answering");
    const response = JSON.parse(line) as ControlResponse;
    if (typeof response !== "object" || response === null || typeof response.ok !== "boolean") {
      throw new Error(`it answered with something that is not a kf control response: ${line.slice(0, 80)}`);
    }
    return response;
  } catch (error) {
    if (error instanceof ControlError) throw error;
    const detail = timedOut ? `no answer within ${timeoutMs} ms` : (error as Error).message;
    throw new ControlError(path, detail, { cause: error, hint: "stop the whole session with kf stop <id>" });
  } finally {
    clearTimeout(timer);
    if (!timedOut) {
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  }
}

async function serveConnection(conn: Deno.Conn, handlers: ControlHandlers, onError: (e: unknown) => void) {
  const reader = new LineReader(conn);
  try {
    for (;;) {
      const line = await reader.next();
      if (line === undefined) return;
      if (line.trim() === "") continue;
      const { response, after } = await answer(line, handlers);
      await writeAll(conn, new TextEncoder().encode(JSON.stringify({ ...response, pid: Deno.pid }) + "\n"));
      if (after) {
        after().catch(onError);
        return;
      }
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.BadResource || error instanceof Deno.errors.BrokenPipe)) {
      onError(error);
    }
  } finally {
    try {
      conn.close();
    } catch { /* already closed */ }
  }
}

async function answer(
  line: string,
  handlers: ControlHandlers,
): Promise<{ response: ControlResponse; after?: () => Promise<void> }> {
  let request: Record<string, unknown>;
  try {
    request = JSON.parse(line);
    if (typeof request !== "object" || request === null) throw new Error("not an object");
  } catch (error) {
    return { response: { ok: false, error: `bad request: ${(error as Error).message}` } };
  }
  try {
    switch (request.op) {
      case "status":
        return { response: { ok: true, forwards: handlers.status() } };
      case "stop-forward": {
        if (typeof request.name !== "string") {
          return { response: { ok: false, error: "stop-forward needs a name" } };
        }
        const result = await handlers.stopForward(request.name);
        return { response: result.ok ? { ok: true } : { ok: false, error: result.error ?? "failed" } };
      }
      case "stop":
        return { response: { ok: true }, after: () => handlers.stop() };
      default:
        return { response: { ok: false, error: `unknown op ${JSON.stringify(request.op)}` } };
    }
  } catch (error) {
    return { response: { ok: false, error: (error as Error).message } };
  }
}

async function removeStaleSocket(path: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw error;
  }
  if (!info.isSocket) {
    throw new ControlError(path, "a file that is not a socket is in the way", { hint: `remove ${path}` });
  }
  let answered = false;
  try {
    const response = await sendControl(path, { op: "status" }, { timeoutMs: PROBE_TIMEOUT_MS });
    answered = response.ok;
  } catch {
    // Refused or silent: left behind by a process that was killed.
  }
  if (answered) {
    throw new ControlError(path, "another running kf session answers on this socket", {
      hint: "session ids are unique; if this repeats, see kf ps",
    });
  }
  await Deno.remove(path).catch(() => {});
}

async function readLine(conn: Deno.Conn): Promise<string | undefined> {
  return await new LineReader(conn).next();
}

/** Splits a connection's bytes into lines; undefined at end of stream. */
class LineReader {
  #conn: Deno.Conn;
  #buffer = new Uint8Array(0);
  #chunk = new Uint8Array(4096);

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  async next(): Promise<string | undefined> {
    for (;;) {
      const newline = this.#buffer.indexOf(10);
      if (newline >= 0) {
        const line = new TextDecoder().decode(this.#buffer.subarray(0, newline));
        this.#buffer = this.#buffer.slice(newline + 1);
        return line;
      }
      if (this.#buffer.length > MAX_LINE_BYTES) throw new Error("request line too long");
      const n = await this.#conn.read(this.#chunk);
      if (n === null) return undefined;
      const merged = new Uint8Array(this.#buffer.length + n);
      merged.set(this.#buffer);
      merged.set(this.#chunk.subarray(0, n), this.#buffer.length);
      this.#buffer = merged;
    }
  }
}
