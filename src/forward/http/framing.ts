/**
 * Incremental HTTP/1.x message framing: where each request and response starts and ends in a byte stream,
 * nothing more. Bytes are never rewritten: every piece is a view of the input, forwarded as it came, so a
 * body streams through without being buffered (only a message head is collected, bounded by MAX_HEAD_BYTES).
 *
 * Framing rules (RFC 9112 section 6): a request has a chunked body (Transfer-Encoding ending in chunked),
 * else a Content-Length body, else none. A response to HEAD, a 1xx, 204 and 304 have no body; a 101, or a
 * 2xx to CONNECT, switches the connection to another protocol (opaque from then on); otherwise chunked,
 * Content-Length, or everything until the server closes. 1xx other than 101 are interim: the final response
 * to the same request follows.
 */

import { concatBytes } from "../../bytes.ts";

/** A message head larger than this is refused (servers use 8-64 KiB). */
export const MAX_HEAD_BYTES = 64 * 1024;

export interface Head {
  /** The head's bytes as received, including the blank line. */
  raw: Uint8Array;
  /** Lower-case header names with their values (repeated headers joined by ", "). */
  headers: Map<string, string>;
  /** HTTP/1.0 or 1.1 (minor version). */
  minor: number;
}

export interface RequestHead extends Head {
  method: string;
  target: string;
}

export interface ResponseHead extends Head {
  status: number;
  /** What this response means for its request; set by the ResponseFramer. */
  meaning: ResponseKind;
}

export type Piece<H extends Head> =
  | { kind: "head"; head: H }
  | { kind: "body"; bytes: Uint8Array }
  | { kind: "end" }
  // bytes after a protocol switch, or after a request that asked for one (held until the answer is known)
  | { kind: "opaque"; bytes: Uint8Array };

export class FramingError extends Error {
  override name = "FramingError";
}

type BodyState =
  | { mode: "none" }
  | { mode: "length"; left: number }
  | { mode: "chunked"; chunk: ChunkedState }
  | { mode: "close" };

const CR = 13;
const LF = 10;
// UTF-8 (non-fatal) decodes 10x faster than latin1 here; only ASCII header names and framing values matter,
// and the bytes themselves are forwarded untouched
const headDecoder = new TextDecoder();

/** Collects head bytes across chunks; returns the index just after the head in `chunk`, or -1. */
class HeadCollector {
  #parts: Uint8Array[] = [];
  #size = 0;
  /** The last two bytes fed before the current chunk (-1: none), to find a terminator split over chunks. */
  #last1 = -1;
  #last2 = -1;

  get started(): boolean {
    return this.#size > 0;
  }

  /** Feeds bytes from `from`; returns the end offset of the head within chunk, or -1 when more is needed. */
  feed(chunk: Uint8Array, from: number): number {
    // line ends are found with indexOf (native), not byte by byte: heads are parsed once per message
    for (let lf = chunk.indexOf(LF, from); lf >= 0; lf = chunk.indexOf(LF, lf + 1)) {
      const b1 = this.#byteAt(chunk, from, lf - 1);
      // CRLF CRLF, or a bare LF LF (RFC 9112 allows recipients to accept bare LF)
      if (b1 === LF || (b1 === CR && this.#byteAt(chunk, from, lf - 2) === LF)) {
        this.#take(chunk, from, lf + 1);
        return lf + 1;
      }
    }
    this.#take(chunk, from, chunk.length);
    const n = chunk.length - from;
    if (n >= 2) {
      this.#last2 = chunk[chunk.length - 2];
      this.#last1 = chunk[chunk.length - 1];
    } else if (n === 1) {
      this.#last2 = this.#last1;
      this.#last1 = chunk[chunk.length - 1];
    }
    if (this.#size > MAX_HEAD_BYTES) {
      throw new FramingError(`message head larger than ${MAX_HEAD_BYTES} bytes`);
    }
    return -1;
  }

  #byteAt(chunk: Uint8Array, from: number, index: number): number {
    if (index >= from) return chunk[index];
    if (index === from - 1) return this.#last1;
    if (index === from - 2) return this.#last2;
    return -1;
  }

