/**
 * A WebSocket client on Deno's native TLS.
 *
 * Why: `node:tls` over a JavaScript socket (src/kube/conn_socket.ts) costs ~5x the CPU per message of Deno's
 * native TLS (measured: ~100-170 µs vs ~15-20 µs per 64-byte round trip), and that CPU is what limits kf with
 * many concurrent connections (pgbench, redis-benchmark). Without a client certificate (bearer tokens, exec
 * plugins that return tokens: most managed clusters) `Deno.startTls` upgrades a TCP connection that already
 * has TCP_NODELAY. With one (kind, minikube, k3d, kubeadm admin configs) `Deno.connectTls` dials, and
 * src/kube/socket_options.ts sets TCP_NODELAY on its socket. Reads are pulled, so pausing really stops
 * reading and TCP backpressure reaches the server.
 *
 * It implements the part of the `ws` interface kf uses: readyState, protocol, send(data, callback), ping(),
 * pause(), resume(), close(), terminate(), and the events message (Uint8Array), pong, close, error.
 */

import { EventEmitter } from "node:events";
import { concatBytes, writeAll, writeJoiningSmall } from "../bytes.ts";
import type { SocketOptions } from "./socket_options.ts";

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

/** Messages larger than this end the connection (a broken or hostile server). */
const MAX_MESSAGE = 64 * 1024 * 1024;
/** Frames in one tick are written together up to this size; larger payloads go out on their own. */
const JOIN_LIMIT = 16 * 1024;
const HANDSHAKE_LIMIT = 64 * 1024;
/** Read buffer size: a TLS read returns at most one record's plaintext (16 KiB). */
const READ_SIZE = 16 * 1024;
/** A frame payload with at least this much still to come is read into directly, not via the read buffer. */
const DIRECT_READ_MIN = 4 * 1024;
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** The server answered the upgrade with something other than 101: status and body for typed errors. */
export class UpgradeRefusedError extends Error {
  override name = "UpgradeRefusedError";
  readonly status: number;
  readonly body: string;
  constructor(status: number, body: string) {
    super(`the server refused the upgrade: ${status}`);
    this.status = status;
    this.body = body;
  }
}

export interface NativeWebSocketOptions {
  /** PEM certificates to trust; default: the system's. */
  caCerts?: string[];
  /**
   * A client certificate (PEM): dialled with `Deno.connectTls`, whose socket only `socketOptions` can give
   * TCP_NODELAY; without it (or when that fails, or Deno cannot read the key) connect() throws
   * NativeTlsUnavailableError.
   */
  clientCertificate?: { cert: string; key: string };
  /** Tunes the socket (TCP_NODELAY, the kernel's keepalive); without it a token connection keeps Deno's. */
  socketOptions?: SocketOptions;
  /** The name the server's certificate must carry (kubeconfig tls-server-name); default: the URL's host. */
  serverName?: string;
  headers?: Record<string, string>;
  protocols: string[];
  signal?: AbortSignal;
  /** @default 10000 */
  handshakeTimeoutMs?: number;
  /** A connection opened ahead (openConnection with these options) to send the upgrade on. */
  connection?: OpenConnection;
}

/**
 * Deno's native TLS cannot carry this client-certificate connection: the certificate or key is in a form it
 * does not read, or its socket cannot get TCP_NODELAY (every small write would then wait for a delayed ACK).
 * The caller should dial with another TLS stack; `lasting` says that retrying natively would fail again.
 */
export class NativeTlsUnavailableError extends Error {
  override name = "NativeTlsUnavailableError";
  readonly lasting: boolean;
  constructor(message: string, lasting: boolean, cause?: unknown) {
    super(message, { cause });
    this.lasting = lasting;
  }
}

/** Errors of the network itself (refused, reset, unreachable, DNS) as opposed to TLS settings. */
function isNetworkError(error: unknown): boolean {
  return Object.values(Deno.errors).some((type) => error instanceof type);
}

/**
 * Server -> client frames (never masked); collects fragmented messages. The bytes pushed are only read during
 * push() (the caller reads into the same buffer again); every payload handed to onFrame is the parser's own
 * copy, made once: a frame within one push is sliced out, one that spans pushes is filled in place.
 */
