/**
 * One local HTTP/1.x connection, run request by request. Each request that finds the connection idle picks
 * its pod (sticky or round-robin) and reuses an upstream to that pod while it stays open; pipelined requests
 * follow the one before them on the same upstream. When the upstream goes away:
 *
 * - between requests: nothing happens; the next request opens a new one to a ready pod;
 * - before a response started: an idempotent request (or one with an Idempotency-Key) is sent again, from a
 *   bounded copy, to another pod; any other request gets a 502 from kf, because the dead pod may already
 *   have executed it and resending would execute it twice;
 * - after a response started: the client's connection is cut, as in plain TCP mode.
 *
 * A 101 (or a 2xx to CONNECT) makes the rest of the connection opaque bytes on that upstream. Bodies are
 * never held whole: the only copies are a request's replay buffer (up to REPLAY_LIMIT, then the request is
 * no longer resendable) and the bytes the kernel and stream queues hold under the same high-water marks
 * as the TCP tunnel.
 */

import type { Clock } from "../../clock.ts";
import { PodPortError, type PodStream } from "../../transport/mod.ts";
import { watchLiveness } from "../liveness.ts";
import type { TunnelCounters, TunnelResult } from "../tunnel.ts";
import type { Upstream } from "../prewarm.ts";
import { concatBytes } from "../../bytes.ts";
import {
  asksForSwitch,
  FramingError,
  isReplayable,
  pathOf,
  type Piece,
  RequestFramer,
  type RequestHead,
  ResponseFramer,
  type ResponseHead,
  wantsClose,
} from "./framing.ts";
import { LocalWriter } from "../local_end.ts";
import type { Endpoint } from "../picker.ts";
import { keepAliveHead } from "./keep_alive.ts";
import { abortRoutine } from "../../abort.ts";

/** Upload bytes queued in one upstream before the client's socket is no longer read. */
const UPLOAD_HIGH_WATER = 1 << 20;
/** Download bytes queued toward the client before the upstream is paused. */
const DOWNLOAD_HIGH_WATER = 1 << 20;
/** A request's bytes kept for a resend; a larger request is not resent. */
const REPLAY_LIMIT = 1 << 20;
/** Sends of one request while pods keep vanishing under it. */
const MAX_ATTEMPTS = 6;
/** Idle upstreams a connection keeps per pod (round-robin returns to each pod in turn). */
const MAX_PARKED = 4;
const PING_IDLE_MS = 20_000;
const PING_TIMEOUT_MS = 10_000;
/** Local reads grow from MIN to MAX while bulk flows (see src/forward/tunnel.ts for why 256 KiB). */
const MIN_READ_CHUNK = 4 * 1024;
const MAX_READ_CHUNK = 256 * 1024;
/** After the client's EOF on an upgraded connection, how long the pod may go on sending (v4 has no half-close). */
const OPAQUE_LINGER_MS = 2_000;

/** One finished request, for the request log. Header values are never part of it. */
export interface RequestLogEntry {
  method: string;
  /** The target's path, without query or fragment. */
  path: string;
  status: number;
  pod?: string;
  durationMs: number;
  /** Request bytes (head and body) from the client. */
  bytesOut: number;
  /** Response bytes to the client. */
  bytesIn: number;
}

export interface HttpConnectionOptions {
  local: Deno.Conn;
  counters: TunnelCounters;
  signal: AbortSignal;
  clock: Clock;
  /** Bytes the forward already read from the client while telling HTTP from other protocols. */
  initial?: Uint8Array;
  /** An upstream opened when the client connected, for the first request. */
  first?: Promise<Upstream>;
  /** The pod the next request on an idle connection should go to now; undefined when none is ready. */
  choose(exclude: ReadonlySet<string>): string | undefined;
  /**
   * An upstream to a ready pod (preferably `prefer`), waiting (bounded) for one. `reuse`: one that an earlier
   * connection left open may do (only for a request that can be resent, see kept_upstreams.ts).
   */
  acquire(
    exclude: ReadonlySet<string>,
    signal: AbortSignal,
    prefer?: string,
    reuse?: boolean,
  ): Promise<Upstream>;
  /**
   * Takes an idle upstream whose server keeps it open, for the port's next connections; without it, idle
   * upstreams are released when the connection ends, and requests go upstream as the client sent them.
   */
  keep?(upstream: Upstream): void;
  onPodFailed?(pod: string, error: Error): void;
  /** Every answered request (status 0: none reached the client), for the forward's counters. */
  onAnswered?(status: number, pod: string | undefined): void;
  /** Every finished request, for the request log; unset when nobody logs (an entry costs a path parse). */
  onRequest?(entry: RequestLogEntry): void;
}

