/** A client SPDY/3.1 session over one byte stream: many streams with half-close, flow control and pings. */

import type { Duplex } from "node:stream";
import {
  dataFrameHeader,
  decodeHeaderBlock,
  encodeDataFrame,
  encodeFrame,
  encodeHeaderBlock,
  FLAG_FIN,
  FrameDecoder,
  GoAwayStatus,
  hasHeaderBlock,
  type HeaderBearingFrame,
  HeaderCompressor,
  HeaderDecompressor,
  type HeaderMap,
  MAX_31_BIT,
  RstStatus,
  SettingId,
  type SpdyFrame,
} from "./frames.ts";
import {
  CANCELLED_BY_US,
  SpdyConnectionClosedError,
  SpdyProtocolError,
  SpdyStreamResetError,
} from "./errors.ts";

/** SPDY/3.1 starts every stream window and the session window at 64 KiB. */
const DEFAULT_WINDOW = 64 * 1024;
/**
 * Largest DATA payload we send: a local read's largest chunk (src/forward), so a bulk upload costs one
 * frame and one WebSocket message per read. The peer's windows still cap it when it has flow control; the
 * kubelet's SPDY library reads frames of up to 16 MiB. (64 KiB frames, each copied behind its header, made
 * kf's CPU per GiB uploaded over SPDY ~2x that of WebSocket v4.)
 */
const MAX_DATA_PAYLOAD = 256 * 1024;

export interface SpdyConnectionOptions {
  /** Receive window of each stream; a value other than 64 KiB is announced with SETTINGS. @default 65536 */
  initialWindowSize?: number;
  /** Receive window of the whole session; more than 64 KiB is announced with a WINDOW_UPDATE. @default 1048576 */
  sessionWindowSize?: number;
  /**
   * Honour the peer's windows when sending. Turn off only for peers without flow control that never send
   * WINDOW_UPDATE (the kubelet's spdystream): with it on, each upload there would stall after 64 KiB.
   * @default true
   */
  peerFlowControl?: boolean;
  /**
   * Unread bytes of one stream past which the socket is not read any more, until the reader catches up.
   * A peer that honours our windows never gets there; one that ignores them is stopped by TCP instead.
   * @default 1048576
   */
  streamBufferLimit?: number;
  /** Unread bytes of all streams together past which the socket is not read any more. @default 16777216 */
  connectionBufferLimit?: number;
  /** Send a PING after this long without any frame from the peer; 0 turns liveness checks off. @default 0 */
  keepAliveIdleMs?: number;
  /** Close the connection when such a PING gets no answer in time. @default 10000 */
  keepAliveTimeoutMs?: number;
}

export interface OpenStreamOptions {
  /** Send FLAG_FIN with SYN_STREAM: we will never write on this stream (its writable is closed at once). */
  fin?: boolean;
  /** 0 (highest) to 7. @default 0 */
  priority?: number;
}

/** One SPDY stream: bytes both ways, each direction closed on its own. */
export interface SpdyStream {
  readonly id: number;
  /** The headers of our SYN_STREAM. */
  readonly headers: HeaderMap;
  /** The peer's SYN_REPLY headers; rejects when the stream ends before a reply. */
  readonly reply: Promise<HeaderMap>;
  /**
   * The peer's bytes; ends at its FIN. After a reset or a lost connection the bytes that arrived before it
   * are still delivered, then it errors. Reading it is what opens our receive window again.
   */
  readonly readable: ReadableStream<Uint8Array>;
  /** Bytes to the peer; close() sends FIN (half-close), abort() resets the stream. */
  readonly writable: WritableStream<Uint8Array>;
  /** Resolves when both directions are done: undefined after FIN both ways, else why it ended. */
  readonly closed: Promise<Error | undefined>;
  /** Sends RST_STREAM (default CANCEL) and fails both directions at once. */
  reset(status?: number): void;
  /**
   * The peer's bytes pushed to `sink` as they arrive, instead of through `readable` (use one or the other):
   * no stream machinery per chunk on the hot path. `end` runs once, after the last chunk: undefined at the
   * peer's FIN, else why the stream broke.
   */
  attach(sink: StreamSink): void;
  /** Holds the peer's bytes for an attached sink (they count against the buffer limits) until resumeSink(). */
  pauseSink(): void;
  resumeSink(): void;
  /**
   * Writes without `writable`, in order with earlier sends: undefined when the bytes were handed to the
   * socket at once, else a promise that settles when they were (a window or a full socket to wait for).
   */
  send(chunk: Uint8Array): Promise<void> | undefined;
  /** Half-close (FIN) after everything sent before it. */
  finish(): void;
}

