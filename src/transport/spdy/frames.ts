/** SPDY/3.1 frames: encoding, an incremental decoder, and the zlib-compressed name/value header blocks. */

import { Buffer } from "node:buffer";
import * as zlib from "node:zlib";
import { SpdyProtocolError } from "./errors.ts";
import { concatBytes } from "../../bytes.ts";

export const SPDY_VERSION = 3;

/** Control frame type codes (SPDY/3 section 2.6). */
export const FrameType = {
  SYN_STREAM: 1,
  SYN_REPLY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PING: 6,
  GOAWAY: 7,
  HEADERS: 8,
  WINDOW_UPDATE: 9,
} as const;

/** FLAG_FIN on DATA, SYN_STREAM, SYN_REPLY and HEADERS: the sender sends nothing more on the stream. */
export const FLAG_FIN = 0x01;
/** FLAG_UNIDIRECTIONAL on SYN_STREAM: the recipient must not send on the stream. */
export const FLAG_UNIDIRECTIONAL = 0x02;
/** FLAG_SETTINGS_CLEAR_SETTINGS on SETTINGS. */
export const FLAG_CLEAR_SETTINGS = 0x01;

/** RST_STREAM status codes. */
export const RstStatus = {
  PROTOCOL_ERROR: 1,
  INVALID_STREAM: 2,
  REFUSED_STREAM: 3,
  UNSUPPORTED_VERSION: 4,
  CANCEL: 5,
  INTERNAL_ERROR: 6,
  FLOW_CONTROL_ERROR: 7,
  STREAM_IN_USE: 8,
  STREAM_ALREADY_CLOSED: 9,
  FRAME_TOO_LARGE: 11,
} as const;

/** GOAWAY status codes. */
export const GoAwayStatus = { OK: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2 } as const;

/** SETTINGS ids this implementation reads. */
export const SettingId = { MAX_CONCURRENT_STREAMS: 4, INITIAL_WINDOW_SIZE: 7 } as const;

/** Stream ids, ping ids and window deltas are 31-bit. */
export const MAX_31_BIT = 0x7fffffff;
/** The length field of every frame is 24-bit. */
export const MAX_FRAME_LENGTH = 0xffffff;
const HEADER_BYTES = 8;

export interface DataFrame {
  type: "DATA";
  streamId: number;
  flags: number;
  data: Uint8Array;
}

export interface SynStreamFrame {
  type: "SYN_STREAM";
  streamId: number;
  /** 0 unless the server pushes a stream tied to one of ours. */
  associatedStreamId: number;
  /** 0 (highest) to 7. */
  priority: number;
  slot: number;
  flags: number;
  /** The compressed name/value block. */
  headerBlock: Uint8Array;
}

export interface SynReplyFrame {
  type: "SYN_REPLY";
  streamId: number;
  flags: number;
  headerBlock: Uint8Array;
}

export interface RstStreamFrame {
  type: "RST_STREAM";
  streamId: number;
  status: number;
}

export interface Setting {
  id: number;
  flags: number;
  value: number;
}

export interface SettingsFrame {
  type: "SETTINGS";
  flags: number;
  settings: Setting[];
}

export interface PingFrame {
  type: "PING";
  /** Odd when the client sent the ping first, even when the server did. */
  id: number;
}

export interface GoAwayFrame {
  type: "GOAWAY";
  /** The last stream the sender processed; higher ones never reached it. */
  lastGoodStreamId: number;
  status: number;
}

export interface HeadersFrame {
  type: "HEADERS";
  streamId: number;
  flags: number;
  headerBlock: Uint8Array;
}

export interface WindowUpdateFrame {
  type: "WINDOW_UPDATE";
  /** 0 for the session window. */
  streamId: number;
  delta: number;
}

/** A control frame of a type SPDY/3.1 does not define: receivers ignore it. */
export interface UnknownControlFrame {
  type: "UNKNOWN";
  frameType: number;
  flags: number;
  payload: Uint8Array;
}

