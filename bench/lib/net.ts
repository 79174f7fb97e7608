/**
 * Load generators: plain TCP clients to a local port (a forward's, or the backend's directly). They use
 * Deno.TcpConn read/write with large reused buffers so that the client is never the bottleneck.
 */

import { concatBytes } from "../../src/bytes.ts";

const HOST = "127.0.0.1";
const encoder = new TextEncoder();
const CRLFCRLF = [13, 10, 13, 10];

export async function connect(port: number): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: HOST, port });
  conn.setNoDelay(true);
  return conn;
}

export function closeQuietly(conn: Deno.Conn | undefined): void {
  try {
    conn?.close();
  } catch {
    // already closed
  }
}

/** Whether something accepts connections on the port (the connection is closed at once). */
export async function canConnect(port: number): Promise<boolean> {
  try {
    (await Deno.connect({ hostname: HOST, port })).close();
    return true;
  } catch {
    return false;
  }
}

export async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let written = 0;
  while (written < data.length) written += await conn.write(data.subarray(written));
}

export interface ResponseHead {
  status: number;
  contentLength: number;
  /** Body bytes already in the buffer after the head, at buffer[bodyOffset..bodyOffset+bodyBytes). */
  bodyOffset: number;
  bodyBytes: number;
  /** performance.now() when the first byte of the response arrived. */
  firstByteAt: number;
}

/** Reads an HTTP/1.1 response head into buffer (which must hold the head); throws on EOF or garbage. */
export async function readHead(conn: Deno.Conn, buffer: Uint8Array): Promise<ResponseHead> {
  let filled = 0;
  let firstByteAt = 0;
  while (true) {
    const n = await conn.read(buffer.subarray(filled));
    if (n === null) throw new Error(filled ? "connection closed inside the response head" : "no response");
    if (filled === 0) firstByteAt = performance.now();
    const from = Math.max(0, filled - 3);
    filled += n;
    const end = indexOf(buffer, CRLFCRLF, from, filled);
    if (end >= 0) {
      const head = new TextDecoder().decode(buffer.subarray(0, end));
      const status = Number(head.match(/^HTTP\/1\.[01] (\d{3})/)?.[1] ?? NaN);
      if (!Number.isFinite(status)) {
        throw new Error(`not an HTTP response: ${JSON.stringify(head.slice(0, 80))}`);
      }
      const length = head.match(/\r\ncontent-length:\s*(\d+)/i);
      const bodyOffset = end + 4;
      return {
        status,
        contentLength: length ? Number(length[1]) : -1,
        bodyOffset,
        bodyBytes: filled - bodyOffset,
        firstByteAt,
      };
    }
    if (filled === buffer.length) throw new Error("response head too large");
  }
}

function indexOf(haystack: Uint8Array, needle: number[], from: number, to: number): number {
  outer: for (let i = from; i <= to - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

export interface TransferResult {
  ok: boolean;
  bytes: number;
  ms: number;
  error?: string;
}

const BULK_BUFFER = 1 << 20;

/** GET /bytes?n=N on a new connection; reads the whole body; ms from connect to the last byte. */
export async function download(
  port: number,
  n: number,
  buffer = new Uint8Array(BULK_BUFFER),
): Promise<TransferResult> {
  const started = performance.now();
  let conn: Deno.TcpConn | undefined;
  let bytes = 0;
  try {
    conn = await connect(port);
    await writeAll(
      conn,
      encoder.encode(`GET /bytes?n=${n} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n`),
    );
    const head = await readHead(conn, buffer);
    bytes = head.bodyBytes;
    while (bytes < n) {
      const got = await conn.read(buffer);
      if (got === null) break;
      bytes += got;
    }
    const ok = head.status === 200 && bytes === n;
    return {
      ok,
      bytes,
      ms: performance.now() - started,
      error: ok ? undefined : `status ${head.status}, ${bytes}/${n} bytes`,
    };
  } catch (error) {
    return { ok: false, bytes, ms: performance.now() - started, error: (error as Error).message };
  } finally {
    closeQuietly(conn);
  }
}

/** POST /sink with an N-byte body on a new connection; ms from connect until the server's count arrived. */
export async function upload(
  port: number,
  n: number,
  chunk = new Uint8Array(BULK_BUFFER),
): Promise<TransferResult> {
  const started = performance.now();
  let conn: Deno.TcpConn | undefined;
  let sent = 0;
  try {
    conn = await connect(port);
    await writeAll(
      conn,
      encoder.encode(
        `POST /sink HTTP/1.1\r\nHost: bench\r\nContent-Type: application/octet-stream\r\nContent-Length: ${n}\r\nConnection: close\r\n\r\n`,
      ),
    );
    while (sent < n) {
      const size = Math.min(chunk.length, n - sent);
      sent += await conn.write(chunk.subarray(0, size));
    }
    const buffer = new Uint8Array(4096);
    const head = await readHead(conn, buffer);
    let body = new TextDecoder().decode(buffer.subarray(head.bodyOffset, head.bodyOffset + head.bodyBytes));
    while (head.contentLength >= 0 && body.length < head.contentLength) {
      const got = await conn.read(buffer);
      if (got === null) break;
      body += new TextDecoder().decode(buffer.subarray(0, got));
    }
    const ok = head.status === 200 && Number(body.trim()) === n;
    return {
      ok,
      bytes: sent,
      ms: performance.now() - started,
      error: ok ? undefined : `status ${head.status}, body ${body}`,
    };
  } catch (error) {
    return { ok: false, bytes: sent, ms: performance.now() - started, error: (error as Error).message };
  } finally {
    closeQuietly(conn);
  }
}

export interface GetResult {
  ok: boolean;
  status?: number;
  body?: string;
  error?: string;
  startedAt: number;
  /** When the first response byte arrived (NaN if none). */
  firstByteAt: number;
  endedAt: number;
}

/**
 * GET path on a NEW connection (Connection: close), like one curl: the body is read to the end. `firstByteAt`
 * - `startedAt` is the time to first byte including the TCP connect.
 */
export async function httpGet(port: number, path = "/", timeoutMs = 35_000): Promise<GetResult> {
  const startedAt = performance.now();
  let conn: Deno.TcpConn | undefined;
  let firstByteAt = NaN;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    closeQuietly(conn);
  }, timeoutMs);
  try {
    conn = await connect(port);
    await writeAll(conn, encoder.encode(`GET ${path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n`));
    const buffer = new Uint8Array(16 * 1024);
    const head = await readHead(conn, buffer);
    firstByteAt = head.firstByteAt;
    const chunks = [buffer.slice(head.bodyOffset, head.bodyOffset + head.bodyBytes)];
    let bytes = head.bodyBytes;
    while (head.contentLength < 0 || bytes < head.contentLength) {
      const got = await conn.read(buffer);
      if (got === null) break;
      chunks.push(buffer.slice(0, got));
      bytes += got;
    }
    const body = new TextDecoder().decode(concatBytes(chunks));
    const complete = head.contentLength < 0 || bytes === head.contentLength;
    return {
      ok: head.status === 200 && complete,
      status: head.status,
      body,
      error: head.status !== 200 ? `status ${head.status}` : complete ? undefined : "short body",
      startedAt,
      firstByteAt,
      endedAt: performance.now(),
    };
  } catch (error) {
    return {
      ok: false,
      error: timedOut ? `timed out after ${timeoutMs} ms` : (error as Error).message,
      startedAt,
      firstByteAt,
      endedAt: performance.now(),
    };
  } finally {
    clearTimeout(timer);
    closeQuietly(conn);
  }
}

