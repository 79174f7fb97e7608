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

/** A message head larger than this is refused (servers use 8-64 KiB). */
export const MAX_HEAD_BYTES = 64 * 1024;

/**
 * The header fields that framing and replay decisions read, as received (repeated fields joined by ", ").
 * Every other header is forwarded without being looked at.
 */
export interface FramingFields {
  contentLength?: string;
  transferEncoding?: string;
  connection?: string;
  upgrade?: string;
  idempotencyKey?: string;
}

export interface Head {
  /**
   * The head's bytes as received, including the blank line. A request head is a copy; a response head is
   * a view of the pushed chunk when it came in one piece (valid as long as the caller's chunk).
   */
  raw: Uint8Array;
  fields: FramingFields;
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

/** The end of a head that starts at chunk[from] and ends in this chunk (just after its blank line), or -1. */
function headEndIn(chunk: Uint8Array, from: number): number {
  // a plain loop: Uint8Array.indexOf costs more per call (~0.2 us) than scanning a header line
  for (let i = from + 1; i < chunk.length; i++) {
    if (chunk[i] !== LF) continue;
    const b1 = chunk[i - 1];
    // CRLF CRLF, or a bare LF LF (RFC 9112 allows recipients to accept bare LF)
    if (b1 === LF || (b1 === CR && i - 2 >= from && chunk[i - 2] === LF)) return i + 1;
  }
  return -1;
}

/** Bytes of one slab of head copies (a connection's heads of several requests share one allocation). */
const SLAB_BYTES = 4096;

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
    // the usual case, a whole head in one chunk, without collecting parts
    if (this.#size === 0) {
      const end = headEndIn(chunk, from);
      if (end >= 0) {
        this.#parts.push(chunk.subarray(from, end));
        this.#size = end - from;
        return end;
      }
    }
    for (let lf = from; lf < chunk.length; lf++) {
      if (chunk[lf] !== LF) continue;
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

  /** Heads are copied into slices of a shared slab: a new typed array costs ~1 us, a view of one ~0.1 us. */
  #slab?: Uint8Array;
  #slabUsed = 0;

  #allocate(size: number): Uint8Array {
    if (size > SLAB_BYTES / 4) return new Uint8Array(size);
    if (!this.#slab || this.#slabUsed + size > SLAB_BYTES) {
      // the old slab lives on only as long as heads still in use point into it
      this.#slab = new Uint8Array(SLAB_BYTES);
      this.#slabUsed = 0;
    }
    const out = this.#slab.subarray(this.#slabUsed, this.#slabUsed + size);
    this.#slabUsed += size;
    return out;
  }

  #take(chunk: Uint8Array, from: number, to: number): void {
    if (to > from) {
      this.#parts.push(chunk.subarray(from, to));
      this.#size += to - from;
    }
  }

  /**
   * The collected head. Copied out of the input when `copy` (a head kept past the call) or when it came in
   * pieces; else a view of the chunk. A copy may be a view of a larger slab.
   */
  finish(copy: boolean): Uint8Array {
    const parts = this.#parts;
    const size = this.#size;
    this.#parts = [];
    this.#size = 0;
    this.#last1 = -1;
    this.#last2 = -1;
    if (size > MAX_HEAD_BYTES) throw new FramingError(`message head larger than ${MAX_HEAD_BYTES} bytes`);
    if (!copy && parts.length === 1) return parts[0];
    const out = this.#allocate(size);
    let offset = 0;
    for (const part of parts) {
      out.set(part, offset);
      offset += part.length;
    }
    return out;
  }
}

// Heads are read as bytes, not decoded to text: only the request/status line and the few fields in
// FramingFields become strings; every header name is still checked to be a token (RFC 9110 5.1).
const SP = 32;
const HT = 9;
const COLON = 58;
const TOKEN_BYTE = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") {
  TOKEN_BYTE[c.charCodeAt(0)] = 1;
}

/** Bytes that end a request target (what a regex's \s matches in a line). */
function isSpaceByte(b: number): boolean {
  return b === SP || (b >= HT && b <= CR);
}

/** The text of raw[from..to): ASCII built directly, anything else (or a long run) through the decoder. */
function textOf(raw: Uint8Array, from: number, to: number): string {
  if (to - from <= 32) {
    let text = "";
    for (let i = from; i < to; i++) {
      const b = raw[i];
      if (b >= 0x80) return headDecoder.decode(raw.subarray(from, to));
      text += String.fromCharCode(b);
    }
    return text;
  }
  return headDecoder.decode(raw.subarray(from, to));
}

