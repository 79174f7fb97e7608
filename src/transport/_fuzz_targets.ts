/**
 * Fuzz targets for the two wire decoders (run by fuzz_test.ts through src/_fuzz.ts): the v4 port-forward
 * WebSocket framing and the SPDY/3.1 frame and header-block decoders. Inputs are valid frames from the
 * encoders, mutated (lengths and counts get boundary values), split at random points, plus noise.
 *
 * "Typed": the SPDY decoders may throw only SpdyProtocolError (the connection is then failed with a
 * message); the v4 decoder throws nothing at all: every message decodes to data, error text, an unknown
 * channel or nothing, because the protocol has no invalid message (an unknown channel is ignored).
 */

import assert from "node:assert/strict";
import { concatBytes } from "../bytes.ts";
import { type FuzzTarget, mutateBytes, type Prng } from "../_fuzz.ts";
import { classifyPodError } from "./errors.ts";
import { DATA_CHANNEL, encodeData, PortForwardDecoder } from "./websocket/v4_frames.ts";
import { SpdyProtocolError } from "./spdy/errors.ts";
import { joinDataParts } from "./spdy/_testing.ts";
import {
  decodeFrame,
  decodeHeaderBlock,
  encodeFrame,
  encodeHeaderBlock,
  FrameDecoder,
  hasHeaderBlock,
  HeaderCompressor,
  HeaderDecompressor,
  type SpdyFrame,
} from "./spdy/frames.ts";

/** Splits bytes into 1-5 chunks at random points (possibly empty ones). */
function split(rng: Prng, bytes: Uint8Array): Uint8Array[] {
  const cuts = Array.from({ length: rng.int(5) }, () => rng.int(bytes.length + 1)).sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    chunks.push(bytes.slice(from, cut));
    from = cut;
  }
  return chunks;
}

// ----------------------------------------------------------------------------------------------- v4