  #take(chunk: Uint8Array, from: number, to: number): void {
    if (to > from) {
      this.#parts.push(chunk.subarray(from, to));
      this.#size += to - from;
    }
  }

  /** The collected head, copied out of the input (its chunks are reused by their owners). */
  finish(): Uint8Array {
    const raw = this.#parts.length === 1 ? this.#parts[0].slice() : concatBytes(this.#parts);
    this.#parts = [];
    this.#size = 0;
    this.#last1 = -1;
    this.#last2 = -1;
    if (raw.length > MAX_HEAD_BYTES) {
      throw new FramingError(`message head larger than ${MAX_HEAD_BYTES} bytes`);
    }
    return raw;
  }
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function parseHeaderLines(lines: string[]): Map<string, string> {
  const headers = new Map<string, string>();
  for (let line of lines) {
    if (line.endsWith("\r")) line = line.slice(0, -1);
    if (line === "") continue;
    const colon = line.indexOf(":");
    if (colon <= 0) throw new FramingError("malformed header line");
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) throw new FramingError("malformed header name");
    const key = name.toLowerCase();
    const value = line.slice(colon + 1).trim();
    const before = headers.get(key);
    headers.set(key, before === undefined ? value : `${before}, ${value}`);
  }
  return headers;
}

function splitLines(raw: Uint8Array): string[] {
  const lines = headDecoder.decode(raw).split("\n");
  // only the first line is matched by a regex; header lines drop their CR in parseHeaderLines
  if (lines[0].endsWith("\r")) lines[0] = lines[0].slice(0, -1);
  return lines;
}

const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP\/1\.([0-9])$/;
const STATUS_LINE = /^HTTP\/1\.([0-9]) ([0-9]{3})(?: .*)?$/;

export function parseRequestHead(raw: Uint8Array): RequestHead {
  const lines = splitLines(raw);
  while (lines.length > 0 && lines[0] === "") lines.shift();
  const match = REQUEST_LINE.exec(lines[0] ?? "");
  if (!match) throw new FramingError("not an HTTP/1.x request line");
  return {
    raw,
    method: match[1],
    target: match[2],
    minor: Number(match[3]),
    headers: parseHeaderLines(lines.slice(1)),
  };
}

export function parseResponseHead(raw: Uint8Array): ResponseHead {
  const lines = splitLines(raw);
  const match = STATUS_LINE.exec(lines[0] ?? "");
  if (!match) throw new FramingError("not an HTTP/1.x status line");
  return {
    raw,
    status: Number(match[2]),
    minor: Number(match[1]),
    headers: parseHeaderLines(lines.slice(1)),
    meaning: "final",
  };
}

/** True when a comma-separated header (Connection, Transfer-Encoding) lists this token. */
export function hasToken(value: string | undefined, token: string): boolean {
  if (!value) return false;
  return value.split(",").some((part) => part.trim().toLowerCase() === token);
}

function contentLength(headers: Map<string, string>): number | undefined {
  const value = headers.get("content-length");
  if (value === undefined) return undefined;
  if (/^[0-9]{1,15}$/.test(value)) return Number(value);
  // repeated identical values ("5, 5") are allowed; differing ones are an attack vector (RFC 9112 6.3)
  const values = new Set(value.split(",").map((v) => v.trim()));
  if (values.size !== 1) throw new FramingError("conflicting Content-Length values");
  const [only] = values;
  if (!/^[0-9]{1,15}$/.test(only)) throw new FramingError("invalid Content-Length");
  return Number(only);
}

function isChunked(headers: Map<string, string>): boolean | undefined {
  const te = headers.get("transfer-encoding");
  if (te === undefined) return undefined;
  const codings = te.split(",").map((v) => v.trim().toLowerCase()).filter((v) => v !== "");
  return codings[codings.length - 1] === "chunked";
}

/** Does this request ask to switch protocols (Upgrade, CONNECT)? Its answer decides how to go on. */
export function asksForSwitch(head: RequestHead): boolean {
  return head.method === "CONNECT" ||
    (head.headers.has("upgrade") && hasToken(head.headers.get("connection"), "upgrade"));
}

/** The client wants the connection closed after this exchange. */
export function wantsClose(head: Head): boolean {
  const connection = head.headers.get("connection");
  if (hasToken(connection, "close")) return true;
  return head.minor === 0 && !hasToken(connection, "keep-alive");
}

// ------------------------------------------------------------------------------------------ chunked

type ChunkedStep = "size" | "ext" | "size-lf" | "data" | "data-cr" | "data-lf" | "trailer" | "trailer-lf";