/** Takes a stream's bytes as they arrive (SpdyStream.attach). */
export interface StreamSink {
  data(chunk: Uint8Array): void;
  end(error: Error | undefined): void;
}

/** What a stream needs from its connection (kept off the connection's public surface). */
interface StreamHost {
  peerInitialWindow(): number;
  /** Undefined when the chunk went out at once; throws when the stream cannot take it. */
  sendData(stream: Stream, chunk: Uint8Array): Promise<void> | undefined;
  sendFin(stream: Stream): void;
  sendReset(stream: Stream, status: number): void;
  /** The reader took bytes: reopen windows. */
  consumed(stream: Stream, bytes: number): void;
  /** Unread bytes of a stream changed by delta. */
  buffered(stream: Stream, delta: number): void;
  /** Wakes writers waiting for a window (the stream ended). */
  wakeWriters(): void;
  /** Both directions are done. */
  removed(stream: Stream): void;
}

/** A client SPDY/3.1 session; it owns the socket and destroys it when it ends. */
export class SpdyConnection {
  /** Resolves when the connection has ended: undefined after close(), else the reason. */
  readonly closed: Promise<Error | undefined>;
  readonly #closed = Promise.withResolvers<Error | undefined>();
  readonly #socket: Duplex;
  readonly #streams = new Map<number, Stream>();
  readonly #decoder = new FrameDecoder();
  readonly #compressor = new HeaderCompressor();
  readonly #decompressor = new HeaderDecompressor();
  #nextStreamId = 1;
  #nextPingId = 1;
  readonly #pings = new Map<number, { sentAt: number; done: PromiseWithResolvers<number> }>();

  readonly #recvWindow: number;
  readonly #sessionWindow: number;
  readonly #peerFlowControl: boolean;
  readonly #streamBufferLimit: number;
  readonly #connectionBufferLimit: number;
  /** What the peer lets us send: per new stream, and on the whole session. */
  #peerInitialWindow = DEFAULT_WINDOW;
  #sessionSendWindow = DEFAULT_WINDOW;
  /** Bytes the reader consumed that the peer has not been told about yet (session level). */
  #sessionUnacked = 0;
  /** Writers waiting for the peer to open a window. */
  #windowWaiters = new Set<() => void>();
  #needDrain = false;
  #drain?: PromiseWithResolvers<void>;
  readonly #host: StreamHost;

  /** Unread bytes across streams, and the streams over their own limit: either pauses the socket. */
  #buffered = 0;
  readonly #overLimit = new Set<Stream>();
  #paused = false;

  #goAway?: { lastGoodStreamId: number; status: number };
  #closing = false;
  #ended = false;
  #lastHeardAt = Date.now();
  #keepAliveTimer?: ReturnType<typeof setInterval>;

  constructor(socket: Duplex, options: SpdyConnectionOptions = {}) {
    this.#socket = socket;
    this.closed = this.#closed.promise;
    this.#host = {
      peerInitialWindow: () => this.#peerInitialWindow,
      sendData: (stream, chunk) => this.#sendData(stream, chunk),
      sendFin: (stream) => this.#writeBytes(encodeDataFrame(stream.id, FLAG_FIN, new Uint8Array(0))),
      sendReset: (stream, status) => this.#send({ type: "RST_STREAM", streamId: stream.id, status }),
      consumed: (stream, bytes) => this.#consumed(stream, bytes),
      buffered: (stream, delta) => this.#bufferedChanged(stream, delta),
      wakeWriters: () => this.#wakeWriters(),
      removed: (stream) => this.#removed(stream),
    };
    this.#recvWindow = options.initialWindowSize ?? DEFAULT_WINDOW;
    this.#sessionWindow = Math.max(DEFAULT_WINDOW, options.sessionWindowSize ?? 1024 * 1024);
    this.#peerFlowControl = options.peerFlowControl ?? true;
    this.#streamBufferLimit = options.streamBufferLimit ?? 1024 * 1024;
    this.#connectionBufferLimit = options.connectionBufferLimit ?? 16 * 1024 * 1024;