const V4_SEEDS: Uint8Array[] = [
  Uint8Array.of(0, 0x50, 0x00), // data channel port prefix (80, little-endian)
  Uint8Array.of(1, 0x50, 0x00), // error channel port prefix
  encodeData(new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n")),
  Uint8Array.of(1, ...new TextEncoder().encode("error forwarding port 80 to pod abc: not found")),
  Uint8Array.of(0, 0x50),
  Uint8Array.of(2, 1, 2, 3),
];

export const targets: Record<string, FuzzTarget<unknown>> = {
  v4Decoder: {
    input(rng: Prng): Uint8Array[] {
      const messages: Uint8Array[] = [];
      for (let i = 0, n = 1 + rng.int(8); i < n; i++) {
        if (rng.chance(0.1)) messages.push(rng.bytes(rng.int(16)));
        else {messages.push(
            rng.chance(0.5) ? rng.pick(V4_SEEDS) : mutateBytes(rng, rng.pick(V4_SEEDS), V4_SEEDS),
          );}
      }
      return messages;
    },
    run(input: unknown): void {
      const decoder = new PortForwardDecoder();
      for (const message of input as Uint8Array[]) {
        const frame = decoder.decode(message);
        if (frame === undefined) continue;
        if (frame.kind === "data") {
          assert.equal(message[0], DATA_CHANNEL);
          assert.ok(frame.payload.length > 0 && frame.payload.length <= message.length - 1);
        } else if (frame.kind === "error") {
          assert.equal(typeof frame.message, "string");
          assert.ok(["pod-gone", "port-unreachable"].includes(classifyPodError(frame.message)));
        } else {
          assert.ok(frame.channel > 1 && frame.channel <= 255, `channel ${frame.channel}`);
        }
      }
    },
    typed: [],
    show: (input) => JSON.stringify((input as Uint8Array[]).map((m) => [...m])),
  },

  spdyFrames: {
    input(rng: Prng): Uint8Array[] {
      const seeds = spdySeeds();
      if (rng.chance(0.05)) return split(rng, rng.bytes(rng.int(64)));
      const frames = Array.from({ length: 1 + rng.int(4) }, () => rng.pick(seeds));
      let stream: Uint8Array = concatBytes(frames);
      if (rng.chance(0.85)) stream = mutateBytes(rng, stream, seeds);
      return split(rng, stream);
    },
    run(input: unknown): void {
      const chunks = input as Uint8Array[];
      const whole = concatBytes(chunks);
      // the same bytes give the same frames however they are chunked, or the same kind of error
      const inChunks = decodeAll(() => {
        const decoder = new FrameDecoder();
        return chunks.flatMap((chunk) => decoder.push(chunk));
      });
      const atOnce = decodeAll(() => new FrameDecoder().push(whole));
      assert.deepEqual(normalize(joined(inChunks)), normalize(joined(atOnce)), "chunking changes the result");
      if (inChunks instanceof Error) throw inChunks;
      for (const frame of inChunks) {
        // what was decoded encodes back to a frame that decodes the same
        assert.deepEqual(normalize(decodeFrame(encodeFrame(frame))), normalize(frame), "re-encoding");
        if (hasHeaderBlock(frame)) typedOrNothing(() => decodeHeaderBlock(frame.headerBlock));
      }
      // decodeFrame is exported and may be handed any slice, including ones shorter than a header
      typedOrNothing(() => decodeFrame(whole.subarray(0, Math.min(whole.length, 7 + (whole.length % 9)))));
    },
    typed: [SpdyProtocolError],
    show: (input) => JSON.stringify((input as Uint8Array[]).map((c) => [...c])),
  },

  spdyHeaderBlock: {
    input(rng: Prng): Uint8Array {
      const seeds = headerBlockSeeds();
      if (rng.chance(0.05)) return rng.bytes(rng.int(48));
      return mutateBytes(rng, rng.pick(seeds), seeds);
    },
    run(input: unknown): void {
      const headers = decodeHeaderBlock(input as Uint8Array);
      assert.deepEqual(decodeHeaderBlock(encodeHeaderBlock(headers)), headers, "round trip");
    },
    typed: [SpdyProtocolError],
    show: (input) => JSON.stringify([...(input as Uint8Array)]),
  },

  spdyHeaderDecompression: {
    // one connection's worth: a few compressed blocks through one zlib stream, some of them mutated
    input(rng: Prng): Uint8Array[] {
      const blocks = compressedSeeds();
      return Array.from({ length: 1 + rng.int(3) }, (_, i) => {
        const block = blocks[Math.min(i, blocks.length - 1)];
        if (rng.chance(0.05)) return rng.bytes(rng.int(32));
        return rng.chance(0.7) ? mutateBytes(rng, block, blocks) : block;
      });
    },
    async run(input: unknown): Promise<void> {
      const decompressor = new HeaderDecompressor();
      try {
        for (const block of input as Uint8Array[]) decodeHeaderBlock(await decompressor.decompress(block));
      } finally {
        decompressor.close();
      }
    },
    typed: [SpdyProtocolError],
    show: (input) => JSON.stringify((input as Uint8Array[]).map((b) => [...b])),
  },
};

/** Compressed header blocks as the peer sends them: the first carries the zlib header. */
let cachedCompressed: Uint8Array[] | undefined;
function compressedSeeds(): Uint8Array[] {
  if (!cachedCompressed) throw new Error("call prepare() first");
  return cachedCompressed;
}

/** Builds the compressed seeds; the worker calls it before the first iteration (kept async for it). */
export function prepare(): Promise<unknown> {
  if (!cachedCompressed) {
    const compressor = new HeaderCompressor();
    cachedCompressed = headerBlockSeeds().map((block) => compressor.compress(block));
  }
  return Promise.resolve(cachedCompressed);
}

/** Runs a decoder on a side input: a SpdyProtocolError is fine there, anything else is not. */
function typedOrNothing(fn: () => unknown): void {
  try {
    fn();
  } catch (error) {
    if (!(error instanceof SpdyProtocolError)) throw error;
  }
}

function decodeAll(fn: () => SpdyFrame[]): SpdyFrame[] | Error {
  try {
    return fn();
  } catch (error) {
    if (error instanceof SpdyProtocolError) return error;
    throw error;
  }
}

/** Decoded frames with DATA parts joined (FrameDecoder splits DATA where chunks end); errors as they are. */
function joined(value: SpdyFrame[] | Error): SpdyFrame[] | Error {
  return value instanceof Error ? value : joinDataParts(value);
}

/** Frames as plain data (views become arrays), errors as their class, for comparisons. */
function normalize(value: SpdyFrame | SpdyFrame[] | Error): unknown {
  if (value instanceof Error) return { error: value.name };
  return JSON.parse(JSON.stringify(value, (_key, v) => v instanceof Uint8Array ? [...v] : v));
}

let cachedHeaderBlocks: Uint8Array[] | undefined;

function headerBlockSeeds(): Uint8Array[] {
  return cachedHeaderBlocks ??= [
    encodeHeaderBlock({}),
    encodeHeaderBlock({ streamtype: "data", port: "8080", requestid: "0" }),
    encodeHeaderBlock({ ":status": "200", "x-many": "a\0b\0c" }),
    encodeHeaderBlock({ "x-stream-protocol-version": "portforward.k8s.io" }),
  ];
}

let cachedFrames: Uint8Array[] | undefined;

function spdySeeds(): Uint8Array[] {
  const block = headerBlockSeeds()[1];
  return cachedFrames ??= [
    encodeFrame({ type: "DATA", streamId: 1, flags: 0, data: new TextEncoder().encode("hello") }),
    encodeFrame({ type: "DATA", streamId: 3, flags: 1, data: new Uint8Array() }),
    encodeFrame({
      type: "SYN_STREAM",
      streamId: 1,
      associatedStreamId: 0,
      priority: 3,
      slot: 0,
      flags: 0,
      headerBlock: block,
    }),
    encodeFrame({ type: "SYN_REPLY", streamId: 1, flags: 0, headerBlock: block }),
    encodeFrame({ type: "HEADERS", streamId: 1, flags: 1, headerBlock: block }),
    encodeFrame({ type: "RST_STREAM", streamId: 5, status: 5 }),
    encodeFrame({
      type: "SETTINGS",
      flags: 0,
      settings: [{ id: 4, flags: 0, value: 100 }, { id: 7, flags: 1, value: 65536 }],
    }),
    encodeFrame({ type: "PING", id: 1 }),
    encodeFrame({ type: "GOAWAY", lastGoodStreamId: 7, status: 0 }),
    encodeFrame({ type: "WINDOW_UPDATE", streamId: 0, delta: 0x7fffffff }),
    encodeFrame({ type: "UNKNOWN", frameType: 10, flags: 0, payload: Uint8Array.of(1, 2, 3) }),
  ];
}