export type SpdyFrame =
  | DataFrame
  | SynStreamFrame
  | SynReplyFrame
  | RstStreamFrame
  | SettingsFrame
  | PingFrame
  | GoAwayFrame
  | HeadersFrame
  | WindowUpdateFrame
  | UnknownControlFrame;

/** Frames whose payload ends in a compressed header block. */
export type HeaderBearingFrame = SynStreamFrame | SynReplyFrame | HeadersFrame;

export function hasHeaderBlock(frame: SpdyFrame): frame is HeaderBearingFrame {
  return frame.type === "SYN_STREAM" || frame.type === "SYN_REPLY" || frame.type === "HEADERS";
}

function check31(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > MAX_31_BIT) {
    throw new RangeError(`Cannot encode SPDY ${what} ${value}: not a 31-bit number`);
  }
  return value;
}

function checkFrameLength(payloadLength: number): void {
  if (payloadLength > MAX_FRAME_LENGTH) {
    throw new RangeError(
      `Cannot encode a SPDY frame of ${payloadLength} bytes: the limit is ${MAX_FRAME_LENGTH}`,
    );
  }
}

function frameBuffer(payloadLength: number): { bytes: Uint8Array; view: DataView } {
  checkFrameLength(payloadLength);
  const bytes = new Uint8Array(HEADER_BYTES + payloadLength);
  return { bytes, view: new DataView(bytes.buffer) };
}

function controlHeader(view: DataView, type: number, flags: number, length: number): void {
  view.setUint16(0, 0x8000 | SPDY_VERSION);
  view.setUint16(2, type);
  view.setUint32(4, ((flags & 0xff) << 24 | length) >>> 0);
}

/** Encodes a DATA frame (the payload is copied behind the 8-byte header). */
export function encodeDataFrame(streamId: number, flags: number, data: Uint8Array): Uint8Array {
  const { bytes, view } = frameBuffer(data.length);
  dataHeader(view, streamId, flags, data.length);
  bytes.set(data, HEADER_BYTES);
  return bytes;
}

/** The 8-byte header of a DATA frame whose payload is sent after it as it is (no copy of a large upload). */
export function dataFrameHeader(streamId: number, flags: number, length: number): Uint8Array {
  checkFrameLength(length);
  const bytes = new Uint8Array(HEADER_BYTES);
  dataHeader(new DataView(bytes.buffer), streamId, flags, length);
  return bytes;
}

function dataHeader(view: DataView, streamId: number, flags: number, length: number): void {
  view.setUint32(0, check31(streamId, "stream id"));
  view.setUint32(4, ((flags & 0xff) << 24 | length) >>> 0);
}

