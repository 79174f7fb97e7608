/**
 * A Node-style socket over a native Deno TCP connection, under `node:tls` and `ws`.
 *
 * Why: Deno's `node:tls` keeps reading after `pause()`, so a slow local reader would make a download
 * buffer without bound. This socket is read only on demand and has a gate: while it is closed nothing
 * is read, whatever the TLS layer above asks, so TCP flow control reaches the API server and memory
 * stays bounded. (Deno's native TLS would also bound it, but cannot set TCP_NODELAY with a client
 * certificate: each new WebSocket then stalls ~44 ms on delayed ACKs.)
 */

import { Duplex } from "node:stream";
import { concatBytes } from "../bytes.ts";
import type * as https from "node:https";
import * as tls from "node:tls";

/** Batches up to this size are copied into one write; larger ones go out chunk by chunk. */
const JOIN_LIMIT = 16 * 1024;

export interface ConnSocketOptions {
  /** Read chunk queue size before reading stops. @default 65536 */
  highWaterMark?: number;
}

/** Wraps a pending Deno.Conn in a Duplex that reads only on demand. */
export function connSocket(connecting: Promise<Deno.Conn>, options: ConnSocketOptions = {}): Duplex {
  let conn: Deno.Conn | undefined;
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  let writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  let reading = false;
  let gateClosed = false;
  let readWanted = false;
  const ready = connecting.then((c) => {
    conn = c;
    reader = c.readable.getReader();
    writer = c.writable.getWriter();
  });

  // writes made in the same tick leave as one segment: fewer packets for small frames
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  let waiting: ((error?: Error | null) => void)[] = [];
  let flushing = false;
  const flush = async () => {
    let callbacks: ((error?: Error | null) => void)[] = [];
    try {
      await ready;
      while (pending.length > 0) {
        const chunks = pending;
        callbacks = waiting;
        const bytes = pendingBytes;
        pending = [];
        pendingBytes = 0;
        waiting = [];
        // small batches are joined into one segment; big ones are written as they are (copying costs more)
        if (chunks.length > 1 && bytes <= JOIN_LIMIT) await writer!.write(concatBytes(chunks));
        else for (const chunk of chunks) await writer!.write(chunk);
        const done = callbacks;
        callbacks = [];
        for (const callback of done) callback();
      }
    } catch (error) {
      for (const callback of [...callbacks, ...waiting]) callback(error as Error);
      waiting = [];
    } finally {
      flushing = false;
    }
  };
  const coalesce = (chunks: Uint8Array[], callback: (error?: Error | null) => void) => {
    for (const chunk of chunks) {
      pending.push(chunk);
      pendingBytes += chunk.length;
    }
    // the callback waits until the bytes are written: the TLS layer above reuses its buffers once called
    // back (early callbacks corrupted records: "bad record MAC"); meanwhile node's Writable gathers the
    // next writes into one writev batch
    waiting.push(callback);
    if (!flushing) {
      flushing = true; // set now, not in flush(): two writes in one tick must not start two loops
      queueMicrotask(flush);
    }
  };

  const pump = () => {
    if (reading || gateClosed || !readWanted) return;
    reading = true;
    readWanted = false;
    ready.then(async () => {
      // keep reading while the consumer wants more; stop when push() says the queue is full or the gate closes
      while (!gateClosed) {
        // the stream reader, not conn.read(): a direct read pending beside the writable's writes was seen
        // to fail with "operation canceled" during large uploads
        const { value, done } = await reader!.read();
        if (done) {
          socket.push(null);
          return;
        }
        if (!socket.push(value)) return;
      }
      readWanted = true; // the consumer still wants data: resume() continues
    }).catch((error) => socket.destroy(error)).finally(() => (reading = false));
  };

  const socket = new Duplex({
    highWaterMark: options.highWaterMark ?? 64 * 1024,
    read() {
      readWanted = true;
      pump();
    },
    write(chunk: Uint8Array, _encoding, callback) {
      coalesce([chunk], callback);
    },
    writev(chunks: { chunk: Uint8Array }[], callback) {
      coalesce(chunks.map((c) => c.chunk), callback);
    },
    final(callback) {
      ready.then(() => writer!.close()).then(() => callback(), () => callback());
    },
    destroy(error, callback) {
      reader?.cancel().catch(() => {});
      try {
        conn?.close();
      } catch {
        // already closed
      }
      connecting.then((c) => {
        if (!conn) c.close();
      }, () => {});
      callback(error);
    },
  });

  ready.then(() => {
    const remote = conn!.remoteAddr as Deno.NetAddr;
    Object.assign(socket, { remoteAddress: remote.hostname, remotePort: remote.port, connecting: false });
    socket.emit("connect");
    socket.emit("secureConnect");
  }, (error) => socket.destroy(error));

  // the http and ws clients tune their sockets with these; the native connection is set up already
  Object.assign(socket, {
    /** Stops reading the connection whatever the consumer does (a TLS layer above may ignore pause()). */
    closeGate: () => {
      gateClosed = true;
    },
    openGate: () => {
      gateClosed = false;
      pump();
    },
    connecting: true,
    setNoDelay: () => socket,
    setKeepAlive: () => socket,
    setTimeout: () => socket,
    ref: () => socket,
    unref: () => socket,
  });
  return socket;
}

/** A connSocket whose reading can be stopped below any TLS layer. */
export interface GatedSocket extends Duplex {
  closeGate(): void;
  openGate(): void;
}

/** Plain TCP to the API server with TCP_NODELAY (small writes leave at once) and keepalive (dead peers surface). */
export function connectTcp(hostname: string, port: number): GatedSocket {
  return connSocket(
    Deno.connect({ hostname, port }).then((conn) => {
      conn.setNoDelay(true);
      conn.setKeepAlive(true);
      return conn;
    }),
  ) as GatedSocket;
}

/**
 * A connection to the API server for an upgrade (WebSocket, SPDY): TLS from node:tls over a gated native
 * TCP socket. `raw` is the gate: close it to stop reading when the consumer is slow.
 */
export function connectApiServer(
  url: URL,
  options: https.RequestOptions,
): { raw: GatedSocket; socket: Duplex } {
  const secure = url.protocol === "https:" || url.protocol === "wss:";
  const hostname = url.hostname.replace(/^\[|\]$/g, "");
  const raw = connectTcp(hostname, Number(url.port || (secure ? 443 : 80)));
  if (!secure) return { raw, socket: raw };
  const socket = tls.connect({
    socket: raw,
    ca: options.ca,
    cert: options.cert,
    key: options.key,
    pfx: options.pfx,
    passphrase: options.passphrase,
    rejectUnauthorized: options.rejectUnauthorized,
    // SNI only for names; the certificate is still checked against an IP address
    servername: options.servername ??
      (/^[\d.]+$/.test(hostname) || hostname.includes(":") ? undefined : hostname),
  });
  return { raw, socket };
}
