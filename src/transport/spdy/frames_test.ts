import assert from "node:assert/strict";
import * as zlib from "node:zlib";
import { Buffer } from "node:buffer";
import {
  adler32,
  decodeFrame,
  decodeHeaderBlock,
  encodeDataFrame,
  encodeFrame,
  encodeHeaderBlock,
  FLAG_FIN,
  FrameDecoder,
  HeaderCompressor,
  HeaderDecompressor,
  SPDY_DICTIONARY,
  type SpdyFrame,
} from "./frames.ts";
import { SpdyProtocolError } from "./errors.ts";
import { joinDataParts } from "./_testing.ts";

const block = new Uint8Array([1, 2, 3, 4, 5]);
const samples: SpdyFrame[] = [
  { type: "DATA", streamId: 5, flags: FLAG_FIN, data: new Uint8Array([104, 105]) },
  { type: "DATA", streamId: 0x7fffffff, flags: 0, data: new Uint8Array(0) },
  {
    type: "SYN_STREAM",
    streamId: 1,
    associatedStreamId: 0,
    priority: 3,
    slot: 0,
    flags: FLAG_FIN,
    headerBlock: block,
  },
  { type: "SYN_REPLY", streamId: 3, flags: 0, headerBlock: block },
  { type: "RST_STREAM", streamId: 7, status: 5 },
  {
    type: "SETTINGS",
    flags: 1,
    settings: [{ id: 7, flags: 1, value: 1 << 20 }, { id: 4, flags: 0, value: 100 }],
  },
  { type: "PING", id: 0xfffffffe },
  { type: "GOAWAY", lastGoodStreamId: 9, status: 2 },
  { type: "HEADERS", streamId: 11, flags: FLAG_FIN, headerBlock: block },
  { type: "WINDOW_UPDATE", streamId: 0, delta: 0x7fffffff },
  { type: "UNKNOWN", frameType: 0x55, flags: 0, payload: new Uint8Array([9, 9]) },
];

Deno.test("encodeFrame() and decodeFrame() round-trip every frame type", () => {
  for (const frame of samples) assert.deepEqual(decodeFrame(encodeFrame(frame)), frame);
});

Deno.test("encodeFrame() writes the SPDY/3 control header bit-exactly", () => {
  // PING id 1: 0x8003 0x0006 flags 0 length 4, id
  assert.deepEqual([...encodeFrame({ type: "PING", id: 1 })], [0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]);
  // DATA stream 3, FIN, 2 bytes
  assert.deepEqual([...encodeDataFrame(3, FLAG_FIN, new Uint8Array([7, 8]))], [0, 0, 0, 3, 1, 0, 0, 2, 7, 8]);
  // SYN_STREAM priority sits in the top 3 bits
  const syn = encodeFrame({ ...samples[2], priority: 7 } as SpdyFrame);
  assert.deepEqual(syn[16], 0xe0);
});

Deno.test("FrameDecoder reassembles frames split at every byte boundary", () => {
  const stream = new Uint8Array(samples.flatMap((frame) => [...encodeFrame(frame)]));
  for (let cut = 1; cut < stream.length; cut++) {
    const decoder = new FrameDecoder();
    const frames = [...decoder.push(stream.subarray(0, cut)), ...decoder.push(stream.subarray(cut))];
    assert.deepEqual(joinDataParts(frames), samples);
    assert.deepEqual(decoder.bufferedBytes, 0);
  }
});

Deno.test("FrameDecoder accepts one byte at a time and returns DATA inside a chunk without copying", () => {
  const bytes = new Uint8Array(samples.flatMap((frame) => [...encodeFrame(frame)]));
  const decoder = new FrameDecoder();
  const frames: SpdyFrame[] = [];
  for (const byte of bytes) frames.push(...decoder.push(new Uint8Array([byte])));
  assert.deepEqual(joinDataParts(frames), samples);

  const data = encodeDataFrame(1, 0, new Uint8Array(1000));
  const [frame] = new FrameDecoder().push(data);
  assert.ok(frame.type === "DATA" && frame.data.buffer === data.buffer);
});