/** A request and its response. */
interface Exchange {
  head: RequestHead;
  replayable: boolean;
  /** Chunks of the request so far, while they may still be needed. */
  frames: Uint8Array[];
  frameBytes: number;
  /** frames holds the whole request so far (false once past REPLAY_LIMIT after it was sent). */
  kept: boolean;
  /** The whole request has been read from the client. */
  complete: boolean;
  state: "queued" | "sent" | "failed";
  /** A final response byte reached the client: no resend possible. */
  responseStarted: boolean;
  status?: number;
  /** The answer switched protocols (101, or 2xx to CONNECT). */
  switched?: boolean;
  /** Why kf answers this request itself (state "failed"). */
  failure?: { status: number; message: string; pod?: string };
  pod?: string;
  attempts: number;
  startedAt: number;
  bytesOut: number;
  bytesIn: number;
  /** Waiters for the request to be sent (a queued request past REPLAY_LIMIT stops the client's reads). */
  sent?: PromiseWithResolvers<void>;
}

/** One upstream: a pod stream carrying requests in order. */
interface Link {
  stream: PodStream;
  pod: string;
  endpoint: Endpoint;
  /** It came from an earlier connection: its closing before an answer says nothing about the pod. */
  reused: boolean;
  /** The server's last response did not ask to close: the link may be kept after this connection. */
  keepAlive: boolean;
  framer: ResponseFramer;
  error?: Error;
  closed: boolean;
  uploadInFlight: number;
  drained?: PromiseWithResolvers<void>;
  paused: boolean;
  downloadQueued: number;
  detach(): void;
}

export class HttpConnection {
  readonly #options: HttpConnectionOptions;
  readonly #writer: LocalWriter;
  readonly #framer = new RequestFramer();
  readonly #abort = new AbortController();
  readonly #done = Promise.withResolvers<void>();
  /** Exchanges in request order, until their response ends. */
  readonly #queue: Exchange[] = [];
  /** The upstream requests go to now. */
  #link?: Link;
  /** Idle upstreams by pod, for the next requests. */
  readonly #parked = new Map<string, Link>();
  /** Pods that failed this connection recently; forgotten after a good response. */
  readonly #exclude = new Set<string>();
  /** Pods the forward saw deleted while this connection had a stream to them. */
  readonly #deleted = new Set<string>();
  /** The exchange whose request bytes are arriving. */
  #current?: Exchange;
  #first?: Promise<Upstream>;
  #result: TunnelResult = {};
  #finished = false;
  #localEnded = false;
  /** After a 101: every byte goes to this link as is. */
  #opaque?: Link;
  /** Resolves when a requested protocol switch was answered (the client's reads wait for it). */
  #switchAnswered?: PromiseWithResolvers<void>;
  #dispatching?: Promise<void>;
  #dispatchAgain = false;
  #readChunk = MIN_READ_CHUNK;
  /** The last read buffer when nothing kept a view of it: the next read goes into it. */
  #spareBuffer?: Uint8Array;
  /** A view of the current read buffer was sent or kept. */
  #bufferTaken = false;
  #closeAfter = false;

  constructor(options: HttpConnectionOptions) {
    this.#options = options;
    this.#first = options.first;
    this.#writer = new LocalWriter(options.local);
  }