export class FrameParser {
  /** Header bytes of the next frame (2 to 10) while they arrive. */
  readonly #head = new Uint8Array(10);
  #headLength = 0;
  /** The frame whose payload is arriving: its header fields, and its payload filled so far. */
  #frame: { opcode: number; fin: boolean; payload: Uint8Array; filled: number } | undefined;
  #fragments: Uint8Array[] = [];
  #fragmentBytes = 0;
  #fragmentOpcode = 0;

  /** Feeds bytes; calls onFrame for every complete message or control frame. Throws on protocol errors. */
  push(bytes: Uint8Array, onFrame: (opcode: number, payload: Uint8Array) => void): void {
    let at = 0;
    for (;;) {
      let frame = this.#frame;
      if (!frame) {
        at = this.#readHead(bytes, at);
        if (at < 0) return;
        const { opcode, fin, length } = this.#parseHead();
        if (bytes.length - at >= length) {
          // the whole payload is here: one copy
          const payload = bytes.slice(at, at + length);
          at += length;
          this.#complete(opcode, fin, payload, onFrame);
          continue;
        }
        frame = this.#frame = { opcode, fin, payload: new Uint8Array(length), filled: 0 };
      }
      const take = Math.min(frame.payload.length - frame.filled, bytes.length - at);
      frame.payload.set(bytes.subarray(at, at + take), frame.filled);
      at += take;
      if (!this.#filled(take, onFrame)) return;
    }
  }

  /**
   * While a frame's payload is arriving: the part of it still to come, so that the socket can be read
   * straight into it (one copy less per byte); report what was read there with payloadFilled().
   */
  payloadRoom(): Uint8Array | undefined {
    const frame = this.#frame;
    return frame && frame.payload.subarray(frame.filled);
  }

  /** n bytes were read into payloadRoom(). */
  payloadFilled(n: number, onFrame: (opcode: number, payload: Uint8Array) => void): void {
    this.#filled(n, onFrame);
  }

  /** Counts n more payload bytes of the current frame; true when that completed it. */
  #filled(n: number, onFrame: (opcode: number, payload: Uint8Array) => void): boolean {
    const frame = this.#frame!;
    frame.filled += n;
    if (frame.filled < frame.payload.length) return false;
    this.#frame = undefined;
    this.#complete(frame.opcode, frame.fin, frame.payload, onFrame);
    return true;
  }

  /** Collects header bytes from bytes[at..]; the offset after the header, or -1 when more are needed. */
  #readHead(bytes: Uint8Array, at: number): number {
    for (;;) {
      const size = this.#headLength < 2 ? 2 : headerSize(this.#head[1] & 0x7f);
      if (this.#headLength >= size) return at;
      if (at >= bytes.length) return -1;
      const take = Math.min(size - this.#headLength, bytes.length - at);
      this.#head.set(bytes.subarray(at, at + take), this.#headLength);
      this.#headLength += take;
      at += take;
    }
  }

  #parseHead(): { opcode: number; fin: boolean; length: number } {
    const head = this.#head;
    this.#headLength = 0;
    const fin = (head[0] & 0x80) !== 0;
    const opcode = head[0] & 0x0f;
    if (head[0] & 0x70) throw new Error("WebSocket frame with reserved bits set");
    if (head[1] & 0x80) throw new Error("WebSocket frame from the server is masked");
    let length = head[1] & 0x7f;
    if (length === 126) length = (head[2] << 8) | head[3];
    else if (length === 127) {
      const high = (head[2] << 24 >>> 0) + (head[3] << 16) + (head[4] << 8) + head[5];
      if (high !== 0) throw new Error("WebSocket frame too large");
      length = (head[6] << 24 >>> 0) + (head[7] << 16) + (head[8] << 8) + head[9];
    }
    if (length > MAX_MESSAGE) throw new Error("WebSocket frame too large");
    if (opcode >= OP_CLOSE && (!fin || length > 125)) {
      throw new Error("fragmented or oversized WebSocket control frame");
    }
    return { opcode, fin, length };
  }

