import assert from "node:assert/strict";
import { Duplex } from "node:stream";
import {
  decodeHeaderBlock,
  encodeDataFrame,
  encodeFrame,
  encodeHeaderBlock,
  FLAG_FIN,
  FrameDecoder,
  HeaderCompressor,
  type HeaderMap,
  type SpdyFrame,
} from "./frames.ts";
import { SpdyConnection, type SpdyConnection as SpdyConnectionType } from "./connection.ts";
import { SpdyConnectionClosedError, SpdyStreamResetError } from "./errors.ts";
import { StoredBlocks } from "./_testing.ts";
import { concatBytes } from "../../bytes.ts";

/** The server end of an in-memory socket: decodes what the client sends, sends frames back. */
class FakePeer {
  readonly socket: Duplex;
  readonly frames: SpdyFrame[] = [];
  /** Decompressed headers of every SYN_STREAM, by stream id. */
  readonly synHeaders = new Map<number, HeaderMap>();
  ended = false;
  readonly #decoder = new FrameDecoder();
  readonly #stored = new StoredBlocks();
  readonly #deflate = new HeaderCompressor();
  #inflating: Promise<unknown> = Promise.resolve();
  #waiters: (() => void)[] = [];

  constructor() {
    this.socket = new Duplex({
      read() {},
      write: (chunk: Uint8Array, _encoding, callback) => {
        for (const frame of this.#decoder.push(chunk)) this.#received(frame);
        callback();
      },
      final: (callback) => {
        this.ended = true;
        this.#wake();
        callback();
      },
    });
  }

  #received(frame: SpdyFrame): void {
    if (frame.type === "SYN_STREAM") {
      this.#inflating = this.#inflating.then(() => {
        this.synHeaders.set(frame.streamId, decodeHeaderBlock(this.#stored.read(frame.headerBlock)));
        this.frames.push(frame);
        this.#wake();
      });
      return;
    }
    this.#inflating = this.#inflating.then(() => {
      this.frames.push(frame);
      this.#wake();
    });
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  /** Waits (bounded) until the received frames satisfy `test`. */
  async until(test: (frames: SpdyFrame[]) => boolean, what = "frames"): Promise<void> {
    const deadline = Date.now() + 2_000;
    while (!test(this.frames)) {
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${what}: ${JSON.stringify(this.types())}`);
      }
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 20);
      });
    }
  }

  types(): string[] {
    return this.frames.map((f) => f.type === "DATA" ? `DATA(${f.streamId},${f.data.length})` : f.type);
  }

  send(frame: SpdyFrame): void {
    this.socket.push(encodeFrame(frame));
  }

  async reply(streamId: number, flags = 0): Promise<void> {
    const headerBlock = await this.#deflate.compress(encodeHeaderBlock({}));
    this.send({ type: "SYN_REPLY", streamId, flags, headerBlock });
  }

  data(streamId: number, bytes: Uint8Array | number, flags = 0): void {
    this.socket.push(
      encodeDataFrame(streamId, flags, typeof bytes === "number" ? new Uint8Array(bytes) : bytes),
    );
  }

  dataBytes(streamId: number): number {
    return this.frames.reduce(
      (n, f) => n + (f.type === "DATA" && f.streamId === streamId ? f.data.length : 0),
      0,
    );
  }

  windowUpdates(streamId: number): number {
    return this.frames.reduce(
      (n, f) => n + (f.type === "WINDOW_UPDATE" && f.streamId === streamId ? f.delta : 0),
      0,
    );
  }

  close(): void {
  }
}

async function withSession(
  options: ConstructorParameters<typeof SpdyConnection>[1],
  body: (connection: SpdyConnectionType, peer: FakePeer) => Promise<void>,
): Promise<void> {
  const peer = new FakePeer();
  const connection = new SpdyConnection(peer.socket, options);
  try {
    await body(connection, peer);
  } finally {
    connection.destroy();
    await connection.closed;
    peer.close();
  }
}

async function readAll(readable: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of readable) chunks.push(chunk);
  return new Uint8Array(chunks.flatMap((c) => [...c]));
}

const text = (s: string) => new TextEncoder().encode(s);

Deno.test("SpdyConnection opens odd streams whose headers the peer can read, and half-closes both ways", async () => {
  await withSession({}, async (connection, peer) => {
    const [a, b] = await Promise.all([
      connection.openStream({ streamtype: "error", port: "80", requestid: "0" }, { fin: true }),
      connection.openStream({ streamtype: "data", port: "80", requestid: "0" }),
    ]);
    assert.deepEqual([a.id, b.id], [1, 3]);
    await peer.until((f) => f.filter((x) => x.type === "SYN_STREAM").length === 2, "two SYN_STREAMs");
    const syns = peer.frames.filter((f) => f.type === "SYN_STREAM");
    assert.deepEqual(syns.map((f) => [f.streamId, f.flags]), [[1, FLAG_FIN], [3, 0]]);
    assert.deepEqual(peer.synHeaders.get(3), { streamtype: "data", port: "80", requestid: "0" });

    const writer = b.writable.getWriter();
    await writer.write(text("ping"));
    await writer.close(); // FIN
    await peer.until(
      (f) => f.some((x) => x.type === "DATA" && x.streamId === 3 && x.flags === FLAG_FIN),
      "FIN",
    );
    assert.equal(peer.dataBytes(3), 4);

    await peer.reply(3);
    peer.data(3, text("pong"));
    peer.data(3, new Uint8Array(0), FLAG_FIN);
    assert.deepEqual(await b.reply, {});
    assert.equal(new TextDecoder().decode(await readAll(b.readable)), "pong");
    assert.equal(await b.closed, undefined);
    assert.equal(connection.streamCount, 1); // the error stream still waits for the peer's FIN
    await peer.reply(1, FLAG_FIN);
    assert.equal(await a.closed, undefined);
    assert.equal(connection.streamCount, 0);
  });
});

Deno.test("SpdyConnection sends a large write as DATA frames of up to 256 KiB whose payloads are not copied", async () => {
  await withSession({ peerFlowControl: false }, async (connection, peer) => {
    const written: Uint8Array[] = [];
    const write = peer.socket.write.bind(peer.socket);
    peer.socket.write = ((chunk: Uint8Array, ...rest: never[]) => {
      written.push(chunk);
      return write(chunk, ...rest);
    }) as typeof peer.socket.write;
    const stream = await connection.openStream({ streamtype: "data", port: "80", requestid: "0" });
    const upload = new Uint8Array(600 * 1024).map((_, i) => i % 253);
    const writer = stream.writable.getWriter();
    await writer.write(upload);
    await peer.until(() => peer.dataBytes(stream.id) === upload.length, "the upload");
    const payloads = written.filter((chunk) => chunk.buffer === upload.buffer);
    assert.deepEqual(payloads.map((p) => p.length), [256 * 1024, 256 * 1024, 88 * 1024]);
    const data = peer.frames.filter((f) => f.type === "DATA" && f.streamId === stream.id);
    assert.deepEqual(concatBytes(data.map((f) => (f as { data: Uint8Array }).data)), upload);
  });
});

Deno.test("SpdyConnection opens its windows only as the reader consumes", async () => {
  await withSession({}, async (connection, peer) => {
    // the session window is raised to 1 MiB right away
    await peer.until((f) => f.some((x) => x.type === "WINDOW_UPDATE"), "session WINDOW_UPDATE");
    assert.equal(peer.windowUpdates(0), 1024 * 1024 - 65536);
    const stream = await connection.openStream({ a: "1" });
    await peer.reply(stream.id);
    for (let i = 0; i < 4; i++) peer.data(stream.id, 16 * 1024); // a full 64 KiB window
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(peer.windowUpdates(stream.id), 0, "nothing read, no WINDOW_UPDATE");

    const reader = stream.readable.getReader();
    let read = 0;
    while (read < 32 * 1024) read += (await reader.read()).value!.length;
    await peer.until((f) => f.some((x) => x.type === "WINDOW_UPDATE" && x.streamId === stream.id), "update");
    assert.equal(peer.windowUpdates(stream.id), 32 * 1024);
    reader.releaseLock();
  });
});

Deno.test("SpdyConnection sends no more than the peer's windows allow", async () => {
  await withSession({}, async (connection, peer) => {
    const stream = await connection.openStream({ a: "1" });
    const writer = stream.writable.getWriter();
    const written = writer.write(new Uint8Array(100 * 1024));
    await peer.until((f) => peer.dataBytes(stream.id) === 65536 && f.length > 0, "a window of data");
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(peer.dataBytes(stream.id), 65536, "stops at the stream window");
    peer.send({ type: "WINDOW_UPDATE", streamId: stream.id, delta: 65536 });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(peer.dataBytes(stream.id), 65536, "the session window is still closed");
    peer.send({ type: "WINDOW_UPDATE", streamId: 0, delta: 65536 });
    await written;
    assert.equal(peer.dataBytes(stream.id), 100 * 1024);
    writer.releaseLock();
  });
});

Deno.test("SpdyConnection ignores the peer's windows when told to (spdystream never opens them)", async () => {
  await withSession({ peerFlowControl: false }, async (connection, peer) => {
    const stream = await connection.openStream({ a: "1" });
    const writer = stream.writable.getWriter();
    await writer.write(new Uint8Array(300 * 1024));
    await peer.until(() => peer.dataBytes(stream.id) === 300 * 1024, "all data");
    writer.releaseLock();
  });
});

Deno.test("SpdyConnection stops reading the socket while a reader lags behind a peer that ignores windows", async () => {
  await withSession({ streamBufferLimit: 100 * 1024 }, async (connection, peer) => {
    const stream = await connection.openStream({ a: "1" });
    await peer.reply(stream.id);
    for (let i = 0; i < 10; i++) peer.data(stream.id, 32 * 1024);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(peer.socket.isPaused(), true, "paused past the stream's limit");
    const reader = stream.readable.getReader();
    let read = 0;
    while (read < 320 * 1024) read += (await reader.read()).value!.length;
    assert.equal(peer.socket.isPaused(), false, "reading again once drained");
    reader.releaseLock();
  });
});

Deno.test("SpdyConnection answers server pings and measures its own", async () => {
  await withSession({}, async (connection, peer) => {
    peer.send({ type: "PING", id: 2 });
    await peer.until((f) => f.some((x) => x.type === "PING" && x.id === 2), "echoed ping");
    const rtt = connection.ping();
    await peer.until((f) => f.some((x) => x.type === "PING" && x.id === 1), "client ping");
    peer.send({ type: "PING", id: 1 });
    assert.ok((await rtt) >= 0);
    await assert.rejects(() => connection.ping({ timeoutMs: 30 }), SpdyConnectionClosedError);
  });
});

Deno.test("SpdyConnection keeps bytes read before a peer reset, then fails the stream", async () => {
  await withSession({}, async (connection, peer) => {
    const stream = await connection.openStream({ a: "1" });
    const other = await connection.openStream({ a: "2" });
    await peer.reply(stream.id);
    peer.data(stream.id, text("partial"));
    peer.send({ type: "RST_STREAM", streamId: stream.id, status: 5 });
    const reader = stream.readable.getReader();
    assert.equal(new TextDecoder().decode((await reader.read()).value), "partial");
    await assert.rejects(() => reader.read(), SpdyStreamResetError);
    await assert.rejects(() => stream.writable.getWriter().write(text("x")), SpdyStreamResetError);
    const closed = await stream.closed;
    assert.ok(closed instanceof SpdyStreamResetError && closed.byPeer && closed.status === 5);
    // the other stream is untouched
    const writer = other.writable.getWriter();
    await writer.write(text("still fine"));
    writer.releaseLock();
  });
});

Deno.test("SpdyConnection reset() sends RST_STREAM and fails the stream locally", async () => {
  await withSession({}, async (connection, peer) => {
    const stream = await connection.openStream({ a: "1" });
    stream.reset();
    await peer.until((f) => f.some((x) => x.type === "RST_STREAM" && x.streamId === stream.id), "RST");
    const closed = await stream.closed;
    assert.ok(closed instanceof SpdyStreamResetError && !closed.byPeer);
    // late frames for it are ignored
    peer.data(stream.id, 10);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(connection.usable, true);
  });
});

Deno.test("SpdyConnection on GOAWAY fails only unprocessed streams and refuses new ones", async () => {
  await withSession({}, async (connection, peer) => {
    const kept = await connection.openStream({ a: "1" });
    const refused = await connection.openStream({ a: "2" });
    peer.send({ type: "GOAWAY", lastGoodStreamId: kept.id, status: 0 });
    const error = await refused.closed;
    assert.ok(error instanceof SpdyConnectionClosedError && error.retryable);
    await assert.rejects(() => connection.openStream({ a: "3" }), SpdyConnectionClosedError);
    assert.equal(connection.usable, false);
    // the processed stream finishes normally, then the connection ends cleanly
    await kept.writable.close();
    await peer.reply(kept.id, FLAG_FIN);
    assert.equal(await kept.closed, undefined);
    assert.equal(await connection.closed, undefined);
  });
});

Deno.test("SpdyConnection fails every stream when the socket ends", async () => {
  await withSession({}, async (connection, peer) => {
    const streams = await Promise.all([connection.openStream({ a: "1" }), connection.openStream({ a: "2" })]);
    peer.socket.push(null);
    const reason = await connection.closed;
    assert.ok(reason instanceof SpdyConnectionClosedError);
    for (const stream of streams) assert.ok((await stream.closed) instanceof SpdyConnectionClosedError);
    await assert.rejects(() => connection.openStream({ a: "3" }), SpdyConnectionClosedError);
  });
});

Deno.test("SpdyConnection close() waits for open streams, then sends GOAWAY and ends the socket", async () => {
  await withSession({}, async (connection, peer) => {
    const stream = await connection.openStream({ a: "1" });
    connection.close();
    await assert.rejects(() => connection.openStream({ a: "2" }), SpdyConnectionClosedError);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.ok(!peer.frames.some((f) => f.type === "GOAWAY"), "no GOAWAY while a stream runs");
    await stream.writable.close();
    await peer.reply(stream.id, FLAG_FIN);
    assert.equal(await connection.closed, undefined);
    await peer.until((f) => f.some((x) => x.type === "GOAWAY") && peer.ended, "GOAWAY and end");
  });
});

Deno.test("SpdyConnection keep-alive ends a connection whose peer stopped answering", async () => {
  await withSession({ keepAliveIdleMs: 40, keepAliveTimeoutMs: 60 }, async (connection, peer) => {
    const stream = await connection.openStream({ a: "1" });
    await peer.until((f) => f.some((x) => x.type === "PING"), "keep-alive ping");
    const reason = await connection.closed;
    assert.ok(reason instanceof SpdyConnectionClosedError && /PING/.test(reason.message));
    assert.ok((await stream.closed) instanceof SpdyConnectionClosedError);
  });
});

Deno.test("SpdyConnection ends with a protocol error on garbage", async () => {
  await withSession({}, async (connection, peer) => {
    peer.socket.push(new Uint8Array([0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1])); // version 2
    const reason = await connection.closed;
    assert.equal(reason?.name, "SpdyProtocolError");
    await peer.until((f) => f.some((x) => x.type === "GOAWAY" && x.status === 1), "GOAWAY PROTOCOL_ERROR");
  });
});