/** Does raw[from..from+name.length) spell `name` (lower-case) in any case? Only called on token bytes. */
function nameIs(raw: Uint8Array, from: number, name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    // on token bytes, | 0x20 folds exactly the upper-case letters (and leaves '-' alone)
    if ((raw[from + i] | 0x20) !== name.charCodeAt(i)) return false;
  }
  return true;
}

/** The FramingFields key of a header name at raw[from..from+length), or undefined for any other header. */
function fieldOf(raw: Uint8Array, from: number, length: number): keyof FramingFields | undefined {
  switch (length) {
    case 7:
      return nameIs(raw, from, "upgrade") ? "upgrade" : undefined;
    case 10:
      return nameIs(raw, from, "connection") ? "connection" : undefined;
    case 14:
      return nameIs(raw, from, "content-length") ? "contentLength" : undefined;
    case 15:
      return nameIs(raw, from, "idempotency-key") ? "idempotencyKey" : undefined;
    case 17:
      return nameIs(raw, from, "transfer-encoding") ? "transferEncoding" : undefined;
  }
  return undefined;
}

/** The index of the LF ending the line that starts at `from` (or raw.length). */
function lfFrom(raw: Uint8Array, from: number): number {
  let i = from;
  while (i < raw.length && raw[i] !== LF) i++;
  return i;
}

/** The end of a line's content: before its LF, and before a CR right before it. */
function contentEnd(raw: Uint8Array, from: number, lf: number): number {
  return lf > from && raw[lf - 1] === CR ? lf - 1 : lf;
}

/** Checks every header line from `from` on and collects the framing fields. */
function parseFields(raw: Uint8Array, from: number): FramingFields {
  // every field present from the start: one object shape for all heads keeps property access monomorphic
  const fields: FramingFields = {
    contentLength: undefined,
    transferEncoding: undefined,
    connection: undefined,
    upgrade: undefined,
    idempotencyKey: undefined,
  };
  let start = from;
  while (start < raw.length) {
    let colon = start;
    while (colon < raw.length && TOKEN_BYTE[raw[colon]] === 1) colon++;
    const lf = lfFrom(raw, colon);
    const end = contentEnd(raw, start, lf);
    if (end > start) {
      if (colon === start || raw[colon] !== COLON) {
        const anyColon = raw.subarray(start, end).indexOf(COLON);
        throw new FramingError(anyColon <= 0 ? "malformed header line" : "malformed header name");
      }
      const key = fieldOf(raw, start, colon - start);
      if (key !== undefined) {
        let from = colon + 1;
        let to = end;
        while (from < to && isSpaceByte(raw[from])) from++;
        while (to > from && isSpaceByte(raw[to - 1])) to--;
        const value = textOf(raw, from, to);
        const before = fields[key];
        fields[key] = before === undefined ? value : `${before}, ${value}`;
      }
    }
    start = lf + 1;
  }
  return fields;
}

const HTTP_1 = [72, 84, 84, 80, 47, 49, 46]; // "HTTP/1."

/** Does raw[at..] start with "HTTP/1." and a digit? Returns the digit's value, or -1. */
function versionAt(raw: Uint8Array, at: number, end: number): number {
  if (end - at < 8) return -1;
  for (let k = 0; k < 7; k++) if (raw[at + k] !== HTTP_1[k]) return -1;
  const digit = raw[at + 7] - 48;
  return digit >= 0 && digit <= 9 ? digit : -1;
}

export function parseRequestHead(raw: Uint8Array): RequestHead {
  let start = 0;
  // blank lines before a request are tolerated (RFC 9112 2.2)
  while (start < raw.length && (raw[start] === CR || raw[start] === LF)) start++;
  const lf = lfFrom(raw, start);
  const end = contentEnd(raw, start, lf);
  let i = start;
  while (i < end && TOKEN_BYTE[raw[i]] === 1) i++;
  const methodEnd = i;
  if (methodEnd === start || raw[i] !== SP) throw new FramingError("not an HTTP/1.x request line");
  const targetStart = ++i;
  while (i < end && !isSpaceByte(raw[i])) i++;
  const targetEnd = i;
  const minor = raw[i] === SP && targetEnd > targetStart && end - i === 9 ? versionAt(raw, i + 1, end) : -1;
  if (minor < 0) throw new FramingError("not an HTTP/1.x request line");
  return {
    raw,
    method: methodOf(raw, start, methodEnd),
    target: textOf(raw, targetStart, targetEnd),
    minor,
    fields: parseFields(raw, lf + 1),
  };
}