interface ChunkedState {
  step: ChunkedStep;
  /** Bytes of chunk data left (step "data"); the chunk size being read (steps "size"/"ext"). */
  left: number;
  sizeDigits: number;
  last: boolean;
  /** Length of the trailer line being read (0 at a line start: an empty line ends the message). */
  lineLength: number;
}

function newChunked(): ChunkedState {
  return { step: "size", left: 0, sizeDigits: 0, last: false, lineLength: 0 };
}

function hexValue(b: number): number {
  if (b >= 48 && b <= 57) return b - 48;
  if (b >= 97 && b <= 102) return b - 87;
  if (b >= 65 && b <= 70) return b - 55;
  return -1;
}

/**
 * Advances the chunked decoder over chunk[from..]; returns the offset just past the message's end, or
 * -1 when the whole chunk belongs to the body. Chunk data is skipped in one step, not byte by byte.
 */
function advanceChunked(s: ChunkedState, chunk: Uint8Array, from: number): number {
  let i = from;
  while (i < chunk.length) {
    const b = chunk[i];
    switch (s.step) {
      case "size": {
        const v = hexValue(b);
        if (v >= 0) {
          if (++s.sizeDigits > 12) throw new FramingError("chunk size too large");
          s.left = s.left * 16 + v;
        } else if (s.sizeDigits === 0) throw new FramingError("malformed chunk size");
        else if (b === CR) s.step = "size-lf";
        else if (b === LF) i = chunkSizeDone(s, i);
        else if (b === 59 /* ; */ || b === 32 || b === 9) s.step = "ext";
        else throw new FramingError("malformed chunk size");
        i++;
        break;
      }
      case "ext":
        // chunk extensions are ignored (and forwarded untouched)
        if (b === CR) s.step = "size-lf";
        else if (b === LF) i = chunkSizeDone(s, i);
        i++;
        break;
      case "size-lf":
        if (b !== LF) throw new FramingError("malformed chunk size line");
        i = chunkSizeDone(s, i) + 1;
        break;
      case "data": {
        const take = Math.min(s.left, chunk.length - i);
        s.left -= take;
        i += take;
        if (s.left === 0) s.step = "data-cr";
        break;
      }
      case "data-cr":
        if (b === CR) s.step = "data-lf";
        else if (b === LF) s.step = "size";
        else throw new FramingError("chunk data longer than its size");
        i++;
        break;
      case "data-lf":
        if (b !== LF) throw new FramingError("chunk data longer than its size");
        s.step = "size";
        i++;
        break;
      case "trailer":
        i++;
        if (b === CR) {
          s.step = "trailer-lf";
        } else if (b === LF) {
          if (s.lineLength === 0) return i;
          s.lineLength = 0;
        } else s.lineLength++;
        break;
      case "trailer-lf":
        if (b !== LF) throw new FramingError("malformed trailer");
        i++;
        if (s.lineLength === 0) return i;
        s.lineLength = 0;
        s.step = "trailer";
        break;
    }
  }
  return -1;
}

/** The size line is read: the next step is its data, or the trailers after the last (0-size) chunk. */
function chunkSizeDone(s: ChunkedState, i: number): number {
  s.sizeDigits = 0;
  if (s.left === 0) {
    s.last = true;
    s.step = "trailer";
    s.lineLength = 0;
  } else s.step = "data";
  return i;
}

// ------------------------------------------------------------------------------------------ framers

/** Walks the body of the current message over chunk[from..]: the pieces, and where the next message starts. */
function walkBody<H extends Head>(
  body: BodyState,
  chunk: Uint8Array,
  from: number,
  out: Piece<H>[],
): { next: number; ended: boolean } {
  switch (body.mode) {
    case "none":
      out.push({ kind: "end" });
      return { next: from, ended: true };
    case "close":
      if (from < chunk.length) out.push({ kind: "body", bytes: chunk.subarray(from) });
      return { next: chunk.length, ended: false };
    case "length": {
      const take = Math.min(body.left, chunk.length - from);
      if (take > 0) out.push({ kind: "body", bytes: chunk.subarray(from, from + take) });
      body.left -= take;
      if (body.left > 0) return { next: chunk.length, ended: false };
      out.push({ kind: "end" });
      return { next: from + take, ended: true };
    }
    case "chunked": {
      const end = advanceChunked(body.chunk, chunk, from);
      const to = end < 0 ? chunk.length : end;
      if (to > from) out.push({ kind: "body", bytes: chunk.subarray(from, to) });
      if (end < 0) return { next: chunk.length, ended: false };
      out.push({ kind: "end" });
      return { next: end, ended: true };
    }
  }
}

