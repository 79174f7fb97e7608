/** Test helpers for the SPDY layer: a PortStream over plain web streams that a test plays the pod on. */

import { concatBytes } from "../../bytes.ts";
import type { StreamSink } from "./connection.ts";
import type { SpdyFrame } from "./frames.ts";
import type { PodPortError } from "../errors.ts";
import type { PortStream } from "./port_forward.ts";

/**
 * A PortStream whose pod bytes come from `readable` and whose bytes to the pod go to `writable`, with the
 * push interface (attach/pause/resume/send/finish) that SpdyPodStream uses implemented over them.
 */
export function portStreamOver(
  readable: ReadableStream<Uint8Array>,
  writable: WritableStream<Uint8Array>,
  options: { error?: Promise<PodPortError | undefined>; reset?: () => void } = {},
): PortStream {
  let sink: StreamSink | undefined;
  let paused = false;
  let pumping = false;
  const reader = readable.getReader();
  const writer = writable.getWriter();
  const pump = async () => {
    if (pumping) return;
    pumping = true;
    try {
      while (sink && !paused) {
        const { value, done } = await reader.read();
        if (done) return sink.end(undefined);
        sink.data(value);
      }
    } catch (error) {
      sink?.end(error as Error);
    } finally {
      pumping = false;
    }
  };
  return {
    readable,
    writable,
    attach: (s) => {
      sink = s;
      pump();
    },
    pause: () => void (paused = true),
    resume: () => {
      paused = false;
      pump();
    },
    send: (chunk) => writer.write(chunk),
    finish: () => void writer.close().catch(() => {}),
    error: options.error ?? Promise.resolve(undefined),
    reset: () => {
      options.reset?.();
      // as a real SPDY stream does: a reset ends the attached sink at once, with an error
      sink?.end(new Error("the stream was reset"));
      sink = undefined;
      reader.cancel().catch(() => {});
      writer.abort().catch(() => {});
    },
  };
}

/**
 * Reads the header blocks HeaderCompressor writes (one zlib stream of stored deflate blocks, each header
 * block ended by an empty one) and checks that they are exactly that.
 */
export class StoredBlocks {
  #started = false;

  read(compressed: Uint8Array): Uint8Array {
    let at = 0;
    if (!this.#started) {
      this.#started = true;
      if (compressed[0] !== 0x78 || (compressed[1] & 0x20) === 0) {
        throw new Error("no zlib header with FDICT");
      }
      at = 6;
    }
    const out: number[] = [];
    for (;;) {
      if (compressed[at] !== 0) throw new Error(`not a stored, non-final block at ${at}`);
      const length = compressed[at + 1] | (compressed[at + 2] << 8);
      const check = compressed[at + 3] | (compressed[at + 4] << 8);
      if ((length ^ 0xffff) !== check) throw new Error(`LEN/NLEN mismatch at ${at}`);
      out.push(...compressed.subarray(at + 5, at + 5 + length));
      at += 5 + length;
      if (length === 0) break; // the sync flush ends the header block
    }
    if (at !== compressed.length) throw new Error(`${compressed.length - at} bytes after the sync flush`);
    return new Uint8Array(out);
  }
}

/**
 * Frames with the DATA parts FrameDecoder hands out joined back into whole frames (consecutive DATA of one
 * stream with no flags before the last): how the same bytes compare however they were chunked.
 */
export function joinDataParts(frames: readonly SpdyFrame[]): SpdyFrame[] {
  const joined: SpdyFrame[] = [];
  for (const frame of frames) {
    const last = joined.at(-1);
    if (
      frame.type === "DATA" && last?.type === "DATA" && last.streamId === frame.streamId && last.flags === 0
    ) {
      joined[joined.length - 1] = { ...last, flags: frame.flags, data: concatBytes([last.data, frame.data]) };
    } else joined.push(frame);
  }
  return joined;
}