  /** The pods this connection holds upstreams to. */
  pods(): string[] {
    const pods = new Set(this.#parked.keys());
    if (this.#link) pods.add(this.#link.pod);
    return [...pods];
  }

  /** The pod the current upstream goes to. */
  get pod(): string | undefined {
    return this.#link?.pod;
  }

  /** Ends the connection now (forward stopping). */
  close(): void {
    abortRoutine(this.#abort);
  }

  /** The pod was deleted: its upstreams are dead; requests in flight follow the replay rule. */
  podDeleted(pod: string): void {
    this.#deleted.add(pod);
    const parked = this.#parked.get(pod);
    if (parked) parked.stream.reset();
    if (this.#link?.pod === pod) this.#link.stream.reset();
  }

  async run(): Promise<TunnelResult> {
    const { signal } = this.#options;
    const onStop = () => this.#finish(false);
    signal.addEventListener("abort", onStop, { once: true });
    this.#abort.signal.addEventListener("abort", onStop, { once: true });
    if (signal.aborted) this.#finish(false);
    const reading = this.#readLoop();
    await this.#done.promise;
    signal.removeEventListener("abort", onStop);
    await reading;
    return this.#result;
  }

  // ---------------------------------------------------------------------------------- client -> pod

  async #readLoop(): Promise<void> {
    try {
      if (this.#options.initial) await this.#onClientBytes(this.#options.initial);
      // below, a promise is awaited only when there is one: most requests go out without waiting
      while (!this.#finished) {
        if (this.#switchAnswered) await this.#switchAnswered.promise;
        if (this.#finished) break;
        // a new typed array costs microseconds: a buffer of which nothing was kept is read into again
        let buffer = this.#spareBuffer;
        this.#spareBuffer = undefined;
        if (buffer?.length !== this.#readChunk) buffer = new Uint8Array(this.#readChunk);
        const n = await this.#options.local.read(buffer);
        if (n === null) break;
        this.#readChunk = n === this.#readChunk
          ? Math.min(n * 2, MAX_READ_CHUNK)
          : Math.max(MIN_READ_CHUNK, n);
        this.#bufferTaken = false;
        const waiting = this.#onClientBytes(buffer.subarray(0, n));
        if (waiting) await waiting;
        // heads are copied; bytes sent as they are (bodies, opaque bytes) or a head still arriving are not
        if (!this.#bufferTaken && !this.#framer.holdsInput) this.#spareBuffer = buffer;
      }
      this.#onClientEnd();
    } catch (error) {
      if (error instanceof FramingError) {
        this.#fail(new Error(`not HTTP/1.x from the client: ${error.message}`), true);
      } else if (!this.#finished) this.#finish(true);
    }
  }

  /**
   * Returns a promise only when the client's next read has to wait (a pod to be found, backpressure): an
   * async function and an await per read and per piece cost more than the framing itself.
   */
  #onClientBytes(bytes: Uint8Array): Promise<void> | undefined {
    this.#options.counters.bytesOut += bytes.length;
    if (this.#opaque) {
      this.#bufferTaken = true;
      return this.#sendOpaque(this.#opaque, bytes);
    }
    const pieces = this.#framer.push(bytes);
    for (let i = 0; i < pieces.length; i++) {
      const waiting = this.#onRequestPiece(pieces[i]);
      if (waiting) return this.#onRequestPiecesAfter(waiting, pieces, i + 1);
    }
  }

  async #onRequestPiecesAfter(
    waiting: Promise<void>,
    pieces: Piece<RequestHead>[],
    from: number,
  ): Promise<void> {
    await waiting;
    for (let i = from; i < pieces.length; i++) await this.#onRequestPiece(pieces[i]);
  }

  #onRequestPiece(piece: Piece<RequestHead>): Promise<void> | undefined {
    if (this.#finished) return;
    switch (piece.kind) {
      case "head": {
        const head = piece.head;
        const exchange: Exchange = {
          head,
          replayable: isReplayable(head),
          frames: [],
          frameBytes: 0,
          kept: true,
          complete: false,
          state: "queued",
          responseStarted: false,
          attempts: 0,
          startedAt: this.#options.clock.now(),
          bytesOut: head.raw.length,
          bytesIn: 0,
        };
        this.#current = exchange;
        this.#queue.push(exchange);
        if (wantsClose(head)) this.#closeAfter = true;
        // the bytes after it are of another protocol or of the next request: reads wait for the answer
        if (asksForSwitch(head)) this.#switchAnswered = Promise.withResolvers();
        // the framer's own copy of the head (a slice of its slab): kept as is, not copied again; toward the
        // pod without the client's `close` when kf keeps upstreams
        const upstreamHead = this.#options.keep ? keepAliveHead(head) : head.raw;
        const added = this.#addFrame(exchange, upstreamHead, true);
        return added ? added.then(() => this.#dispatch()) : this.#dispatch();
      }
      case "body": {
        const exchange = this.#current!;
        exchange.bytesOut += piece.bytes.length;
        // a view of the read buffer: it is sent (and maybe kept) as it is, so the buffer is not reused
        this.#bufferTaken = true;
        return this.#addFrame(exchange, piece.bytes);
      }
      case "end": {
        const exchange = this.#current!;
        exchange.complete = true;
        this.#current = undefined;
        return;
      }
      case "opaque":
        return;
    }
  }

  /**
   * A request chunk: sent at once when its request is on an upstream, else kept for later (bounded).
   * `own`: the chunk is already a copy of its own (a head), not a view of a read buffer.
   */
  #addFrame(exchange: Exchange, frame: Uint8Array, own = false): Promise<void> | undefined {
    if (exchange.state === "failed") return; // kf answers it; the rest of its body is dropped
    if (exchange.kept) {
      // a small view of a large read buffer is copied, so the kept copy does not pin the whole buffer
      const view = !own && frame.length < 4096 && frame.byteLength < frame.buffer.byteLength;
      exchange.frames.push(view ? frame.slice() : frame);
      exchange.frameBytes += frame.length;
    }
    if (exchange.state === "sent") {
      const link = this.#link!;
      if (exchange.frameBytes > REPLAY_LIMIT || !exchange.replayable) this.#drop(exchange);
      return this.#send(link, frame);
    }
    // queued behind a failed request or waiting for a pod: past the limit, stop reading until it is sent
    if (exchange.frameBytes > REPLAY_LIMIT) {
      exchange.sent ??= Promise.withResolvers();
      return exchange.sent.promise;
    }
  }

  #drop(exchange: Exchange): void {
    exchange.kept = false;
    exchange.frames = [];
    exchange.frameBytes = 0;
  }

  #onClientEnd(): void {
    this.#localEnded = true;
    if (this.#opaque) {
      this.#opaque.stream.closeWrite();
      const linger = new AbortController();
      this.#options.clock.sleep(OPAQUE_LINGER_MS, linger.signal).then(() => this.#finish(false), () => {});
      this.#done.promise.then(() => abortRoutine(linger));
      return;
    }
    if (this.#queue.length === 0) this.#finish(false);
  }

  // ---------------------------------------------------------------------------------- sending requests

  /**
   * Sends queued requests in order, as far as the ones before them allow; one run at a time. The usual
   * case (the request goes out at once on the current upstream) runs synchronously, with no promise.
   */
  #dispatch(): Promise<void> | undefined {
    if (this.#dispatching) {
      this.#dispatchAgain = true;
      return this.#dispatching;
    }
    this.#dispatchAgain = false;
    const waiting = this.#dispatchOnce();
    if (!waiting && !this.#dispatchAgain) return undefined;
    this.#dispatching = (async () => {
      try {
        if (waiting) await waiting;
        while (this.#dispatchAgain && !this.#finished) {
          this.#dispatchAgain = false;
          const again = this.#dispatchOnce();
          if (again) await again;
        }
      } finally {
        this.#dispatching = undefined;
      }
    })();
    return this.#dispatching;
  }

  /** Sends what can be sent now; returns a promise when it has to wait (for an upstream, for a drain). */
  #dispatchOnce(): Promise<void> | undefined {
    while (!this.#finished) {
      this.#answerFailed();
      let index = 0;
      while (index < this.#queue.length && this.#queue[index].state === "sent") index++;
      if (index === this.#queue.length) return;
      const exchange = this.#queue[index];
      // a failed request waits for its turn to be answered; the ones behind it wait too
      if (exchange.state === "failed") return;
      const link = this.#linkFor(exchange, index === 0);
      if (link instanceof Promise) return this.#dispatchAfter(exchange, link);
      const drained = this.#sendOn(exchange, link);
      if (drained) return drained.then(() => this.#dispatchOnce());
    }
  }

  async #dispatchAfter(exchange: Exchange, linking: Promise<Link | undefined>): Promise<void> {
    const link = await linking;
    const drained = this.#sendOn(exchange, link);
    if (drained) await drained;
    await this.#dispatchOnce();
  }

  /**
   * Sends the request on its upstream; a promise while the upstream drains. Nothing happens without a
   * usable link (the exchange failed, answered in turn; or the stream ended meanwhile: the caller looks again).
   */
  #sendOn(exchange: Exchange, link: Link | undefined): Promise<void> | undefined {
    if (this.#finished || !link || !this.#usable(link)) return;
    if (!exchange.kept) {
      // it cannot be sent again (too large, and its start is gone): only possible after a failure
      exchange.state = "failed";
      exchange.failure ??= goneFailure(exchange, link.pod);
      return;
    }
    exchange.state = "sent";
    exchange.pod = link.pod;
    exchange.attempts++;
    link.framer.expect(exchange.head.method);
    for (const frame of exchange.frames) this.#sendNow(link, frame);
    if (!exchange.replayable || exchange.frameBytes > REPLAY_LIMIT) this.#drop(exchange);
    exchange.sent?.resolve();
    exchange.sent = undefined;
    return this.#drained(link);
  }

  /** The upstream for this request: the current one, a parked one to the chosen pod, or a new one. */
  #linkFor(exchange: Exchange, idle: boolean): Link | Promise<Link | undefined> {
    const current = this.#link;
    if (current && this.#usable(current)) {
      if (!idle || current.framer.pending > 0) return current;
      const want = this.#options.choose(this.#exclude);
      if (want === current.pod) return current;
      this.#park(current);
      const parked = want ? this.#parked.get(want) : undefined;
      if (parked && this.#usable(parked)) return this.#use(parked);
      return this.#open(exchange, want);
    }
    if (idle && this.#parked.size > 0) {
      const want = this.#options.choose(this.#exclude);
      const parked = want ? this.#parked.get(want) : undefined;
      if (parked && this.#usable(parked)) return this.#use(parked);
    }
    return this.#open(exchange, undefined);
  }

  /**
   * The link can take a request now. A stream that ended is closed here at once: its `closed` promise tells
   * the link a microtask later, and a request sent in between would wait for an answer that never comes.
   */
  #usable(link: Link): boolean {
    if (!link.closed && !link.stream.open) this.#onLinkClosed(link);
    return !link.closed;
  }

  #use(link: Link): Link {
    this.#parked.delete(link.pod);
    this.#link = link;
    return link;
  }

  #park(link: Link): void {
    this.#link = undefined;
    const before = this.#parked.get(link.pod);
    if (before && before !== link) this.#letGo(before);
    this.#parked.set(link.pod, link);
    if (this.#parked.size > MAX_PARKED) {
      const [oldest] = this.#parked.values();
      this.#parked.delete(oldest.pod);
      this.#letGo(oldest);
    }
  }

  async #open(exchange: Exchange, prefer: string | undefined, tries = 1): Promise<Link | undefined> {
    let upstream: Upstream;
    try {
      const first = this.#first;
      this.#first = undefined;
      const reuse = exchange.replayable;
      upstream = first
        ? await first
        : await this.#options.acquire(this.#exclude, this.#abort.signal, prefer, reuse);
      if (upstream.reused && !reuse) {
        // a kept upstream may be closing under a request that cannot be resent: it goes back, a fresh one
        this.#options.keep?.(upstream);
        upstream = await this.#options.acquire(this.#exclude, this.#abort.signal, prefer, false);
      }
    } catch (error) {
      if (this.#abort.signal.aborted || this.#finished) return undefined;
      exchange.state = "failed";
      exchange.failure = {
        status: 503,
        message: `kf: no ready pod to send this request to (${(error as Error).message})`,
      };
      this.#result = { pod: this.#result.pod, error: error as Error };
      return undefined;
    }
    if (this.#finished) {
      upstream.stream.release(); // never used
      return undefined;
    }
    const link = this.#attach(upstream);
    if (link.closed) {
      // closed before it could carry anything: another pod, a bounded number of times
      this.#exclude.add(link.pod);
      if (tries < MAX_ATTEMPTS) return await this.#open(exchange, undefined, tries + 1);
      exchange.state = "failed";
      exchange.failure = { status: 503, message: `kf: no pod accepted this request (last: ${link.pod})` };
      return undefined;
    }
    this.#link = link;
    this.#result = { pod: link.pod };
    return link;
  }

  #attach(upstream: Upstream): Link {
    const { stream } = upstream;
    const link: Link = {
      stream,
      pod: upstream.endpoint.pod,
      endpoint: upstream.endpoint,
      reused: upstream.reused === true,
      keepAlive: true,
      framer: new ResponseFramer(),
      closed: false,
      uploadInFlight: 0,
      paused: false,
      downloadQueued: 0,
      detach: () => {},
    };
    const stopWatching = watchLiveness(stream, {
      clock: this.#options.clock,
      idleMs: PING_IDLE_MS,
      timeoutMs: PING_TIMEOUT_MS,
    });
    const onData = (chunk: Uint8Array) => {
      if (!link.closed) this.#onResponseBytes(link, chunk);
    };
    stream.closed.then((error) => {
      link.error ??= error;
      this.#onLinkClosed(link);
    });
    link.detach = () => {
      stopWatching();
      stream.receive(undefined);
    };
    for (const chunk of upstream.early) onData(chunk);
    upstream.early = [];
    stream.receive(onData);
    if (!stream.open) this.#onLinkClosed(link);
    return link;
  }

  #sendNow(link: Link, frame: Uint8Array): void {
    link.uploadInFlight += frame.length;
    link.stream.write(frame, () => {
      link.uploadInFlight -= frame.length;
      if (link.uploadInFlight <= UPLOAD_HIGH_WATER / 2) link.drained?.resolve();
    });
  }

  /** Sends a chunk; a promise while the upstream holds too much (undefined: go on at once). */
  #send(link: Link, frame: Uint8Array): Promise<void> | undefined {
    if (link.closed) return;
    this.#sendNow(link, frame);
    return this.#drained(link);
  }