Deno.test("FrameDecoder hands a DATA frame split over chunks on in parts, views of those chunks, FIN on the last", () => {
  // the API server's tunnel: a 32 KiB DATA frame from the kubelet in 16 KiB WebSocket messages
  const payload = new Uint8Array(32 * 1024).map((_, i) => i % 251);
  const wire = encodeDataFrame(5, FLAG_FIN, payload);
  const messages = [wire.slice(0, 16384), wire.slice(16384, 32768), wire.slice(32768)];
  const decoder = new FrameDecoder();
  const parts = messages.flatMap((message) => decoder.push(message));
  assert.equal(parts.length, 3);
  parts.forEach((part, i) => {
    assert.ok(part.type === "DATA" && part.streamId === 5);
    assert.equal(part.data.buffer, messages[i].buffer, "a view of its message, not a copy");
    assert.equal(part.flags, i === 2 ? FLAG_FIN : 0);
  });
  assert.deepEqual(joinDataParts(parts), [{ type: "DATA", streamId: 5, flags: FLAG_FIN, data: payload }]);
  assert.equal(decoder.bufferedBytes, 0);
  // the next frame is read as usual after the parts
  assert.deepEqual(decoder.push(encodeFrame({ type: "PING", id: 7 })), [{ type: "PING", id: 7 }]);
});

Deno.test("decodeFrame() rejects other versions and malformed control frames", () => {
  const ping = encodeFrame({ type: "PING", id: 1 });
  const v2 = ping.slice();
  v2[1] = 2;
  assert.throws(() => decodeFrame(v2), SpdyProtocolError);
  const shortRst = new Uint8Array([0x80, 3, 0, 3, 0, 0, 0, 4, 0, 0, 0, 1]);
  assert.throws(() => decodeFrame(shortRst), SpdyProtocolError);
  const badSettings = new Uint8Array([0x80, 3, 0, 4, 0, 0, 0, 4, 0, 0, 0, 2]);
  assert.throws(() => new FrameDecoder().push(badSettings), SpdyProtocolError);
  // found by fuzzing: a slice shorter than the 8-byte header threw a RangeError from DataView
  assert.throws(() => decodeFrame(Uint8Array.of(0x80)), SpdyProtocolError);
  assert.throws(() => decodeFrame(new Uint8Array()), SpdyProtocolError);
});

Deno.test("header blocks round-trip and reject what SPDY forbids", () => {
  const headers = { streamtype: "data", port: "8080", requestid: "17", multi: "a\0b", empty: "" };
  assert.deepEqual(decodeHeaderBlock(encodeHeaderBlock(headers)), headers);
  assert.throws(() => encodeHeaderBlock({ StreamType: "data" }), TypeError);
  const upper = encodeHeaderBlock({ abc: "1" });
  upper[8] = "A".charCodeAt(0);
  assert.throws(() => decodeHeaderBlock(upper), SpdyProtocolError);
  const twice = new Uint8Array([...encodeHeaderBlock({ a: "1", b: "2" })]);
  twice[12] = "a".charCodeAt(0); // second name "b" -> "a"
  assert.throws(() => decodeHeaderBlock(twice), SpdyProtocolError);
  assert.throws(() => decodeHeaderBlock(encodeHeaderBlock(headers).subarray(0, 20)), SpdyProtocolError);
  // found by fuzzing: invalid UTF-8 escaped as the fatal TextDecoder's TypeError
  const notUtf8 = encodeHeaderBlock({ port: "80" });
  notUtf8[notUtf8.length - 1] = 0xff;
  assert.throws(() => decodeHeaderBlock(notUtf8), SpdyProtocolError);
});

Deno.test("SPDY_DICTIONARY has the spec's length and checksum", () => {
  assert.deepEqual(SPDY_DICTIONARY.length, 1423);
  assert.deepEqual(adler32(SPDY_DICTIONARY), 0xe3c6a7c2);
  assert.deepEqual(adler32(new TextEncoder().encode("Wikipedia")), 0x11e60398);
});

/** Inflates a sequence of sync-flushed blocks with zlib's own dictionary support. */
async function inflateWithZlib(blocks: Uint8Array[]): Promise<Uint8Array[]> {
  const inflate = zlib.createInflate({ dictionary: Buffer.from(SPDY_DICTIONARY) });
  const out: Uint8Array[] = [];
  let pending: Uint8Array[] = [];
  inflate.on("data", (chunk: Uint8Array) => pending.push(chunk));
  for (const block of blocks) {
    await new Promise<void>((resolve) => {
      inflate.write(Buffer.from(block));
      inflate.flush(zlib.constants.Z_SYNC_FLUSH, () => resolve());
    });
    out.push(new Uint8Array(Buffer.concat(pending)));
    pending = [];
  }
  inflate.destroy();
  return out;
}