/**
 * Frames the requests a client sends on one connection. After a request that asks for a protocol switch
 * (Upgrade, CONNECT) the following bytes are held back as "opaque" until the caller knows the answer:
 * `switched()` (101 / 2xx to CONNECT: everything from now on is opaque) or `notSwitched()` (go on framing).
 */
export class RequestFramer {
  #head = new HeadCollector();
  #body?: BodyState;
  #held: Uint8Array[] = [];
  #state: "http" | "held" | "opaque" = "http";

  /** True between messages (no head or body in progress): a good moment to change pods. */
  get idle(): boolean {
    return this.#state === "http" && !this.#body && !this.#head.started;
  }

  push(chunk: Uint8Array): Piece<RequestHead>[] {
    const out: Piece<RequestHead>[] = [];
    this.#walk(chunk, 0, out);
    return out;
  }

  #walk(chunk: Uint8Array, from: number, out: Piece<RequestHead>[]): void {
    let i = from;
    while (i < chunk.length) {
      if (this.#state === "opaque") {
        out.push({ kind: "opaque", bytes: chunk.subarray(i) });
        return;
      }
      if (this.#state === "held") {
        // copied: the caller's read buffer is reused before the answer comes
        this.#held.push(chunk.slice(i));
        return;
      }
      if (!this.#body) {
        // blank lines between requests are tolerated (RFC 9112 2.2)
        if (!this.#head.started && (chunk[i] === CR || chunk[i] === LF)) {
          i++;
          continue;
        }
        const end = this.#head.feed(chunk, i);
        if (end < 0) return;
        i = end;
        const head = parseRequestHead(this.#head.finish());
        this.#body = requestBody(head);
        out.push({ kind: "head", head });
        if (asksForSwitch(head)) this.#pendingSwitch = true;
      }
      const { next, ended } = walkBody(this.#body, chunk, i, out);
      i = next;
      if (ended) {
        this.#body = undefined;
        if (this.#pendingSwitch) {
          this.#pendingSwitch = false;
          this.#state = "held";
        }
      }
    }
  }

  #pendingSwitch = false;

  /** The server switched protocols: the held bytes, and from now on every byte is opaque. */
  switched(): Uint8Array[] {
    this.#pendingSwitch = false;
    this.#state = "opaque";
    const held = this.#held;
    this.#held = [];
    return held;
  }

  /** The server refused the switch: frame the held bytes as requests again (none held yet: nothing to hold). */
  notSwitched(): Piece<RequestHead>[] {
    this.#pendingSwitch = false;
    if (this.#state !== "held") return [];
    this.#state = "http";
    const held = this.#held;
    this.#held = [];
    const out: Piece<RequestHead>[] = [];
    for (const chunk of held) this.#walk(chunk, 0, out);
    return out;
  }
}

function requestBody(head: RequestHead): BodyState {
  const chunked = isChunked(head.headers);
  if (chunked === false) throw new FramingError("request Transfer-Encoding without chunked");
  if (chunked) return { mode: "chunked", chunk: newChunked() };
  const length = contentLength(head.headers) ?? 0;
  return length > 0 ? { mode: "length", left: length } : { mode: "none" };
}

/** What a response means for the exchange, known once its head is parsed. */
export type ResponseKind = "interim" | "final" | "switch";

/**
 * Frames the responses a server sends on one connection. Each response belongs to the oldest request
 * without a final response, whose method the caller announces with `expect()` when it sends the request
 * (HEAD and CONNECT change the framing). `end()` tells it the server closed: a close-delimited body ends.
 */
export class ResponseFramer {
  #head = new HeadCollector();
  #body?: BodyState;
  #methods: string[] = [];
  #opaque = false;
  /** The meaning of the response whose head came last. */
  #kind: ResponseKind = "final";

  expect(method: string): void {
    this.#methods.push(method);
  }

  /** Requests sent whose final response has not ended yet. */
  get pending(): number {
    return this.#methods.length;
  }

  /** True while a response head or body is in progress. */
  get inMessage(): boolean {
    return this.#body !== undefined || this.#head.started;
  }

  /** The current body runs until the server closes (no length, not chunked). */
  get closeDelimited(): boolean {
    return this.#body?.mode === "close";
  }

  push(chunk: Uint8Array): Piece<ResponseHead>[] {
    const out: Piece<ResponseHead>[] = [];
    let i = 0;
    while (i < chunk.length) {
      if (this.#opaque) {
        out.push({ kind: "opaque", bytes: chunk.subarray(i) });
        break;
      }
      if (!this.#body) {
        // stray line ends between responses are skipped like between requests
        if (!this.#head.started && (chunk[i] === CR || chunk[i] === LF)) {
          i++;
          continue;
        }
        if (this.#methods.length === 0) throw new FramingError("response without a request");
        const end = this.#head.feed(chunk, i);
        if (end < 0) break;
        i = end;
        const head = parseResponseHead(this.#head.finish());
        this.#body = this.#responseBody(head);
        head.meaning = this.#kind;
        out.push({ kind: "head", head });
      }
      const { next, ended } = walkBody(this.#body, chunk, i, out);
      i = next;
      if (ended) this.#ended();
    }
    return out;
  }

  /** The server closed its side: a close-delimited response is complete. */
  end(): Piece<ResponseHead>[] {
    if (this.#body?.mode !== "close") return [];
    this.#ended();
    return [{ kind: "end" }];
  }

  #ended(): void {
    this.#body = undefined;
    if (this.#kind === "final") this.#methods.shift();
    if (this.#kind === "switch") {
      this.#methods.shift();
      this.#opaque = true;
    }
  }

  #responseBody(head: ResponseHead): BodyState {
    const method = this.#methods[0];
    if (head.status === 101 || (method === "CONNECT" && head.status >= 200 && head.status < 300)) {
      this.#kind = "switch";
      return { mode: "none" };
    }
    if (head.status < 200) {
      this.#kind = "interim";
      return { mode: "none" };
    }
    this.#kind = "final";
    if (method === "HEAD" || head.status === 204 || head.status === 304) return { mode: "none" };
    const chunked = isChunked(head.headers);
    if (chunked) return { mode: "chunked", chunk: newChunked() };
    if (chunked === false) return { mode: "close" };
    const length = contentLength(head.headers);
    if (length === undefined) return { mode: "close" };
    return length > 0 ? { mode: "length", left: length } : { mode: "none" };
  }
}

/** What the first bytes of a connection are: an HTTP/1.x request, something else, or too few bytes to tell. */
export function sniffProtocol(bytes: Uint8Array): "http" | "tcp" | "more" {
  const limit = Math.min(bytes.length, 8 * 1024);
  let i = 0;
  // method: a token of upper-case letters (every registered method), then one space
  while (i < limit && bytes[i] >= 65 && bytes[i] <= 90) i++;
  if (i === limit) return i < 8 * 1024 && i < 20 ? "more" : "tcp";
  if (i === 0 || i > 20 || bytes[i] !== 32) return "tcp";
  i++;
  // request target: visible characters up to the next space
  const targetStart = i;
  while (i < limit && bytes[i] > 32 && bytes[i] < 127) i++;
  if (i === limit) return limit < 8 * 1024 ? "more" : "tcp";
  if (i === targetStart || bytes[i] !== 32) return "tcp";
  i++;
  const version = "HTTP/1.";
  for (let k = 0; k < version.length + 1; k++, i++) {
    if (i >= bytes.length) return "more";
    if (k < version.length) {
      if (bytes[i] !== version.charCodeAt(k)) return "tcp";
    } else if (bytes[i] < 48 || bytes[i] > 57) return "tcp";
  }
  if (i >= bytes.length) return "more";
  return bytes[i] === CR || bytes[i] === LF ? "http" : "tcp";
}

/** Methods whose repetition has the same effect as one request (RFC 9110 9.2.2). */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

/** May this request be sent again to another pod when the first one went away before answering? */
export function isReplayable(head: RequestHead): boolean {
  return IDEMPOTENT.has(head.method) || head.headers.has("idempotency-key");
}

/** The path of a request target without its query (for the request log: queries may hold secrets). */
export function pathOf(target: string): string {
  let path = target;
  const scheme = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?#]*/.exec(path);
  if (scheme) path = path.slice(scheme[0].length) || "/";
  const cut = path.search(/[?#]/);
  return cut < 0 ? path : path.slice(0, cut);
}