const COMMON_METHODS = ["GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "PATCH"];

/** The method's name; a common one without building a new string. */
function methodOf(raw: Uint8Array, from: number, to: number): string {
  for (const method of COMMON_METHODS) {
    if (method.length !== to - from) continue;
    let same = true;
    for (let k = 0; k < method.length && same; k++) same = raw[from + k] === method.charCodeAt(k);
    if (same) return method;
  }
  return textOf(raw, from, to);
}

export function parseResponseHead(raw: Uint8Array): ResponseHead {
  const lf = lfFrom(raw, 0);
  const end = contentEnd(raw, 0, lf);
  const minor = versionAt(raw, 0, end);
  let status = 0;
  let valid = minor >= 0 && end >= 12 && raw[8] === SP;
  for (let k = 9; k < 12 && valid; k++) {
    const digit = raw[k] - 48;
    valid = digit >= 0 && digit <= 9;
    status = status * 10 + digit;
  }
  // after the code: nothing, or a space and a reason phrase (without a stray CR)
  if (valid && end > 12) valid = raw[12] === SP;
  for (let k = 13; k < end && valid; k++) valid = raw[k] !== CR;
  if (!valid) throw new FramingError("not an HTTP/1.x status line");
  return { raw, status, minor, fields: parseFields(raw, lf + 1), meaning: "final" };
}

/** True when a comma-separated header (Connection, Transfer-Encoding) lists this token. */
export function hasToken(value: string | undefined, token: string): boolean {
  if (!value) return false;
  // the usual single value ("keep-alive", "close"; already trimmed) needs no split
  if (value.indexOf(",") < 0) return value.length === token.length && value.toLowerCase() === token;
  return value.split(",").some((part) => part.trim().toLowerCase() === token);
}

/** The value of 1 to 15 decimal digits, or -1 for anything else. */
function decimalValue(text: string): number {
  if (text.length === 0 || text.length > 15) return -1;
  let value = 0;
  for (let i = 0; i < text.length; i++) {
    const digit = text.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value;
}

function contentLength(fields: FramingFields): number | undefined {
  const value = fields.contentLength;
  if (value === undefined) return undefined;
  const plain = decimalValue(value);
  if (plain >= 0) return plain;
  if (/^[0-9]{1,15}$/.test(value)) return Number(value);
  // repeated identical values ("5, 5") are allowed; differing ones are an attack vector (RFC 9112 6.3)
  const values = new Set(value.split(",").map((v) => v.trim()));
  if (values.size !== 1) throw new FramingError("conflicting Content-Length values");
  const [only] = values;
  if (!/^[0-9]{1,15}$/.test(only)) throw new FramingError("invalid Content-Length");
  return Number(only);
}

function isChunked(fields: FramingFields): boolean | undefined {
  const te = fields.transferEncoding;
  if (te === undefined) return undefined;
  const codings = te.split(",").map((v) => v.trim().toLowerCase()).filter((v) => v !== "");
  return codings[codings.length - 1] === "chunked";
}

/** Does this request ask to switch protocols (Upgrade, CONNECT)? Its answer decides how to go on. */
export function asksForSwitch(head: RequestHead): boolean {
  return head.method === "CONNECT" ||
    (head.fields.upgrade !== undefined && hasToken(head.fields.connection, "upgrade"));
}

/** The client wants the connection closed after this exchange. */
export function wantsClose(head: Head): boolean {
  const connection = head.fields.connection;
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

  /** A head is in progress: views of the chunks pushed so far are kept (the caller must not reuse them). */
  get holdsInput(): boolean {
    return this.#head.started;
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
        // copied: the caller keeps it (replay) past this call
        const head = parseRequestHead(this.#head.finish(true));
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
  const chunked = isChunked(head.fields);
  if (chunked === false) throw new FramingError("request Transfer-Encoding without chunked");
  if (chunked) return { mode: "chunked", chunk: newChunked() };
  const length = contentLength(head.fields) ?? 0;
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
        // read only now, for framing: a view of the chunk when it came whole
        const head = parseResponseHead(this.#head.finish(false));
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
    const chunked = isChunked(head.fields);
    if (chunked) return { mode: "chunked", chunk: newChunked() };
    if (chunked === false) return { mode: "close" };
    const length = contentLength(head.fields);
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
  return IDEMPOTENT.has(head.method) || head.fields.idempotencyKey !== undefined;
}

/** The path of a request target without its query (for the request log: queries may hold secrets). */
export function pathOf(target: string): string {
  let path = target;
  const scheme = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?#]*/.exec(path);
  if (scheme) path = path.slice(scheme[0].length) || "/";
  const cut = path.search(/[?#]/);
  return cut < 0 ? path : path.slice(0, cut);
}