  #drained(link: Link): Promise<void> | undefined {
    if (link.uploadInFlight > UPLOAD_HIGH_WATER && !link.closed) {
      link.drained = Promise.withResolvers();
      return link.drained.promise;
    }
  }

  #sendOpaque(link: Link, frame: Uint8Array): Promise<void> | undefined {
    return this.#send(link, frame);
  }

  // ---------------------------------------------------------------------------------- pod -> client

  #onResponseBytes(link: Link, payload: Uint8Array): void {
    this.#deliver(link, payload);
    if (this.#opaque === link) return;
    let pieces: Piece<ResponseHead>[];
    try {
      pieces = link.framer.push(payload);
    } catch (error) {
      this.#fail(new Error(`not HTTP/1.x from pod ${link.pod}: ${(error as Error).message}`), true);
      return;
    }
    for (const piece of pieces) {
      this.#onResponsePiece(link, piece, piece.kind === "body" ? piece.bytes.length : 0);
    }
  }

  #onResponsePiece(link: Link, piece: Piece<ResponseHead>, bodyBytes: number): void {
    const exchange = this.#queue[0];
    if (!exchange || this.#finished) return;
    switch (piece.kind) {
      case "head": {
        exchange.bytesIn += piece.head.raw.length;
        // interim answers (100 Continue) may come again from another pod after a resend: not a start
        if (piece.head.meaning === "interim") return;
        exchange.responseStarted = true;
        exchange.status = piece.head.status;
        if (wantsClose(piece.head)) {
          this.#closeAfter = true;
          link.keepAlive = false;
        }
        if (piece.head.meaning === "switch") {
          exchange.switched = true;
          this.#opaque = link;
          this.#drop(exchange);
          for (const held of this.#framer.switched()) this.#sendNow(link, held);
          this.#switchAnswered?.resolve();
          this.#switchAnswered = undefined;
        } else if (this.#switchAnswered) {
          // a refused Upgrade: the bytes after it are requests after all
          const pieces = this.#framer.notSwitched();
          const answered = this.#switchAnswered;
          this.#switchAnswered = undefined;
          (async () => {
            for (const p of pieces) await this.#onRequestPiece(p);
            answered.resolve();
          })();
        }
        return;
      }
      case "body":
        exchange.bytesIn += bodyBytes;
        return;
      case "end":
        if (exchange.switched) {
          this.#log(exchange);
          this.#queue.shift();
          return;
        }
        this.#completed(exchange);
        return;
      case "opaque":
        return;
    }
  }

  #completed(exchange: Exchange): void {
    this.#queue.shift();
    this.#drop(exchange);
    this.#exclude.clear();
    this.#log(exchange);
    if (this.#closeAfter && this.#queue.length === 0) return this.#finish(false);
    if (this.#localEnded && this.#queue.length === 0) return this.#finish(false);
    if (this.#queue.length > 0) this.#dispatch();
  }

  #log(exchange: Exchange): void {
    this.#options.onAnswered?.(exchange.status ?? 0, exchange.pod);
    if (!this.#options.onRequest) return;
    this.#options.onRequest({
      method: exchange.head.method,
      path: pathOf(exchange.head.target),
      status: exchange.status ?? 0,
      pod: exchange.pod,
      durationMs: Math.round((this.#options.clock.now() - exchange.startedAt) * 10) / 10,
      bytesOut: exchange.bytesOut,
      bytesIn: exchange.bytesIn,
    });
  }

  /** Pod -> client, pausing the upstream while the client reads slowly so memory stays bounded. */
  #deliver(link: Link, payload: Uint8Array): void {
    this.#options.counters.bytesIn += payload.length;
    link.downloadQueued += payload.length;
    if (link.downloadQueued > DOWNLOAD_HIGH_WATER && !link.paused) {
      link.paused = true;
      link.stream.pause();
    }
    this.#writer.write(payload).then(() => {
      link.downloadQueued -= payload.length;
      if (link.paused && link.downloadQueued <= DOWNLOAD_HIGH_WATER / 2) {
        link.paused = false;
        link.stream.resume();
      }
    }, () => this.#finish(true));
  }

  // ---------------------------------------------------------------------------------- failures

  #onLinkClosed(link: Link): void {
    if (link.closed) return;
    link.closed = true;
    link.detach();
    link.drained?.resolve();
    if (link.stream.open) link.stream.reset();
    if (this.#parked.get(link.pod) === link) this.#parked.delete(link.pod);
    if (this.#link !== link || this.#finished) return;
    this.#link = undefined;
    if (this.#opaque === link) return this.#finish(false);
    // a body that runs until the server closes has just ended
    for (const piece of link.framer.end()) this.#onResponsePiece(link, piece, 0);
    if (this.#finished) return;
    const inFlight = this.#queue.filter((e) => e.state === "sent");
    if (inFlight.length === 0) return; // idle: the next request opens a new upstream
    const error = link.error ?? new PodPortError(link.pod, "closed the connection before answering", true);
    if (inFlight[0].responseStarted) {
      // the client has part of a response: nothing can be redone, as with plain TCP
      this.#result = { pod: link.pod, error };
      return this.#finish(true);
    }
    // only a pod known to be gone is avoided: a pooled connection that broke under the stream (the API
    // server restarted, the network dropped) says nothing about the pod, which stays the best place to go
    if (this.#deleted.has(link.pod) || (link.error instanceof PodPortError && link.error.podGone)) {
      this.#exclude.add(link.pod);
    }
    if (!link.reused) this.#options.onPodFailed?.(link.pod, error);
    for (const exchange of inFlight) {
      if (exchange.replayable && exchange.kept && exchange.attempts < MAX_ATTEMPTS) {
        exchange.state = "queued";
      } else {
        exchange.state = "failed";
        exchange.failure = goneFailure(exchange, link.pod);
        this.#drop(exchange);
        exchange.sent?.resolve();
      }
    }
    this.#dispatch();
  }

  /** Answers failed requests that have reached the front of the queue, in order. */
  #answerFailed(): void {
    while (this.#queue[0]?.state === "failed" && !this.#finished) {
      const exchange = this.#queue.shift()!;
      const failure = exchange.failure!;
      // the rest of an unfinished request body cannot be told apart from the next request: close after
      const close = !exchange.complete || wantsClose(exchange.head) || this.#closeAfter;
      const body = new TextEncoder().encode(failure.message + "\n");
      const reason = failure.status === 502 ? "Bad Gateway" : "Service Unavailable";
      const head = `HTTP/1.1 ${failure.status} ${reason}\r\n` +
        "Content-Type: text/plain; charset=utf-8\r\n" +
        `Content-Length: ${body.length}\r\n` +
        "Via: 1.1 kf\r\n" +
        `X-Kf-Error: ${failure.status === 502 ? "pod-went-away" : "no-ready-pod"}\r\n` +
        `Connection: ${close ? "close" : "keep-alive"}\r\n\r\n`;
      const bytes = new TextEncoder().encode(head);
      const response = exchange.head.method === "HEAD" ? bytes : concatBytes([bytes, body]);
      this.#options.counters.bytesIn += response.length;
      this.#writer.write(response).catch(() => {});
      exchange.status = failure.status;
      exchange.bytesIn = response.length;
      exchange.pod = failure.pod ?? exchange.pod;
      this.#log(exchange);
      if (close) {
        this.#finish(false);
        return;
      }
      if (this.#localEnded && this.#queue.length === 0) this.#finish(false);
    }
  }

  /**
   * Ends a link kf no longer needs. Between exchanges the pod sends nothing, so its carrier can take the
   * next connection (a pooled SPDY connection, where a reset would drop it): a connection per request
   * then costs two SPDY streams instead of a TLS and WebSocket handshake. Mid-response it is a reset.
   */
  #letGo(link: Link): void {
    const idle = link !== this.#opaque && link.framer.pending === 0 && !link.framer.inMessage;
    if (idle && link.keepAlive && this.#options.keep && link.stream.open) {
      // the next connection of the port may send its request on it
      link.closed = true;
      link.detach();
      this.#options.keep({ stream: link.stream, endpoint: link.endpoint, early: [] });
    } else if (idle) link.stream.release();
    else link.stream.reset();
  }

  #fail(error: Error, reset: boolean): void {
    this.#result = { pod: this.#result.pod ?? this.#link?.pod, error };
    this.#finish(reset);
  }

  #finish(reset: boolean): void {
    if (this.#finished) return;
    this.#finished = true;
    for (const link of [this.#link, ...this.#parked.values()]) {
      if (!link) continue;
      link.closed = true;
      link.detach();
      link.drained?.resolve();
      if (reset) link.stream.reset();
      else this.#letGo(link);
    }
    this.#parked.clear();
    this.#link = undefined;
    this.#first?.then((u) => u.stream.release(), () => {});
    this.#switchAnswered?.resolve();
    for (const exchange of this.#queue) exchange.sent?.resolve();
    this.#writer.end(reset).finally(() => this.#done.resolve());
  }
}

/** The 502 of a request that was not resent. */
function goneFailure(exchange: Exchange, pod: string): { status: number; message: string; pod: string } {
  const why = !exchange.replayable
    ? `${exchange.head.method} is not idempotent and has no Idempotency-Key`
    : exchange.attempts >= MAX_ATTEMPTS
    ? `${exchange.attempts} pods went away under it`
    : `its body was larger than ${REPLAY_LIMIT} bytes`;
  return {
    status: 502,
    message: `kf: pod ${pod} went away mid-request; not resent because ${why} (it may have been executed)`,
    pod,
  };
}