/** Encodes any frame; header blocks must already be compressed. */
export function encodeFrame(frame: SpdyFrame): Uint8Array {
  switch (frame.type) {
    case "DATA":
      return encodeDataFrame(frame.streamId, frame.flags, frame.data);
    case "SYN_STREAM": {
      const { bytes, view } = frameBuffer(10 + frame.headerBlock.length);
      controlHeader(view, FrameType.SYN_STREAM, frame.flags, 10 + frame.headerBlock.length);
      view.setUint32(8, check31(frame.streamId, "stream id"));
      view.setUint32(12, check31(frame.associatedStreamId, "associated stream id"));
      bytes[16] = (frame.priority & 0x07) << 5;
      bytes[17] = frame.slot & 0xff;
      bytes.set(frame.headerBlock, 18);
      return bytes;
    }
    case "SYN_REPLY":
    case "HEADERS": {
      const { bytes, view } = frameBuffer(4 + frame.headerBlock.length);
      const type = frame.type === "SYN_REPLY" ? FrameType.SYN_REPLY : FrameType.HEADERS;
      controlHeader(view, type, frame.flags, 4 + frame.headerBlock.length);
      view.setUint32(8, check31(frame.streamId, "stream id"));
      bytes.set(frame.headerBlock, 12);
      return bytes;
    }
    case "RST_STREAM": {
      const { bytes, view } = frameBuffer(8);
      controlHeader(view, FrameType.RST_STREAM, 0, 8);
      view.setUint32(8, check31(frame.streamId, "stream id"));
      view.setUint32(12, frame.status >>> 0);
      return bytes;
    }
    case "SETTINGS": {
      const length = 4 + 8 * frame.settings.length;
      const { bytes, view } = frameBuffer(length);
      controlHeader(view, FrameType.SETTINGS, frame.flags, length);
      view.setUint32(8, frame.settings.length);
      frame.settings.forEach((setting, i) => {
        view.setUint32(12 + 8 * i, ((setting.flags & 0xff) << 24 | (setting.id & 0xffffff)) >>> 0);
        view.setUint32(16 + 8 * i, setting.value >>> 0);
      });
      return bytes;
    }
    case "PING": {
      const { bytes, view } = frameBuffer(4);
      controlHeader(view, FrameType.PING, 0, 4);
      view.setUint32(8, frame.id >>> 0);
      return bytes;
    }
    case "GOAWAY": {
      const { bytes, view } = frameBuffer(8);
      controlHeader(view, FrameType.GOAWAY, 0, 8);
      view.setUint32(8, check31(frame.lastGoodStreamId, "last good stream id"));
      view.setUint32(12, frame.status >>> 0);
      return bytes;
    }
    case "WINDOW_UPDATE": {
      const { bytes, view } = frameBuffer(8);
      controlHeader(view, FrameType.WINDOW_UPDATE, 0, 8);
      view.setUint32(8, check31(frame.streamId, "stream id"));
      view.setUint32(12, check31(frame.delta, "window delta"));
      return bytes;
    }
    case "UNKNOWN": {
      const { bytes, view } = frameBuffer(frame.payload.length);
      controlHeader(view, frame.frameType, frame.flags, frame.payload.length);
      bytes.set(frame.payload, HEADER_BYTES);
      return bytes;
    }
  }
}

/**
 * Turns a byte stream into frames; chunks may split frames anywhere. A frame that lies inside one chunk is
 * returned as a view of it (no copy). A DATA frame that does not is returned in parts, as its bytes arrive:
 * each part is a DATA frame of its own (a view of its chunk) and only the last carries the frame's flags.
 * Why: the API server's WebSocket tunnel splits the kubelet's 32 KiB DATA frames over 16 KiB messages, so
 * joining them cost a zero-filled allocation and a copy of every downloaded byte.
 */
export class FrameDecoder {
  #chunks: Uint8Array[] = [];
  /** Read position inside #chunks[0]. */
  #offset = 0;
  #buffered = 0;
  /** The DATA frame whose payload is arriving in parts: payload bytes still to come, its stream and flags. */
  #data = { left: 0, streamId: 0, flags: 0 };