    socket.on("data", (chunk: Uint8Array) => this.#onData(chunk));
    socket.on("drain", () => this.#wakeDrain());
    socket.on("end", () => this.#terminate(this.#lostError("the server closed the connection")));
    socket.on("close", () => this.#terminate(this.#lostError("the connection closed")));
    socket.on("error", (error: Error) => {
      this.#terminate(
        new SpdyConnectionClosedError(`SPDY connection failed: ${error.message}`, { cause: error }),
      );
    });
    // a socket handed over after an HTTP upgrade may still be paused by the HTTP client
    socket.resume();

    if (this.#recvWindow !== DEFAULT_WINDOW) {
      this.#send({
        type: "SETTINGS",
        flags: 0,
        settings: [{ id: SettingId.INITIAL_WINDOW_SIZE, flags: 0, value: this.#recvWindow }],
      });
    }
    if (this.#sessionWindow > DEFAULT_WINDOW) {
      this.#send({ type: "WINDOW_UPDATE", streamId: 0, delta: this.#sessionWindow - DEFAULT_WINDOW });
    }
    const idleMs = options.keepAliveIdleMs ?? 0;
    if (idleMs > 0) this.#startKeepAlive(idleMs, options.keepAliveTimeoutMs ?? 10_000);
  }

  /** Streams open now (either direction still running). */
  get streamCount(): number {
    return this.#streams.size;
  }

  /** False once the connection ended, is closing, or the peer sent GOAWAY: open a new one then. */
  get usable(): boolean {
    return !this.#ended && !this.#closing && !this.#goAway;
  }

  /**
   * Opens a stream: resolves once SYN_STREAM is written, without waiting for SYN_REPLY (the peer handles
   * frames of a stream in order, so data may follow at once). Rejects when the connection cannot take it.
   */
  openStream(headers: HeaderMap, options: OpenStreamOptions = {}): Promise<SpdyStream> {
    try {
      return Promise.resolve(this.openStreamNow(headers, options));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** openStream() without the promise: SYN_STREAM is written before this returns. Throws when it cannot. */
  openStreamNow(headers: HeaderMap, options: OpenStreamOptions = {}): SpdyStream {
    const unusable = this.#unusableError();
    if (unusable) throw unusable;
    if (this.#nextStreamId > MAX_31_BIT) {
      this.#closing = true;
      throw new SpdyConnectionClosedError(
        "Cannot open a SPDY stream: this connection used up its stream ids",
        {
          retryable: true,
        },
      );
    }
    // encoded before the id is taken: a header the peer could not read must not leave a hole in the ids
    const block = encodeHeaderBlock(headers);
    const id = this.#nextStreamId;
    this.#nextStreamId += 2;
    const fin = options.fin ?? false;
    const stream = new Stream(this.#host, id, headers, fin);
    this.#streams.set(id, stream);
    this.#send({
      type: "SYN_STREAM",
      streamId: id,
      associatedStreamId: 0,
      priority: options.priority ?? 0,
      slot: 0,
      flags: fin ? FLAG_FIN : 0,
      headerBlock: this.#compressor.compress(block),
    });
    return stream;
  }

  /** Round-trip time in ms of one PING; rejects on timeout or when the connection ends first. */
  ping(options: { timeoutMs?: number } = {}): Promise<number> {
    const unusable = this.#ended ? this.#unusableError() : undefined;
    if (unusable) return Promise.reject(unusable);
    const id = this.#nextPingId;
    this.#nextPingId = this.#nextPingId + 2 > MAX_31_BIT ? 1 : this.#nextPingId + 2;
    const done = Promise.withResolvers<number>();
    const timeoutMs = options.timeoutMs ?? 10_000;
    const timer = setTimeout(() => {
      this.#pings.delete(id);
      done.reject(new SpdyConnectionClosedError(`SPDY PING got no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    this.#pings.set(id, { sentAt: performance.now(), done });
    this.#send({ type: "PING", id });
    return done.promise.finally(() => clearTimeout(timer));
  }

  /**
   * Graceful end: no new streams; once the open ones are done, GOAWAY and the socket closes. (GOAWAY goes
   * last because spdystream stops reading the moment it sees one, FINs of running streams included.)
   */
  close(): void {
    if (this.#ended || this.#closing) return;
    this.#closing = true;
    this.#finishIfIdle();
  }

  /** Ends everything now: streams fail with `reason` (or a closed-connection error). */
  destroy(reason?: Error): void {
    this.#terminate(reason ?? new SpdyConnectionClosedError("SPDY connection closed by this side"));
  }

  // ------------------------------------------------------------------------------------------ sending

  #send(frame: SpdyFrame): boolean {
    return this.#writeBytes(encodeFrame(frame));
  }

  #writeBytes(bytes: Uint8Array): boolean {
    if (this.#ended) return false;
    const ok = this.#socket.write(bytes);
    if (!ok) this.#needDrain = true;
    return ok;
  }

  /** Resolves when the socket takes more (immediately unless its buffer is full). */
  #drained(): Promise<void> {
    if (this.#ended || !this.#needDrain) return Promise.resolve();
    this.#drain ??= Promise.withResolvers();
    return this.#drain.promise;
  }

  #wakeDrain(): void {
    this.#needDrain = false;
    this.#drain?.resolve();
    this.#drain = undefined;
  }

  /**
   * Sends DATA for a stream, frame by frame, within the peer's windows when it has them. Synchronous (no
   * promise) while nothing has to wait: that is every small write to a kubelet, which has no flow control.
   */
  #sendData(stream: Stream, chunk: Uint8Array): Promise<void> | undefined {
    let offset = 0;
    while (offset < chunk.length) {
      stream.assertWritable();
      let n = Math.min(chunk.length - offset, MAX_DATA_PAYLOAD);
      if (this.#peerFlowControl) {
        if (stream.sendWindow <= 0 || this.#sessionSendWindow <= 0) {
          return this.#sendAfterWindow(stream, chunk.subarray(offset));
        }
        n = Math.min(n, stream.sendWindow, this.#sessionSendWindow);
        stream.sendWindow -= n;
        this.#sessionSendWindow -= n;
      }
      // header and payload as two writes of the socket, which joins them: the payload is not copied
      this.#writeBytes(dataFrameHeader(stream.id, 0, n));
      this.#writeBytes(chunk.subarray(offset, offset + n));
      offset += n;
      if (this.#needDrain) {
        const rest = chunk.subarray(offset);
        return this.#drained().then(() => rest.length > 0 ? this.#sendData(stream, rest) : undefined);
      }
    }
  }

  /** Waits until the peer opens a window (WINDOW_UPDATE, SETTINGS) or the stream or connection ends. */
  async #sendAfterWindow(stream: Stream, chunk: Uint8Array): Promise<void> {
    while (stream.sendWindow <= 0 || this.#sessionSendWindow <= 0) {
      await new Promise<void>((resolve) => this.#windowWaiters.add(resolve));
      stream.assertWritable();
    }
    await this.#sendData(stream, chunk);
  }

  #wakeWriters(): void {
    const waiters = this.#windowWaiters;
    this.#windowWaiters = new Set();
    for (const wake of waiters) wake();
  }

  // ---------------------------------------------------------------------------------------- receiving

  #onData(chunk: Uint8Array): void {
    if (this.#ended) return;
    this.#lastHeardAt = Date.now();
    try {
      for (const frame of this.#decoder.push(chunk)) this.#handle(frame);
    } catch (error) {
      this.#protocolError(error as Error);
    }
  }

  /**
   * Handles a frame now. A header block is decompressed in order (one zlib stream per connection) but no
   * frame waits for it: port-forwarding needs nothing from the peer's headers, and the first DATA of a
   * stream must not wait for zlib behind its SYN_REPLY.
   */
  #handle(frame: SpdyFrame): void {
    if (this.#ended) return;
    if (!hasHeaderBlock(frame)) return this.#handleFrame(frame);
    const stream = frame.type === "SYN_STREAM" ? undefined : this.#streams.get(frame.streamId);
    this.#handleHeaderFrame(frame, stream);
    // a block we cannot read costs only its own headers: nothing depends on them (see above)
    this.#decompressor.decompress(frame.headerBlock).then((raw) => {
      if (frame.type === "SYN_REPLY") stream?.replyHeaders(decodeHeaderBlock(raw));
    }).catch((error) => stream?.replyFailed(error));
  }

  #handleHeaderFrame(frame: HeaderBearingFrame, stream: Stream | undefined): void {
    if (frame.type === "SYN_STREAM") {
      // a server-initiated (pushed) stream: port-forwarding never uses them
      this.#send({ type: "RST_STREAM", streamId: frame.streamId, status: RstStatus.REFUSED_STREAM });
      return;
    }
    if (!stream) return; // we reset it already; late frames are expected
    if (frame.type === "SYN_REPLY" && !stream.replied()) {
      stream.resetWith(RstStatus.STREAM_IN_USE);
      return;
    }
    if (frame.flags & FLAG_FIN) stream.remoteFin();
  }

  #handleFrame(frame: Exclude<SpdyFrame, HeaderBearingFrame>): void {
    switch (frame.type) {
      case "DATA":
        return this.#handleData(frame.streamId, frame.flags, frame.data);
      case "RST_STREAM":
        this.#streams.get(frame.streamId)?.lost(
          new SpdyStreamResetError(frame.streamId, frame.status, true),
        );
        return;
      case "SETTINGS":
        for (const setting of frame.settings) {
          if (setting.id !== SettingId.INITIAL_WINDOW_SIZE) continue;
          // SPDY/3.1: a new initial window shifts the windows of open streams by the difference
          const delta = setting.value - this.#peerInitialWindow;
          this.#peerInitialWindow = setting.value;
          for (const stream of this.#streams.values()) stream.sendWindow += delta;
        }
        this.#wakeWriters();
        return;
      case "PING":
        if (frame.id % 2 === 0) {
          this.#send({ type: "PING", id: frame.id }); // the server's ping: echo it
        } else {
          const ping = this.#pings.get(frame.id);
          this.#pings.delete(frame.id);
          ping?.done.resolve(performance.now() - ping.sentAt);
        }
        return;
      case "GOAWAY":
        this.#goAway = { lastGoodStreamId: frame.lastGoodStreamId, status: frame.status };
        for (const stream of [...this.#streams.values()]) {
          if (stream.id > frame.lastGoodStreamId) {
            stream.lost(
              new SpdyConnectionClosedError("SPDY stream refused: the server sent GOAWAY", {
                retryable: true,
              }),
            );
          }
        }
        this.#finishIfIdle();
        return;
      case "WINDOW_UPDATE":
        if (frame.streamId === 0) this.#sessionSendWindow += frame.delta;
        else {
          const stream = this.#streams.get(frame.streamId);
          if (stream) stream.sendWindow += frame.delta;
        }
        this.#wakeWriters();
        return;
      case "UNKNOWN":
        return; // SPDY: ignore control frames of unknown types
    }
  }

  #handleData(streamId: number, flags: number, data: Uint8Array): void {
    const stream = this.#streams.get(streamId);
    if (!stream) {
      // bytes for a stream that is gone still used session window: give it back at once
      this.#consumed(undefined, data.length);
      // our own finished streams may still see late frames; pushed (even) streams were refused already
      if (streamId % 2 === 1 && streamId >= this.#nextStreamId) {
        this.#send({ type: "RST_STREAM", streamId, status: RstStatus.INVALID_STREAM });
      }
      return;
    }
    if (data.length > 0) stream.deliver(data);
    if (flags & FLAG_FIN) stream.remoteFin();
  }

  // ------------------------------------------------------------------------------ receive flow control

  /** The reader took `bytes` of a stream: reopen the windows by that much once half a window is used. */
  #consumed(stream: Stream | undefined, bytes: number): void {
    if (this.#ended || bytes === 0) return;
    if (stream && !stream.remoteDone) {
      stream.unacked += bytes;
      if (stream.unacked >= this.#recvWindow / 2) {
        this.#send({ type: "WINDOW_UPDATE", streamId: stream.id, delta: stream.unacked });
        stream.unacked = 0;
      }
    }
    this.#sessionUnacked += bytes;
    if (this.#sessionUnacked >= this.#sessionWindow / 2) {
      this.#send({ type: "WINDOW_UPDATE", streamId: 0, delta: this.#sessionUnacked });
      this.#sessionUnacked = 0;
    }
  }

  /** Unread bytes of a stream changed by `delta`: pause or resume reading the socket. */
  #bufferedChanged(stream: Stream, delta: number): void {
    this.#buffered += delta;
    if (stream.queuedBytes > this.#streamBufferLimit && this.#streams.get(stream.id) === stream) {
      this.#overLimit.add(stream);
    } else if (stream.queuedBytes <= this.#streamBufferLimit / 2) this.#overLimit.delete(stream);
    this.#updatePause();
  }

  #updatePause(): void {
    const pause = this.#overLimit.size > 0 || this.#buffered > this.#connectionBufferLimit;
    if (pause && !this.#paused) {
      this.#paused = true;
      this.#socket.pause();
    } else if (
      !pause && this.#paused && this.#buffered <= this.#connectionBufferLimit / 2 && !this.#ended
    ) {
      this.#paused = false;
      this.#socket.resume();
    }
  }

  // ---------------------------------------------------------------------------------------- lifecycle

  /** A stream finished both ways: forget it (bytes it still queues no longer stop the socket). */
  #removed(stream: Stream): void {
    if (this.#streams.get(stream.id) === stream) this.#streams.delete(stream.id);
    if (this.#overLimit.delete(stream)) this.#updatePause();
    this.#finishIfIdle();
  }

  #finishIfIdle(): void {
    if (this.#ended || this.#streams.size > 0) return;
    if (this.#closing) {
      this.#send({ type: "GOAWAY", lastGoodStreamId: 0, status: GoAwayStatus.OK });
      this.#terminate(undefined);
    } else if (this.#goAway) {
      this.#terminate(
        this.#goAway.status === GoAwayStatus.OK ? undefined : this.#lostError(
          `the server sent GOAWAY with status ${this.#goAway.status}`,
        ),
      );
    }
  }

  #protocolError(error: Error): void {
    if (this.#ended) return;
    const cause = error instanceof SpdyProtocolError
      ? error
      : new SpdyProtocolError(`SPDY protocol error: ${error.message}`, { cause: error });
    this.#send({ type: "GOAWAY", lastGoodStreamId: 0, status: GoAwayStatus.PROTOCOL_ERROR });
    this.#terminate(cause);
  }

  #lostError(detail: string): SpdyConnectionClosedError {
    return new SpdyConnectionClosedError(`SPDY connection lost: ${detail}`);
  }

  #unusableError(): Error | undefined {
    if (this.#ended) {
      return new SpdyConnectionClosedError("Cannot open a SPDY stream: the connection has ended", {
        cause: this.#endReason,
        retryable: true,
      });
    }
    if (this.#closing || this.#goAway) {
      return new SpdyConnectionClosedError("Cannot open a SPDY stream: the connection is going away", {
        retryable: true,
      });
    }
    return undefined;
  }

  #endReason?: Error;

  #terminate(reason: Error | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#endReason = reason;
    clearInterval(this.#keepAliveTimer);
    const streamError = reason ?? this.#lostError("the connection closed");
    for (const stream of [...this.#streams.values()]) stream.lost(streamError);
    this.#streams.clear();
    for (const ping of this.#pings.values()) ping.done.reject(streamError);
    this.#pings.clear();
    this.#wakeWriters();
    this.#wakeDrain();
    this.#decompressor.close();
    if (reason) this.#socket.destroy();
    else {
      // a clean end lets GOAWAY and our FIN leave first; a peer that never finishes gets a second
      const socket = this.#socket;
      const timer = setTimeout(() => socket.destroy(), 1_000);
      socket.once("close", () => clearTimeout(timer));
      socket.end(() => socket.destroy());
    }
    this.#closed.resolve(reason);
  }

  #startKeepAlive(idleMs: number, timeoutMs: number): void {
    let inFlight = false;
    this.#keepAliveTimer = setInterval(() => {
      if (inFlight || Date.now() - this.#lastHeardAt < idleMs) return;
      inFlight = true;
      this.ping({ timeoutMs }).then(() => (inFlight = false), (error) => {
        inFlight = false;
        if (!this.#ended) this.#terminate(error);
      });
    }, Math.max(100, Math.min(idleMs, timeoutMs) / 2));
  }
}

/** Stream state; the connection drives it, users see it as SpdyStream. */
class Stream implements SpdyStream {
  readonly id: number;
  readonly headers: HeaderMap;
  readonly reply: Promise<HeaderMap>;
  readonly closed: Promise<Error | undefined>;
  /** What we may still send before the peer opens the window again. */
  sendWindow: number;
  /** Bytes read by the consumer that the peer has not been told about. */
  unacked = 0;
  queuedBytes = 0;

  readonly #host: StreamHost;
  readonly #reply = Promise.withResolvers<HeaderMap>();
  #hasReply = false;
  readonly #closed = Promise.withResolvers<Error | undefined>();
  // readable and writable are made on first use: the pod path uses attach() and send() instead
  #readable?: ReadableStream<Uint8Array>;
  #writable?: WritableStream<Uint8Array>;
  #readController?: ReadableStreamDefaultController<Uint8Array>;
  #writeController?: WritableStreamDefaultController;
  #sink?: StreamSink;
  #sinkPaused = false;
  /** The last send() that has not finished: later sends and the FIN wait for it. */
  #sending?: Promise<void>;
  #queue: Uint8Array[] = [];
  /** A read is waiting and our queue is empty: the next bytes go straight to it. */
  #readWaiting = false;
  /** The readable is closed, errored or cancelled; later bytes are counted as read and dropped. */
  #readableEnded = false;
  /** The peer will send nothing more: FIN, reset, or the connection ended. */
  #remoteDone = false;
  /** Why the peer side ended abnormally (reset or lost before FIN); the readable fails with it. */
  #remoteError?: Error;
  #localDone = false;
  /** Set once the stream failed (reset either way or connection lost). */
  #error?: Error;

  constructor(host: StreamHost, id: number, headers: HeaderMap, fin: boolean) {
    this.#host = host;
    this.id = id;
    this.headers = headers;
    this.sendWindow = host.peerInitialWindow();
    this.reply = this.#reply.promise;
    this.reply.catch(() => {}); // nobody has to wait for the reply
    this.closed = this.#closed.promise;
    this.#localDone = fin;
  }

  get readable(): ReadableStream<Uint8Array> {
    this.#readable ??= new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#readController = controller;
        if (this.#readableEnded) this.#closeReadable();
      },
      pull: () => this.#pull(),
      cancel: () => {
        // the reader is gone: what is queued or still arrives is dropped but counted as read
        this.#readableEnded = true;
        this.#host.consumed(this, this.#dropQueue());
      },
    }, { highWaterMark: 0 });
    return this.#readable;
  }

  get writable(): WritableStream<Uint8Array> {
    this.#writable ??= new WritableStream<Uint8Array>({
      start: (controller) => {
        this.#writeController = controller;
        if (this.#error) controller.error(this.#error);
      },
      write: (chunk) => this.send(chunk),
      close: () => {
        if (this.#localDone && !this.#error) return; // opened with FIN, or finish() came first
        this.assertWritable();
        this.finish();
      },
      abort: () => this.reset(),
    });
    return this.#writable;
  }

  get remoteDone(): boolean {
    return this.#remoteDone;
  }

  attach(sink: StreamSink): void {
    this.#sink = sink;
    this.#flushToSink();
  }

  pauseSink(): void {
    this.#sinkPaused = true;
  }

  resumeSink(): void {
    this.#sinkPaused = false;
    this.#flushToSink();
  }

  send(chunk: Uint8Array): Promise<void> | undefined {
    if (this.#sending) return this.#track(this.#sending.then(() => this.#host.sendData(this, chunk)));
    try {
      const waiting = this.#host.sendData(this, chunk);
      return waiting && this.#track(waiting);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  finish(): void {
    const fin = () => {
      if (this.#localDone || this.#error) return;
      this.#localDone = true;
      this.#host.sendFin(this);
      this.#maybeDone();
    };
    if (this.#sending) this.#sending.then(fin, () => {});
    else fin();
  }

  /** Remembers the send in progress until it settles, so the next one queues behind it. */
  #track(sending: Promise<void>): Promise<void> {
    this.#sending = sending;
    const clear = () => {
      if (this.#sending === sending) this.#sending = undefined;
    };
    sending.then(clear, clear);
    return sending;
  }

  /** Throws why this stream cannot take more bytes. */
  assertWritable(): void {
    if (this.#error) throw this.#error;
    if (this.#localDone) {
      throw new TypeError(`Cannot write to SPDY stream ${this.id}: it is closed for writing`);
    }
  }

  /** Records SYN_REPLY; false when one came already (a protocol error of the peer). */
  replied(): boolean {
    if (this.#hasReply) return false;
    this.#hasReply = true;
    return true;
  }

  /** The SYN_REPLY's headers, once decompressed. */
  replyHeaders(headers: HeaderMap): void {
    this.#reply.resolve(headers);
  }

  replyFailed(error: Error): void {
    this.#reply.reject(error);
  }

  deliver(data: Uint8Array): void {
    if (this.#remoteDone) {
      if (!this.#error) this.resetWith(RstStatus.STREAM_ALREADY_CLOSED); // DATA after FIN
      return;
    }
    if (this.#readableEnded) {
      this.#host.consumed(this, data.length);
      return;
    }
    if (this.#queue.length === 0) {
      if (this.#sink && !this.#sinkPaused) {
        this.#host.consumed(this, data.length);
        this.#sink.data(data);
        return;
      }
      if (this.#readWaiting) {
        this.#readWaiting = false;
        this.#readController!.enqueue(data);
        this.#host.consumed(this, data.length);
        return;
      }
    }
    this.#queue.push(data);
    this.queuedBytes += data.length;
    this.#host.buffered(this, data.length);
  }

  remoteFin(): void {
    if (this.#remoteDone) return;
    this.#remoteDone = true;
    if (!this.#hasReply) {
      this.#reply.reject(new SpdyProtocolError(`SPDY stream ${this.id} ended without a reply`));
    }
    if (this.#queue.length === 0) this.#endReadable();
    this.#maybeDone();
  }

  /** Hands what waited to the attached sink, as long as it is not paused. */
  #flushToSink(): void {
    while (this.#sink && !this.#sinkPaused && this.#queue.length > 0 && !this.#readableEnded) {
      const chunk = this.#queue.shift()!;
      this.queuedBytes -= chunk.length;
      this.#host.consumed(this, chunk.length);
      this.#host.buffered(this, -chunk.length);
      this.#sink.data(chunk);
    }
    if (this.#sink && this.#queue.length === 0 && this.#remoteDone) this.#endReadable();
  }

  #pull(): void {
    const chunk = this.#queue.shift();
    if (!chunk) {
      if (this.#remoteDone) this.#endReadable();
      else this.#readWaiting = true;
      return;
    }
    this.queuedBytes -= chunk.length;
    this.#readController!.enqueue(chunk);
    this.#host.consumed(this, chunk.length);
    this.#host.buffered(this, -chunk.length);
    if (this.#queue.length === 0 && this.#remoteDone) this.#endReadable();
  }

  /** Our queue is empty and the peer is done: end the sink or the readable (failed if the peer side broke). */
  #endReadable(): void {
    if (this.#readableEnded) return;
    this.#readableEnded = true;
    if (this.#sink) this.#sink.end(this.#remoteError);
    else this.#closeReadable();
  }

  #closeReadable(): void {
    if (!this.#readController) return; // made later: its start() closes it
    if (this.#remoteError) this.#readController.error(this.#remoteError);
    else this.#readController.close();
  }

  #dropQueue(): number {
    const dropped = this.queuedBytes;
    this.#queue = [];
    this.queuedBytes = 0;
    if (dropped > 0) this.#host.buffered(this, -dropped);
    return dropped;
  }

  reset(status: number = RstStatus.CANCEL): void {
    if (this.#error || (this.#localDone && this.#remoteDone)) return;
    this.resetWith(status);
  }

  /** Sends RST_STREAM and fails the stream; unread bytes are dropped (we asked for the reset). */
  resetWith(status: number): void {
    if (this.#error) return;
    this.#host.sendReset(this, status);
    this.#dropQueue();
    this.#fail(
      status === RstStatus.CANCEL ? CANCELLED_BY_US : new SpdyStreamResetError(this.id, status, false),
    );
  }

  /** The peer reset the stream or the connection ended: bytes already here stay readable, then it errors. */
  lost(error: Error): void {
    if (this.#error || (this.#localDone && this.#remoteDone)) return;
    this.#fail(error);
  }

  #fail(error: Error): void {
    this.#error = error;
    if (!this.#remoteDone) {
      this.#remoteDone = true;
      this.#remoteError = error;
      if (this.#queue.length === 0) this.#endReadable();
    }
    this.#localDone = true;
    if (!this.#hasReply) this.#reply.reject(error);
    this.#writeController?.error(error);
    this.#host.wakeWriters();
    this.#maybeDone();
  }

  #maybeDone(): void {
    if (!this.#localDone || !this.#remoteDone) return;
    this.#closed.resolve(this.#error);
    this.#host.removed(this);
  }
}