  #complete(
    opcode: number,
    fin: boolean,
    payload: Uint8Array,
    onFrame: (opcode: number, payload: Uint8Array) => void,
  ): void {
    if (opcode >= OP_CLOSE) return onFrame(opcode, payload);
    if (opcode !== OP_CONTINUATION) {
      if (this.#fragments.length) throw new Error("WebSocket message started inside another");
      if (fin) return onFrame(opcode, payload);
      this.#fragmentOpcode = opcode;
    } else if (!this.#fragments.length) throw new Error("WebSocket continuation without a message");
    this.#fragments.push(payload);
    this.#fragmentBytes += payload.length;
    if (this.#fragmentBytes > MAX_MESSAGE) throw new Error("WebSocket message too large");
    if (fin) {
      const message = concatBytes(this.#fragments);
      this.#fragments = [];
      this.#fragmentBytes = 0;
      onFrame(this.#fragmentOpcode, message);
    }
  }
}

/** A server frame's header size for its 7-bit length code (126: a 16-bit length follows, 127: a 64-bit one). */
function headerSize(code: number): number {
  return code === 126 ? 4 : code === 127 ? 10 : 2;
}

/** `Deno.connectTls` with a client certificate; a certificate or key it cannot read is not a network error. */
async function connectWithCertificate(
  hostname: string,
  port: number,
  caCerts: string[] | undefined,
  certificate: { cert: string; key: string },
): Promise<Deno.TlsConn> {
  try {
    return await Deno.connectTls({
      hostname,
      port,
      caCerts,
      cert: certificate.cert,
      key: certificate.key,
      alpnProtocols: ["http/1.1"],
    });
  } catch (error) {
    if (isNetworkError(error)) throw error;
    throw new NativeTlsUnavailableError(
      `Deno's TLS cannot use this client certificate: ${error}`,
      false,
      error,
    );
  }
}

/** The size of a client frame's header (with its mask key) for a payload of this length. */
function frameHeaderSize(length: number): number {
  return (length < 126 ? 2 : length < 65536 ? 4 : 10) + 4;
}

/** Writes a client frame's header with an all-zero mask key (no XOR needed; kf is no browser) at `at`. */
function writeFrameHeader(out: Uint8Array, at: number, opcode: number, length: number): number {
  out[at] = 0x80 | opcode;
  if (length < 126) out[at + 1] = 0x80 | length;
  else if (length < 65536) {
    out[at + 1] = 0x80 | 126;
    out[at + 2] = length >> 8;
    out[at + 3] = length & 0xff;
  } else {
    out[at + 1] = 0x80 | 127;
    const high = Math.floor(length / 2 ** 32);
    out[at + 2] = high >>> 24;
    out[at + 3] = (high >>> 16) & 0xff;
    out[at + 4] = (high >>> 8) & 0xff;
    out[at + 5] = high & 0xff;
    out[at + 6] = length >>> 24;
    out[at + 7] = (length >>> 16) & 0xff;
    out[at + 8] = (length >>> 8) & 0xff;
    out[at + 9] = length & 0xff;
  }
  const end = at + frameHeaderSize(length);
  out.fill(0, end - 4, end); // the mask key
  return end;
}

/** The header of a client frame with an all-zero mask key. */
export function frameHeader(opcode: number, length: number): Uint8Array {
  const header = new Uint8Array(frameHeaderSize(length));
  writeFrameHeader(header, 0, opcode, length);
  return header;
}

/** A message waiting to be written; its frame header is made as it is written. */
interface Outgoing {
  opcode: number;
  parts: readonly Uint8Array[];
  length: number;
}

/** Messages as one buffer of frames (a small batch: one copy, no header arrays). */
function joinFrames(messages: readonly Outgoing[], bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  let at = 0;
  for (const message of messages) {
    at = writeFrameHeader(out, at, message.opcode, message.length);
    for (const part of message.parts) {
      out.set(part, at);
      at += part.length;
    }
  }
  return out;
}

async function acceptKey(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(key + GUID));
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}

/** Closes a connection that may be closed already. */
export function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // closed already
  }
}

/** A TCP connection to the server (TLS done for wss:), tuned, that no request has used yet. */
export interface OpenConnection {
  conn: Deno.TcpConn | Deno.TlsConn;
  /** The kernel's keepalive watches it (see NativeWebSocket.kernelWatched). */
  kernelWatched: boolean;
}

/**
 * Dials the URL's server and, for wss:, completes the TLS handshake: what a WebSocket upgrade needs before
 * its request. Separate from connect() so a connection can be opened ahead of the upgrade that uses it.
 */
export async function openConnection(
  url: URL,
  options: Pick<NativeWebSocketOptions, "caCerts" | "clientCertificate" | "socketOptions" | "serverName">,
  signal?: AbortSignal,
): Promise<OpenConnection> {
  const secure = url.protocol === "wss:" || url.protocol === "https:";
  const hostname = url.hostname.replace(/^\[|\]$/g, "");
  const port = Number(url.port || (secure ? 443 : 80));
  const certificate = secure ? options.clientCertificate : undefined;
  let conn: Deno.TcpConn | Deno.TlsConn = certificate
    ? await connectWithCertificate(hostname, port, options.caCerts, certificate)
    : await Deno.connect({ hostname, port });
  // a path that went silent must not hold the handshake: closing the connection ends it
  const onAbort = () => closeQuietly(conn);
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    signal?.throwIfAborted();
    let kernelWatched = false;
    if (certificate) {
      const tuned = options.socketOptions?.tune(conn);
      if (!tuned?.noDelay) {
        throw new NativeTlsUnavailableError("cannot set TCP_NODELAY on a Deno.connectTls socket here", true);
      }
      kernelWatched = tuned.kernelWatched;
    } else {
      const tcp = conn as Deno.TcpConn;
      tcp.setNoDelay(true);
      tcp.setKeepAlive(true);
      kernelWatched = options.socketOptions?.tune(tcp)?.kernelWatched ?? false;
      if (secure) {
        conn = await Deno.startTls(tcp, {
          hostname: options.serverName ?? hostname,
          caCerts: options.caCerts,
          alpnProtocols: ["http/1.1"],
        });
      }
    }
    // now rather than with the first write: a connection opened ahead is then ready for its request
    if (secure) await (conn as Deno.TlsConn).handshake();
    signal?.throwIfAborted();
    return { conn, kernelWatched };
  } catch (error) {
    onAbort();
    throw signal?.aborted ? signal.reason : error;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

/** The head of the server's answer to an upgrade request: status, fields (lower-case names), bytes after it. */
interface UpgradeAnswer {
  status: number;
  fields: Map<string, string>;
  rest: Uint8Array;
}

/**
 * Reads an HTTP/1.1 answer's head with `read` (whose bytes are only valid until its next call, so they are
 * copied). Bounded: a server that sends no end of head within HANDSHAKE_LIMIT bytes is an error.
 */
async function readUpgradeAnswer(read: () => Promise<Uint8Array | null>): Promise<UpgradeAnswer> {
  let buffer: Uint8Array = new Uint8Array(0);
  for (;;) {
    const bytes = await read();
    if (!bytes) throw new Error("the server closed the connection during the upgrade handshake");
    const scanned = buffer.length;
    buffer = concatBytes([buffer, bytes]);
    for (let i = Math.max(3, scanned); i < buffer.length; i++) {
      if (buffer[i] === 10 && buffer[i - 1] === 13 && buffer[i - 2] === 10 && buffer[i - 3] === 13) {
        const [statusLine, ...lines] = new TextDecoder().decode(buffer.subarray(0, i - 3)).split("\r\n");
        const fields = new Map<string, string>();
        for (const line of lines) {
          const colon = line.indexOf(":");
          if (colon > 0) fields.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
        }
        return { status: Number(statusLine.split(" ")[1]), fields, rest: buffer.slice(i + 1) };
      }
    }
    if (buffer.length > HANDSHAKE_LIMIT) throw new Error("the server's handshake answer is too long");
  }
}

/** The body of a refused upgrade (for the error message), bounded; stops at Content-Length or the end. */
async function readRefusalBody(
  read: () => Promise<Uint8Array | null>,
  initial: Uint8Array,
  length: number,
): Promise<string> {
  const chunks = [initial];
  let size = initial.length;
  try {
    while ((length < 0 || size < length) && size < HANDSHAKE_LIMIT) {
      const bytes = await read();
      if (!bytes) break;
      chunks.push(bytes.slice());
      size += bytes.length;
    }
  } catch {
    // what arrived is enough for the message
  }
  const body = concatBytes(chunks);
  return new TextDecoder().decode(length >= 0 ? body.subarray(0, length) : body);
}

/** What upgradeConnection asks for: where to connect (or a connection opened ahead) and how long to wait. */
export interface UpgradeOptions
  extends Pick<NativeWebSocketOptions, "caCerts" | "clientCertificate" | "socketOptions" | "serverName"> {
  signal?: AbortSignal;
  /** Gives up when the answer has not arrived by then (TimeoutError); `what` names the handshake in it. */
  timeoutMs: number;
  what: string;
  connection?: OpenConnection;
}

/** An upgraded connection: its answer's fields (lower-case names) and the bytes that came after the head. */
export interface Upgraded {
  opened: OpenConnection;
  fields: Map<string, string>;
  rest: Uint8Array;
}

/**
 * Sends an HTTP/1.1 upgrade request (a WebSocket handshake, the legacy SPDY upgrade) and reads the answer's
 * head, under a deadline and the caller's signal; either closes the connection. Any answer but 101 is an
 * UpgradeRefusedError with its body; the caller checks the fields it cares about.
 */
export async function upgradeConnection(
  url: URL,
  request: { method: string; fields: Record<string, string> },
  options: UpgradeOptions,
): Promise<Upgraded> {
  options.signal?.throwIfAborted();
  // a timer cleared once the handshake is over, not AbortSignal.timeout: that one fires anyway, and 10 s
  // after a burst of new connections hundreds of them built their TimeoutErrors at once (~0.4 ms each)
  const handshake = new AbortController();
  const timer = setTimeout(
    () =>
      handshake.abort(
        new DOMException(`the ${options.what} took over ${options.timeoutMs} ms`, "TimeoutError"),
      ),
    options.timeoutMs,
  );
  const onCancel = () => handshake.abort(options.signal!.reason);
  options.signal?.addEventListener("abort", onCancel, { once: true });
  let conn: Deno.Conn | undefined;
  const onAbort = () => conn && closeQuietly(conn);
  handshake.signal.addEventListener("abort", onAbort, { once: true });
  try {
    const opened = options.connection ?? await openConnection(url, options, handshake.signal);
    const upgrading = conn = opened.conn;
    handshake.signal.throwIfAborted();
    const fields = { Host: url.port ? `${url.hostname}:${url.port}` : url.hostname, ...request.fields };
    const head = `${request.method} ${url.pathname}${url.search} HTTP/1.1\r\n` +
      Object.entries(fields).map(([name, value]) => `${name}: ${value}\r\n`).join("") + "\r\n";
    await writeAll(upgrading, new TextEncoder().encode(head));
    const buffer = new Uint8Array(READ_SIZE);
    const read = async () => {
      const n = await upgrading.read(buffer);
      return n === null ? null : buffer.subarray(0, n);
    };
    const answer = await readUpgradeAnswer(read);
    if (answer.status !== 101) {
      const length = Number(answer.fields.get("content-length") ?? "-1");
      throw new UpgradeRefusedError(answer.status, await readRefusalBody(read, answer.rest, length));
    }
    return { opened, fields: answer.fields, rest: answer.rest };
  } catch (error) {
    onAbort();
    throw handshake.signal.aborted
      ? (options.signal?.aborted ? options.signal.reason : handshake.signal.reason)
      : error;
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onCancel);
    handshake.signal.removeEventListener("abort", onAbort);
  }
}

export class NativeWebSocket extends EventEmitter {
  readyState = CONNECTING;
  protocol = "";
  /**
   * The kernel's keepalive watches the connection (src/kube/socket_options.ts): a dead path ends it with an
   * error on its own, so pings are only a backstop.
   */
  kernelWatched = false;
  readonly #conn: Deno.TlsConn | Deno.TcpConn;
  /** What every read goes into (see #read). */
  readonly #readBuffer = new Uint8Array(READ_SIZE);
  readonly #parser = new FrameParser();
  #paused = false;
  #resumed?: PromiseWithResolvers<void>;
  /** Messages that arrived while nobody listened; reading stops until they are delivered. */
  #backlog: Uint8Array[] = [];
  #pending: Outgoing[] = [];
  /** Wire bytes of #pending, frame headers included. */
  #pendingBytes = 0;
  #callbacks: ((error?: Error) => void)[] = [];
  #flushing = false;

  /** The TCP endpoints under the WebSocket (diagnostics, tests). */
  get addresses(): { localAddr: Deno.Addr; remoteAddr: Deno.Addr } {
    return { localAddr: this.#conn.localAddr, remoteAddr: this.#conn.remoteAddr };
  }

  private constructor(conn: Deno.TlsConn | Deno.TcpConn, protocol: string) {
    super();
    this.#conn = conn;
    this.protocol = protocol;
  }

  /** Dials, upgrades and resolves once the server switched protocols. */
  static async connect(url: URL, options: NativeWebSocketOptions): Promise<NativeWebSocket> {
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
    const { opened, fields, rest } = await upgradeConnection(url, {
      method: "GET",
      fields: {
        Upgrade: "websocket",
        Connection: "Upgrade",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Protocol": options.protocols.join(", "),
        ...options.headers,
      },
    }, { ...options, timeoutMs: options.handshakeTimeoutMs ?? 10_000, what: "WebSocket handshake" });
    const refuse = (message: string) => {
      closeQuietly(opened.conn);
      return new Error(message);
    };
    if (fields.get("sec-websocket-accept") !== await acceptKey(key)) {
      throw refuse("the server's WebSocket handshake has a wrong Sec-WebSocket-Accept");
    }
    const protocol = fields.get("sec-websocket-protocol") ?? "";
    if (options.protocols.length && !options.protocols.includes(protocol)) {
      throw refuse(`the server chose no offered WebSocket subprotocol (got '${protocol}')`);
    }
    const ws = new NativeWebSocket(opened.conn, protocol);
    ws.kernelWatched = opened.kernelWatched;
    ws.readyState = OPEN;
    // messages that arrive while nobody listens (the kubelet's port numbers come with the handshake
    // answer; a socket changes hands between its warm pool and a connection) wait for the next listener
    ws.on("newListener", (event: string) => {
      if (event === "message") queueMicrotask(() => ws.#deliverBacklog());
    });
    ws.#readLoop(rest);
    return ws;
  }

  send(data: Uint8Array, callback?: (error?: Error) => void): void {
    this.#enqueue(OP_BINARY, [data], callback);
  }

  /**
   * Sends one binary message made of parts (e.g. a channel byte and a payload) without joining them first:
   * a large payload then goes to the socket as it is, with no copy. The parts must not change until the
   * callback.
   */
  sendParts(parts: readonly Uint8Array[], callback?: (error?: Error) => void): void {
    this.#enqueue(OP_BINARY, parts, callback);
  }

  ping(): void {
    this.#enqueue(OP_PING, []);
  }

  /** Stops reading the connection (TCP backpressure reaches the server); resume() continues. */
  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    if (this.#backlog.length) return this.#deliverBacklog();
    this.#resumed?.resolve();
    this.#resumed = undefined;
  }

  close(code = 1000): void {
    if (this.readyState !== OPEN) return;
    this.readyState = CLOSING;
    this.#enqueue(OP_CLOSE, [new Uint8Array([code >> 8, code & 0xff])], () => this.terminate());
    // a server that never answers the close must not keep the connection
    setTimeout(() => this.terminate(), 1_000);
  }

  terminate(): void {
    if (this.readyState === CLOSED) return;
    this.#closeConn();
    this.#finish();
  }

  #enqueue(opcode: number, parts: readonly Uint8Array[], callback?: (error?: Error) => void): void {
    if (this.readyState !== OPEN && !(this.readyState === CLOSING && opcode === OP_CLOSE)) {
      if (callback) queueMicrotask(() => callback(new Error("WebSocket is not open")));
      return;
    }
    let length = 0;
    for (const part of parts) length += part.length;
    this.#pending.push({ opcode, parts, length });
    this.#pendingBytes += frameHeaderSize(length) + length;
    if (callback) this.#callbacks.push(callback);
    if (!this.#flushing) {
      // frames sent in the same tick leave in one write (one TLS record, one segment)
      this.#flushing = true;
      queueMicrotask(() => this.#flush());
    }
  }

  async #flush(): Promise<void> {
    let callbacks: ((error?: Error) => void)[] = [];
    try {
      while (this.#pending.length) {
        const messages = this.#pending;
        const bytes = this.#pendingBytes;
        callbacks = this.#callbacks;
        this.#pending = [];
        this.#pendingBytes = 0;
        this.#callbacks = [];
        if (bytes <= JOIN_LIMIT) await this.#write(joinFrames(messages, bytes));
        else {await writeJoiningSmall(
            this.#conn,
            messages.flatMap((m) => [frameHeader(m.opcode, m.length), ...m.parts]),
            JOIN_LIMIT,
          );}
        const done = callbacks;
        callbacks = [];
        for (const callback of done) callback();
      }
    } catch (error) {
      for (const callback of [...callbacks, ...this.#callbacks]) callback(error as Error);
      this.#callbacks = [];
      this.#pending = [];
      this.#fail(error as Error);
    } finally {
      this.#flushing = false;
    }
  }

  async #readLoop(initial: Uint8Array): Promise<void> {
    try {
      if (initial.length) this.#parse(initial);
      while (this.readyState === OPEN || this.readyState === CLOSING) {
        if (this.#paused || this.#backlog.length) {
          this.#resumed ??= Promise.withResolvers();
          await this.#resumed.promise;
          continue;
        }
        const room = this.#parser.payloadRoom();
        if (room && room.length >= DIRECT_READ_MIN) {
          const n = await this.#conn.read(room);
          if (n === null) break;
          this.#parser.payloadFilled(n, this.#onFrame);
          continue;
        }
        const bytes = await this.#read();
        if (!bytes) break;
        this.#parse(bytes);
      }
    } catch (error) {
      if (this.readyState !== CLOSED) this.#fail(error as Error);
      return;
    }
    this.terminate();
  }

  #parse(bytes: Uint8Array): void {
    this.#parser.push(bytes, this.#onFrame);
  }

  readonly #onFrame = (opcode: number, payload: Uint8Array): void => {
    switch (opcode) {
      case OP_BINARY:
      case OP_TEXT:
        if (this.#backlog.length || this.listenerCount("message") === 0) {
          this.#backlog.push(payload);
        } else this.emit("message", payload);
        break;
      case OP_PING:
        this.#enqueue(OP_PONG, [payload]);
        break;
      case OP_PONG:
        this.emit("pong", payload);
        break;
      case OP_CLOSE:
        if (this.readyState === OPEN) {
          this.readyState = CLOSING;
          this.#enqueue(OP_CLOSE, [payload.slice(0, 2)], () => this.terminate());
        } else this.terminate();
        break;
    }
  };

  /**
   * One read of the connection; null at its end. The bytes are valid until the next read (one buffer per
   * socket, read into again: the frame parser copies what it keeps). Straight `conn.read()` rather than
   * `conn.readable`: the stream's reader allocated 64 KiB per read and cost ~24 µs more per read (a TLS
   * read is one 16 KiB record: 1.5 s of CPU per GiB, measured).
   */
  async #read(): Promise<Uint8Array | null> {
    const n = await this.#conn.read(this.#readBuffer);
    return n === null ? null : this.#readBuffer.subarray(0, n);
  }

  #write(bytes: Uint8Array): Promise<void> {
    return writeAll(this.#conn, bytes);
  }

  #deliverBacklog(): void {
    while (this.#backlog.length && this.listenerCount("message") > 0) {
      this.emit("message", this.#backlog.shift()!);
    }
    if (!this.#backlog.length && !this.#paused) {
      this.#resumed?.resolve();
      this.#resumed = undefined;
    }
  }

  #closeConn(): void {
    closeQuietly(this.#conn);
  }

  #fail(error: Error): void {
    if (this.readyState === CLOSED) return;
    this.#closeConn();
    this.emit("error", error);
    this.#finish();
  }

  #finish(): void {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    this.resume();
    this.#resumed?.resolve();
    this.#resumed = undefined;
    this.emit("close");
  }
}