/** `count` round trips of a `size`-byte message on one kept connection to a TCP echo; RTTs in ms. */
export async function pingPong(port: number, count: number, size = 64): Promise<Float64Array> {
  const conn = await connect(port);
  const message = new Uint8Array(size).fill(0x61);
  const buffer = new Uint8Array(64 * 1024);
  const rtts = new Float64Array(count);
  try {
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      await writeAll(conn, message);
      let got = 0;
      while (got < size) {
        const n = await conn.read(buffer);
        if (n === null) throw new Error(`echo closed after ${i} round trips`);
        got += n;
      }
      rtts[i] = performance.now() - t0;
    }
    return rtts;
  } finally {
    closeQuietly(conn);
  }
}

/** Opens a connection to a TCP echo and completes one round trip, so the forwarder has its upstream open. */
export async function openEchoConnection(port: number): Promise<Deno.TcpConn> {
  const conn = await connect(port);
  try {
    const message = encoder.encode("hello");
    await writeAll(conn, message);
    const buffer = new Uint8Array(64);
    let got = 0;
    while (got < message.length) {
      const n = await conn.read(buffer);
      if (n === null) throw new Error("echo closed");
      got += n;
    }
    return conn;
  } catch (error) {
    closeQuietly(conn);
    throw error;
  }
}

/**
 * GET /bytes?n=total read at `bytesPerSecond` (paced in 64 KiB reads), as a slow client would;
 * `onSecond` runs about once a second with the bytes read so far.
 */
export async function slowDownload(
  port: number,
  total: number,
  bytesPerSecond: number,
  onSecond: (bytes: number) => void,
): Promise<TransferResult> {
  const started = performance.now();
  let conn: Deno.TcpConn | undefined;
  let bytes = 0;
  const ticker = setInterval(() => onSecond(bytes), 1_000);
  try {
    conn = await connect(port);
    await writeAll(
      conn,
      encoder.encode(`GET /bytes?n=${total} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n`),
    );
    const buffer = new Uint8Array(64 * 1024);
    const head = await readHead(conn, buffer);
    bytes = head.bodyBytes;
    while (bytes < total) {
      const ahead = bytes - ((performance.now() - started) / 1000) * bytesPerSecond;
      if (ahead > 0) await new Promise((r) => setTimeout(r, (ahead / bytesPerSecond) * 1000));
      const got = await conn.read(buffer.subarray(0, Math.min(buffer.length, total - bytes)));
      if (got === null) break;
      bytes += got;
    }
    const ok = head.status === 200 && bytes === total;
    return { ok, bytes, ms: performance.now() - started, error: ok ? undefined : `${bytes}/${total} bytes` };
  } catch (error) {
    return { ok: false, bytes, ms: performance.now() - started, error: (error as Error).message };
  } finally {
    clearInterval(ticker);
    closeQuietly(conn);
  }
}
