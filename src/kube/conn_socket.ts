/**
 * A Node-style socket over a native Deno connection, handed to `ws` as its transport.
 *
 * Why: Deno's `node:tls` keeps reading after `pause()`, so a slow local reader would make a download
 * buffer without bound. A native connection is read only when the consumer asks (`_read`), so TCP flow
 * control reaches the API server and memory stays bounded.
 */

import { Duplex } from "node:stream";

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
  const ready = connecting.then((c) => {
    conn = c;
    reader = c.readable.getReader();
    writer = c.writable.getWriter();
  });

  const socket = new Duplex({
    highWaterMark: options.highWaterMark ?? 64 * 1024,
    read() {
      if (reading) return;
      reading = true;
      ready.then(async () => {
        // keep reading while the consumer wants more; stop as soon as push() says the queue is full
        while (true) {
          const { value, done } = await reader!.read();
          if (done) {
            socket.push(null);
            return;
          }
          if (!socket.push(value)) return;
        }
      }).catch((error) => socket.destroy(error)).finally(() => (reading = false));
    },
    write(chunk: Uint8Array, _encoding, callback) {
      ready.then(() => writer!.write(chunk)).then(() => callback(), callback);
    },
    writev(chunks: { chunk: Uint8Array }[], callback) {
      // one write per batch: with Nagle on (native TLS), split small writes would stall ~40 ms
      const total = chunks.reduce((sum, c) => sum + c.chunk.length, 0);
      const joined = new Uint8Array(total);
      let offset = 0;
      for (const { chunk } of chunks) {
        joined.set(chunk, offset);
        offset += chunk.length;
      }
      ready.then(() => writer!.write(joined)).then(() => callback(), callback);
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
    connecting: true,
    setNoDelay: () => socket,
    setKeepAlive: () => socket,
    setTimeout: () => socket,
    ref: () => socket,
    unref: () => socket,
  });
  return socket;
}

export interface NativeTlsOptions {
  hostname: string;
  port: number;
  caCerts?: string[];
  cert?: string;
  key?: string;
}

/**
 * Connects to the API server with native TLS. Without a client certificate the TCP connection is made
 * first so TCP_NODELAY can be set; `startTls` cannot present a client certificate, so mTLS uses
 * `connectTls`, where small writes are coalesced instead (see writev above).
 */
export async function connectNativeTls(options: NativeTlsOptions): Promise<Deno.Conn> {
  if (options.cert && options.key) {
    return await Deno.connectTls({
      hostname: options.hostname,
      port: options.port,
      caCerts: options.caCerts,
      cert: options.cert,
      key: options.key,
    });
  }
  const tcp = await Deno.connect({ hostname: options.hostname, port: options.port });
  tcp.setNoDelay(true);
  tcp.setKeepAlive(true);
  return await Deno.startTls(tcp, { hostname: options.hostname, caCerts: options.caCerts });
}