  /** Bytes received but not yet part of a frame handed out. */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /** Adds bytes; returns the frames (and DATA parts) they complete. Throws SpdyProtocolError on a malformed frame. */
  push(chunk: Uint8Array): SpdyFrame[] {
    if (chunk.length > 0) {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
    }
    const frames: SpdyFrame[] = [];
    const data = this.#data;
    for (;;) {
      if (data.left > 0) {
        if (this.#buffered === 0) break;
        // at most the rest of the first chunk: a view, never a copy
        const n = Math.min(data.left, this.#chunks[0].length - this.#offset);
        const part = this.#take(n);
        data.left -= n;
        frames.push({
          type: "DATA",
          streamId: data.streamId,
          flags: data.left === 0 ? data.flags : 0,
          data: part,
        });
        continue;
      }
      if (this.#buffered < HEADER_BYTES) break;
      const header = this.#peek(HEADER_BYTES);
      const length = (header[5] << 16) | (header[6] << 8) | header[7];
      if (this.#buffered >= HEADER_BYTES + length) {
        frames.push(decodeFrame(this.#take(HEADER_BYTES + length)));
        continue;
      }
      // control frames (small, or a header block for zlib) are decoded whole
      if ((header[0] & 0x80) !== 0) break;
      data.streamId = ((header[0] << 24) | (header[1] << 16) | (header[2] << 8) | header[3]) & MAX_31_BIT;
      data.flags = header[4];
      data.left = length;
      this.#take(HEADER_BYTES);
    }
    return frames;
  }

  #peek(n: number): Uint8Array {
    const first = this.#chunks[0];
    if (first.length - this.#offset >= n) return first.subarray(this.#offset, this.#offset + n);
    return this.#copy(n, false);
  }

  #take(n: number): Uint8Array {
    const first = this.#chunks[0];
    if (first.length - this.#offset >= n) {
      const view = first.subarray(this.#offset, this.#offset + n);
      this.#offset += n;
      this.#buffered -= n;
      if (this.#offset === first.length) {
        this.#chunks.shift();
        this.#offset = 0;
      }
      return view;
    }
    return this.#copy(n, true);
  }

  #copy(n: number, consume: boolean): Uint8Array {
    const out = new Uint8Array(n);
    let filled = 0;
    let index = 0;
    let offset = this.#offset;
    while (filled < n) {
      const chunk = this.#chunks[index];
      const count = Math.min(n - filled, chunk.length - offset);
      out.set(chunk.subarray(offset, offset + count), filled);
      filled += count;
      offset += count;
      if (offset === chunk.length) {
        index++;
        offset = 0;
      }
    }
    if (consume) {
      this.#chunks.splice(0, index);
      this.#offset = offset;
      this.#buffered -= n;
    }
    return out;
  }
}

/** Decodes one whole frame (header included). */
export function decodeFrame(bytes: Uint8Array): SpdyFrame {
  // found by fuzzing: a short slice made DataView throw a RangeError instead of a protocol error
  if (bytes.length < HEADER_BYTES) {
    throw new SpdyProtocolError(
      `Cannot decode a SPDY frame: ${bytes.length} bytes is shorter than a frame header`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const flags = bytes[4];
  const length = view.getUint32(4) & 0xffffff;
  if (bytes.length !== HEADER_BYTES + length) {
    throw new SpdyProtocolError(
      `Cannot decode a SPDY frame: ${bytes.length} bytes for a length of ${length}`,
    );
  }
  const payload = bytes.subarray(HEADER_BYTES);
  if ((bytes[0] & 0x80) === 0) {
    return { type: "DATA", streamId: view.getUint32(0) & MAX_31_BIT, flags, data: payload };
  }
  const version = view.getUint16(0) & 0x7fff;
  const type = view.getUint16(2);
  if (version !== SPDY_VERSION) {
    throw new SpdyProtocolError(`Cannot decode a SPDY control frame of version ${version}: only 3 is spoken`);
  }
  const need = (min: number, exact = false) => {
    if (exact ? length !== min : length < min) {
      throw new SpdyProtocolError(
        `Cannot decode SPDY control frame type ${type}: length ${length}, expected ${
          exact ? "" : "at least "
        }${min}`,
      );
    }
  };
  const u32 = (at: number) => view.getUint32(HEADER_BYTES + at);
  switch (type) {
    case FrameType.SYN_STREAM:
      need(10);
      return {
        type: "SYN_STREAM",
        streamId: u32(0) & MAX_31_BIT,
        associatedStreamId: u32(4) & MAX_31_BIT,
        priority: payload[8] >> 5,
        slot: payload[9],
        flags,
        headerBlock: payload.subarray(10),
      };
    case FrameType.SYN_REPLY:
    case FrameType.HEADERS:
      need(4);
      return {
        type: type === FrameType.SYN_REPLY ? "SYN_REPLY" : "HEADERS",
        streamId: u32(0) & MAX_31_BIT,
        flags,
        headerBlock: payload.subarray(4),
      };
    case FrameType.RST_STREAM:
      need(8, true);
      return { type: "RST_STREAM", streamId: u32(0) & MAX_31_BIT, status: u32(4) };
    case FrameType.SETTINGS: {
      need(4);
      const count = u32(0);
      if (length !== 4 + 8 * count) {
        throw new SpdyProtocolError(`Cannot decode SPDY SETTINGS: ${count} entries in ${length} bytes`);
      }
      const settings: Setting[] = [];
      for (let i = 0; i < count; i++) {
        const idAndFlags = u32(4 + 8 * i);
        settings.push({ id: idAndFlags & 0xffffff, flags: idAndFlags >>> 24, value: u32(8 + 8 * i) });
      }
      return { type: "SETTINGS", flags, settings };
    }
    case FrameType.PING:
      need(4, true);
      return { type: "PING", id: u32(0) };
    case FrameType.GOAWAY:
      need(8, true);
      return { type: "GOAWAY", lastGoodStreamId: u32(0) & MAX_31_BIT, status: u32(4) };
    case FrameType.WINDOW_UPDATE:
      need(8, true);
      return { type: "WINDOW_UPDATE", streamId: u32(0) & MAX_31_BIT, delta: u32(4) & MAX_31_BIT };
    default:
      return { type: "UNKNOWN", frameType: type, flags, payload };
  }
}

// ---------------------------------------------------------------------------------------- header blocks

/** Header names (lowercase) to values; several values of one name are joined by NUL. */
export type HeaderMap = Record<string, string>;

/** Largest decompressed header block accepted from the peer (a guard against compression bombs). */
const MAX_HEADER_BLOCK_BYTES = 256 * 1024;

/** The uncompressed name/value block: count, then length-prefixed names and values (all 32-bit lengths). */
export function encodeHeaderBlock(headers: HeaderMap): Uint8Array {
  const encoder = new TextEncoder();
  const pairs = Object.entries(headers).map(([name, value]) => {
    if (name.length === 0 || name !== name.toLowerCase()) {
      throw new TypeError(`Cannot send SPDY header '${name}': names must be non-empty and lowercase`);
    }
    return [encoder.encode(name), encoder.encode(value)] as const;
  });
  const size = 4 + pairs.reduce((sum, [name, value]) => sum + 8 + name.length + value.length, 0);
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, pairs.length);
  let at = 4;
  for (const part of pairs.flat()) {
    view.setUint32(at, part.length);
    bytes.set(part, at + 4);
    at += 4 + part.length;
  }
  return bytes;
}

/** Parses an uncompressed name/value block; a malformed block is a protocol error. */
export function decodeHeaderBlock(bytes: Uint8Array): HeaderMap {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const fail = (detail: string): never => {
    throw new SpdyProtocolError(`Cannot read a SPDY header block: ${detail}`);
  };
  let at = 0;
  const field = (): string => {
    if (at + 4 > bytes.length) fail("it ends inside a length");
    const length = view.getUint32(at);
    if (at + 4 + length > bytes.length) fail("a length points past its end");
    let text: string;
    try {
      text = decoder.decode(bytes.subarray(at + 4, at + 4 + length));
    } catch {
      // found by fuzzing: the fatal decoder's TypeError escaped as an untyped error
      return fail(`a name or value at byte ${at + 4} is not valid UTF-8`);
    }
    at += 4 + length;
    return text;
  };
  if (bytes.length < 4) fail("it has no pair count");
  const count = view.getUint32(0);
  at = 4;
  const headers: HeaderMap = {};
  for (let i = 0; i < count; i++) {
    const name = field();
    if (name.length === 0) fail("a header name is empty");
    if (name !== name.toLowerCase()) fail(`header name '${name}' is not lowercase`);
    if (Object.hasOwn(headers, name)) fail(`header '${name}' appears twice`);
    headers[name] = field();
  }
  if (at !== bytes.length) fail(`${bytes.length - at} bytes follow the last pair`);
  return headers;
}

/**
 * The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00, section 2.6.10.1): the common
 * header names and values, each as a 32-bit big-endian length and the text, then one run of raw text.
 */
export const SPDY_DICTIONARY: Uint8Array = (() => {
  const words = [
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
  ];
  const tail = "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505" +
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized" +
    "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable" +
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT" +
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain," +
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";
  const parts: number[] = [];
  for (const word of words) {
    parts.push(0, 0, 0, word.length, ...new TextEncoder().encode(word));
  }
  parts.push(...new TextEncoder().encode(tail));
  return Uint8Array.from(parts);
})();

/** Adler-32 (RFC 1950), the checksum a zlib header uses to name its preset dictionary. */
export function adler32(bytes: Uint8Array): number {
  let a = 1;
  let b = 0;
  for (let i = 0; i < bytes.length; i++) {
    a = (a + bytes[i]) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/** zlib stream header: deflate with a 32 KiB window, default level, FDICT set, then the dictionary's Adler-32. */
function zlibHeaderWithDictionary(): Uint8Array {
  const cmf = 0x78;
  let flg = (2 << 6) | 0x20;
  flg += 31 - ((cmf * 256 + flg) % 31);
  const header = new Uint8Array(6);
  header[0] = cmf;
  header[1] = flg;
  new DataView(header.buffer).setUint32(2, adler32(SPDY_DICTIONARY));
  return header;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1) {
    return new Uint8Array(chunks[0].buffer, chunks[0].byteOffset, chunks[0].byteLength);
  }
  return concatBytes(chunks);
}

/**
 * Runs one zlib stream in steps: each step writes bytes and a Z_SYNC_FLUSH and yields exactly what they
 * produced. Steps run one at a time, in call order, because both ends share the stream's history.
 */
class ZlibSteps {
  readonly #stream: zlib.DeflateRaw | zlib.InflateRaw;
  #output: Uint8Array[] = [];
  #outputBytes = 0;
  #limit: number;
  #queue: Promise<unknown> = Promise.resolve();
  #error?: Error;

  constructor(stream: zlib.DeflateRaw | zlib.InflateRaw, limit = Infinity) {
    this.#stream = stream;
    this.#limit = limit;
    stream.on("data", (chunk: Uint8Array) => {
      this.#output.push(chunk);
      this.#outputBytes += chunk.length;
    });
    stream.on("error", (error: Error) => (this.#error ??= error));
  }

  step(input: Uint8Array): Promise<Uint8Array> {
    const result = this.#queue.then(() =>
      new Promise<Uint8Array>((resolve, reject) => {
        if (this.#error) return reject(this.#error);
        this.#stream.write(Buffer.from(input.buffer, input.byteOffset, input.byteLength));
        this.#stream.flush(zlib.constants.Z_SYNC_FLUSH, () => {
          const output = concat(this.#output);
          const size = this.#outputBytes;
          this.#output = [];
          this.#outputBytes = 0;
          if (this.#error) reject(this.#error);
          else if (size > this.#limit) {
            reject(new RangeError(`${size} bytes exceed the limit of ${this.#limit}`));
          } else resolve(output);
        });
      })
    );
    this.#queue = result.catch(() => {});
    return result;
  }

  close(): void {
    this.#stream.destroy();
  }
}

/**
 * Encodes our header blocks for one connection as one zlib stream made of stored (uncompressed) deflate
 * blocks. Any inflater reads that, so the peer's shared decompression context stays in step, and it costs
 * no zlib at all: no asynchronous round trip per SYN_STREAM (two per forwarded connection), no deflate state
 * per connection. Our blocks are some 60 bytes (port, requestid, streamtype), so compressing them would save
 * a few dozen bytes per connection.
 */
export class HeaderCompressor {
  #started = false;

  /** The zlib-stream form of one name/value block; must be called in the order the frames are sent. */
  compress(block: Uint8Array): Uint8Array {
    const blocks = Math.max(1, Math.ceil(block.length / MAX_STORED_BLOCK));
    const header = this.#started ? new Uint8Array(0) : zlibHeaderWithDictionary();
    this.#started = true;
    // + an empty stored block, as zlib's Z_SYNC_FLUSH ends its output: inflaters (Go's flate) hand over a
    // block's bytes only once they have read the header of the block after it
    const out = new Uint8Array(header.length + blocks * 5 + block.length + SYNC_MARKER.length);
    out.set(header);
    let at = header.length;
    for (let offset = 0, i = 0; i < blocks; i++, offset += MAX_STORED_BLOCK) {
      const piece = block.subarray(offset, offset + MAX_STORED_BLOCK);
      // BFINAL=0, BTYPE=00 (stored), padded to the byte; then LEN and its complement, little-endian
      out[at] = 0;
      out[at + 1] = piece.length & 0xff;
      out[at + 2] = piece.length >> 8;
      out[at + 3] = ~piece.length & 0xff;
      out[at + 4] = (~piece.length >> 8) & 0xff;
      out.set(piece, at + 5);
      at += 5 + piece.length;
    }
    out.set(SYNC_MARKER, at);
    return out;
  }
}

/** The largest stored deflate block (LEN is 16 bits). */
const MAX_STORED_BLOCK = 0xffff;
/** An empty stored block: what a zlib sync flush emits. */
const SYNC_MARKER = new Uint8Array([0x00, 0x00, 0x00, 0xff, 0xff]);

/**
 * Decompresses the peer's header blocks, one zlib stream per connection. Primed like HeaderCompressor (a
 * stored block holding the dictionary, output discarded) instead of relying on `{dictionary}` support.
 */
export class HeaderDecompressor {
  readonly #zlib = new ZlibSteps(zlib.createInflateRaw({ windowBits: 15 }), MAX_HEADER_BLOCK_BYTES);
  #started = false;

  constructor() {
    const stored = new Uint8Array(5 + SPDY_DICTIONARY.length);
    // BFINAL=0, BTYPE=00 (stored), then LEN and its complement, little-endian
    const view = new DataView(stored.buffer);
    view.setUint16(1, SPDY_DICTIONARY.length, true);
    view.setUint16(3, ~SPDY_DICTIONARY.length & 0xffff, true);
    stored.set(SPDY_DICTIONARY, 5);
    this.#zlib.step(stored).catch(() => {});
  }

  /** The name/value block of one compressed header block; calls complete in order. */
  async decompress(compressed: Uint8Array): Promise<Uint8Array> {
    let body = compressed;
    if (!this.#started) {
      this.#started = true;
      body = stripZlibHeader(compressed);
    }
    try {
      return await this.#zlib.step(body);
    } catch (error) {
      throw new SpdyProtocolError(`Cannot decompress a SPDY header block: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }

  close(): void {
    this.#zlib.close();
  }
}

/** Checks the zlib header of the peer's first block (deflate; no dictionary or the SPDY one) and drops it. */
function stripZlibHeader(bytes: Uint8Array): Uint8Array {
  if (bytes.length < 2 || (bytes[0] & 0x0f) !== 8 || ((bytes[0] << 8) | bytes[1]) % 31 !== 0) {
    throw new SpdyProtocolError("Cannot decompress SPDY headers: the first block has no zlib header");
  }
  if ((bytes[1] & 0x20) === 0) return bytes.subarray(2);
  const id = bytes.length >= 6 ? new DataView(bytes.buffer, bytes.byteOffset + 2, 4).getUint32(0) : -1;
  if (id !== adler32(SPDY_DICTIONARY)) {
    throw new SpdyProtocolError("Cannot decompress SPDY headers: the server uses an unknown zlib dictionary");
  }
  return bytes.subarray(6);
}