Deno.test("HeaderCompressor writes one zlib stream of stored blocks that zlib inflates in one context", async () => {
  const compressor = new HeaderCompressor();
  const blocks = [
    encodeHeaderBlock({ streamtype: "error", port: "8080", requestid: "0" }),
    encodeHeaderBlock({ streamtype: "data", port: "8080", requestid: "0" }),
    encodeHeaderBlock({ "content-type": "text/plain", status: "200 OK", big: "x".repeat(70_000) }),
  ];
  const compressed = blocks.map((b) => compressor.compress(b));
  // zlib header announcing a preset dictionary whose Adler-32 is the SPDY one, on the first block only
  assert.deepEqual(compressed[0][0], 0x78);
  assert.ok((compressed[0][1] & 0x20) !== 0);
  assert.deepEqual(new DataView(compressed[0].buffer, compressed[0].byteOffset).getUint32(2), 0xe3c6a7c2);
  assert.equal(compressed[1][0], 0, "later blocks start with a stored block, no second zlib header");
  // every block ends with a sync flush (an empty stored block): inflaters hand the bytes over at once
  for (const c of compressed) assert.deepEqual([...c.subarray(-5)], [0, 0, 0, 0xff, 0xff]);
  // stored: the block's bytes as they are, plus 5 bytes per 64 KiB piece and the flush
  assert.equal(compressed[1].length, blocks[1].length + 5 + 5);
  assert.equal(compressed[2].length, blocks[2].length + 2 * 5 + 5, "a block over 64 KiB is split");
  assert.deepEqual(await inflateWithZlib(compressed), blocks);
  const decompressor = new HeaderDecompressor();
  try {
    for (const [i, c] of compressed.entries()) assert.deepEqual(await decompressor.decompress(c), blocks[i]);
  } finally {
    decompressor.close();
  }
});

Deno.test("HeaderDecompressor reads blocks deflated by zlib with the SPDY dictionary, in one context", async () => {
  // made by CPython's zlib: compressobj(zdict=SPDY dictionary), each block ended with Z_SYNC_FLUSH
  const fromZlib = ["78bbe3c6a7c202a623466c6914000000ffff", "02e51a2c850c17c275209d1520a212000000ffff"];
  const decompressor = new HeaderDecompressor();
  try {
    const first = await decompressor.decompress(new Uint8Array(Buffer.from(fromZlib[0], "hex")));
    assert.deepEqual(decodeHeaderBlock(first), { status: "200 OK" });
    const second = await decompressor.decompress(new Uint8Array(Buffer.from(fromZlib[1], "hex")));
    assert.deepEqual(decodeHeaderBlock(second), { "content-type": "text/plain", x: "y" });
  } finally {
    decompressor.close();
  }
});

Deno.test("HeaderDecompressor reads what HeaderCompressor wrote, block after block", async () => {
  const blocks = Array.from(
    { length: 20 },
    (_, i) => encodeHeaderBlock({ streamtype: "data", requestid: `${i}` }),
  );
  const compressor = new HeaderCompressor();
  const decompressor = new HeaderDecompressor();
  try {
    const compressed = await Promise.all(blocks.map((b) => compressor.compress(b)));
    const decompressed = await Promise.all(compressed.map((c) => decompressor.decompress(c)));
    assert.deepEqual(decompressed, blocks);
  } finally {
    decompressor.close();
  }
});

Deno.test("HeaderDecompressor accepts a peer without a dictionary and rejects a foreign one", async () => {
  const plain = zlib.deflateSync(Buffer.from(encodeHeaderBlock({ a: "b" })), {
    finishFlush: zlib.constants.Z_SYNC_FLUSH,
  });
  const ok = new HeaderDecompressor();
  const foreign = new HeaderDecompressor();
  try {
    assert.deepEqual(decodeHeaderBlock(await ok.decompress(new Uint8Array(plain))), { a: "b" });
    const other = new Uint8Array([0x78, 0xbb, 1, 2, 3, 4, 0, 0, 0xff, 0xff]);
    await assert.rejects(() => foreign.decompress(other), SpdyProtocolError);
  } finally {
    ok.close();
    foreign.close();
  }
});
