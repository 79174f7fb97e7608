/** One local TCP connection <-> one pod port over a port-forward WebSocket, with retry before the pod's first byte. */

import type WebSocket from "ws";
import { classifyPodError, DATA_CHANNEL, PortForwardDecoder } from "./channel_frames.ts";
import { PodPortError } from "./errors.ts";
import type { Upstream } from "./upstream.ts";
import { keepAlive } from "./liveness.ts";

/** Upload bytes queued in the WebSocket before we stop reading the local socket. */
const UPLOAD_HIGH_WATER = 1 << 20;
/** Download bytes queued toward the local socket before we stop reading the WebSocket. */
const DOWNLOAD_HIGH_WATER = 1 << 20;
/** Client bytes kept for a replay on another pod until the pod answers; past this, no retry. */
const REPLAY_LIMIT = 1 << 20;
/** Attempts per connection while the pod keeps vanishing before its first byte (several pods may be dying). */
const MAX_ATTEMPTS = 6;
/** A connection quiet this long is pinged; no answer within PING_TIMEOUT_MS means its path died (sleep, VPN). */
const PING_IDLE_MS = 20_000;
const PING_TIMEOUT_MS = 10_000;
/** A data frame without payload: traffic for idle timers on the way, nothing for the pod. */
const KEEPALIVE_FRAME = new Uint8Array([DATA_CHANNEL]);
/** Local reads start small (an idle connection holds one pending read) and grow to this while bulk flows. */
const MIN_READ_CHUNK = 4 * 1024;
const MAX_READ_CHUNK = 64 * 1024;
/** Reads smaller than this are copied out of the read buffer so the replay keeps little memory. */
const SMALL_READ = 4 * 1024;
/**
 * v4 port-forward has no half-close: the pod side never learns that the client stopped sending, and the
 * kubelet keeps the WebSocket open until we close it. So after the client's EOF the tunnel waits only
 * for what the pod is still sending: up to LINGER_FIRST_BYTE_MS for a first answer (a client that
 * half-closed after its request), then until the pod has been quiet for LINGER_QUIET_MS.
 */
const LINGER_FIRST_BYTE_MS = 30_000;
const LINGER_QUIET_MS = 500;

export interface TunnelCounters {
  bytesIn: number;
  bytesOut: number;
}

export interface TunnelOptions {
  local: Deno.Conn;
  /** An upstream to a ready pod, excluding pods that failed this connection; waits (bounded) for one. */
  acquire(exclude: ReadonlySet<string>, signal: AbortSignal): Promise<Upstream>;
  /** A pod failed before its first byte: lets the forward drop its prewarmed socket to it. */
  onPodFailed?(pod: string, error: Error): void;
  counters: TunnelCounters;
  signal: AbortSignal;
  /** An upstream opened when the client connected (while the forward looked at the first bytes), for attempt 1. */
  first?: Promise<Upstream>;
  /** The client's first bytes as a data frame, already being read by the forward (undefined: EOF). */
  firstFrame?: Promise<Uint8Array | undefined>;
  /** A ping of this connection went unanswered: the path to the API server may be down. */
  onPingTimeout?(): void;
  /**
   * Sends an empty data frame when nothing went to the pod for this long, so the kubelet's streaming idle
   * timeout (and a load balancer's) sees traffic that the pod never does. Off when undefined.
   */
  keepAliveMs?: number;
}

export interface TunnelResult {
  pod?: string;
  /** Why the connection ended badly, if it did. */
  error?: Error;
}

interface AttemptEnd {
  /** The pod sent data to the client during this attempt: no replay possible any more. */
  answered: boolean;
  error?: Error;
  /**
   * The pod itself is the reason (the kubelet said it is gone, or it was deleted): the retry avoids it.
   * An upstream that merely broke (the API server restarted, the path dropped) says nothing against the
   * pod; excluding it would leave a connection without any pod once every warm socket broke at once.
   */
  podAtFault: boolean;
}

/** Runs a connection until either side closes; never throws. */
export class Tunnel {
  readonly #options: TunnelOptions;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  #ws?: WebSocket;
  #wsReady?: PromiseWithResolvers<WebSocket | undefined>;
  #answered = false;
  /** Data frames (channel byte included) sent before the pod's first byte, for a replay. */
  #replay: Uint8Array[] = [];
  #replayBytes = 0;
  #replayable = true;
  #localEnded = false;
  #localFailed = false;
  #closed = false;
  #uploadInFlight = 0;
  #uploadDrained?: PromiseWithResolvers<void>;
  #downloadQueued = 0;
  #wsPaused = false;
  readonly #abort = new AbortController();
  pod?: string;

  constructor(options: TunnelOptions) {
    this.#options = options;
    this.#writer = options.local.writable.getWriter();
    this.#wsReady = Promise.withResolvers();
  }

  /** The pods this connection holds an upstream to. */
  pods(): string[] {
    return this.pod ? [this.pod] : [];
  }

  /** Ends the connection now (forward stopping). */
  close(reason?: Error): void {
    this.#abort.abort(reason);
  }

  /**
   * The pod was deleted: drop its upstream now instead of waiting for TCP to notice. Before the pod's
   * first byte this leads to a retry on another pod; after it, the client's connection is closed.
   */
  podDeleted(pod: string): void {
    if (this.pod !== pod) return;
    this.#deletedPod = pod;
    this.#ws?.terminate();
  }

  async run(): Promise<TunnelResult> {
    const { signal } = this.#options;
    const onStop = () => this.#abort.abort(signal.reason);
    signal.addEventListener("abort", onStop, { once: true });
    const upload = this.#pumpUpload();
    let result: TunnelResult = {};
    const exclude = new Set<string>();
    try {
      for (let attempt = 1;; attempt++) {
        const first = attempt === 1 ? this.#options.first : undefined;
        const upstream = await (first ?? this.#options.acquire(exclude, this.#abort.signal));
        this.pod = upstream.endpoint.pod;
        const end = await this.#runAttempt(upstream);
        if (this.#lingerOver || this.#localFailed || (end.answered && this.#localEndedAt !== undefined)) {
          // the client is gone or done: how the upstream ended no longer matters to anyone
          result = { pod: this.pod };
          break;
        }
        if (end.answered || !end.error || !this.#replayable || attempt >= MAX_ATTEMPTS) {
          result = { pod: this.pod, error: end.error };
          break;
        }
        // nothing reached the client yet: replay (on another pod if this one is at fault), unnoticed
        if (end.podAtFault) exclude.add(upstream.endpoint.pod);
        this.#options.onPodFailed?.(upstream.endpoint.pod, end.error);
      }
    } catch (error) {
      result = { pod: this.pod, error: this.#abort.signal.aborted ? undefined : error as Error };
    } finally {
      signal.removeEventListener("abort", onStop);
      await this.#closeLocal(result.error !== undefined && this.#answered);
      this.#wsReady?.resolve(undefined);
      await upload;
    }
    return result;
  }

  /** Carries one upstream until it closes; resolves how it ended. */
  #runAttempt(upstream: Upstream): Promise<AttemptEnd> {
    const { ws } = upstream;
    const decoder = new PortForwardDecoder();
    return new Promise<AttemptEnd>((resolve) => {
      let error: Error | undefined;
      // the linger clock runs only once the client has finished sending (no timer per idle connection)
      let lingerTimer: ReturnType<typeof setInterval> | undefined;
      const startLinger = () => {
        lingerTimer ??= setInterval(() => {
          const quietMs = Date.now() - Math.max(this.#lastDownloadAt, this.#localEndedAt!);
          const limitMs = this.#answered && !this.#halfClosed ? LINGER_QUIET_MS : LINGER_FIRST_BYTE_MS;
          if (quietMs > limitMs) {
            this.#lingerOver = true;
            ws.terminate();
          }
        }, 250);
      };
      if (this.#localEndedAt !== undefined) startLinger();
      else this.#onLocalEnd = startLinger;
      const keepAliveMs = this.#options.keepAliveMs;
      const stopPinging = keepAlive(ws, {
        idleMs: PING_IDLE_MS,
        timeoutMs: PING_TIMEOUT_MS,
        onTimeout: this.#options.onPingTimeout,
        quiet: keepAliveMs === undefined ? undefined : {
          everyMs: keepAliveMs,
          lastSentAt: () => this.#lastUploadAt,
          // the channel byte alone: the kubelet resets its idle timer and writes zero bytes to the pod
          send: () => this.#send(ws, KEEPALIVE_FRAME),
        },
      });
      const finish = () => {
        stopPinging();
        ws.off("message", onMessage);
        ws.off("close", finish);
        ws.off("error", onError);
        this.#abort.signal.removeEventListener("abort", onAbort);
        clearInterval(lingerTimer);
        this.#onLocalEnd = undefined;
        this.#ws = undefined;
        // an attempt that ended before it began (the socket closed between acquire and here) never
        // resolved the promise the upload pump waits on: wake the pump, or it waits forever and the
        // client's bytes are never read for the next attempt
        const stale = this.#wsReady;
        this.#wsReady = Promise.withResolvers();
        stale?.resolve(undefined);
        this.#uploadDrained?.resolve();
        if (ws.readyState !== 3) ws.terminate();
        const podAtFault = this.#deletedPod === upstream.endpoint.pod ||
          (error instanceof PodPortError && error.podGone);
        const ended: AttemptEnd = { answered: this.#answered, error, podAtFault };
        // a pod that closed before its first byte while the client still waits: treat as gone, retry
        if (!this.#answered && !error && !this.#abort.signal.aborted) {
          ended.error = new PodPortError(
            upstream.endpoint.pod,
            "closed the connection before answering",
            true,
          );
        }
        resolve(ended);
      };
      const onMessage = (data: Uint8Array) => {
        const frame = decoder.decode(data);
        if (!frame) return;
        if (frame.kind === "data") {
          this.#answered = true;
          this.#deliver(frame.payload, ws);
        } else if (frame.kind === "error") {
          const gone = classifyPodError(frame.message) === "pod-gone";
          error = new PodPortError(upstream.endpoint.pod, frame.message.trim(), gone);
          ws.terminate();
        }
      };
      const onError = (cause: Error) => {
        error ??= cause;
        finish();
      };
      const onAbort = () => finish();
      ws.on("message", onMessage);
      ws.on("close", finish);
      ws.on("error", onError);
      this.#abort.signal.addEventListener("abort", onAbort, { once: true });
      if (this.#abort.signal.aborted || ws.readyState !== 1) return finish();
      for (const message of upstream.early) onMessage(message);
      upstream.early = [];
      // the client may already have sent bytes (or even finished): they go first, in order
      for (const chunk of this.#replay) this.#send(ws, chunk);
      this.#ws = ws;
      this.#wsReady?.resolve(ws);
    });
  }

  /** The pod the forward reported deleted while this connection used it. */
  #deletedPod?: string;
  #lastDownloadAt = Date.now();
  /** Date.now() of the last frame sent to the pod (keep-alive frames included). */
  #lastUploadAt = Date.now();
  /** Date.now() when the client sent EOF. */
  #localEndedAt?: number;
  /** The linger after the client's EOF ran out: the tunnel ends without a retry. */
  #lingerOver = false;
  /** The pod was told the client finished (SPDY): it closes when done, no need to guess from quiet. */
  #halfClosed = false;
  /** Starts the current attempt's linger clock when the client sends EOF. */
  #onLocalEnd?: () => void;
  #readChunk = MIN_READ_CHUNK;

  /** Pod -> client, pausing the WebSocket while the local socket is slow so memory stays bounded. */
  #deliver(payload: Uint8Array, ws: WebSocket): void {
    if (this.#localFailed) return;
    this.#lastDownloadAt = Date.now();
    this.#options.counters.bytesIn += payload.length;
    this.#downloadQueued += payload.length;
    if (this.#downloadQueued > DOWNLOAD_HIGH_WATER && !this.#wsPaused) {
      this.#wsPaused = true;
      ws.pause();
    }
    this.#writer.write(payload).then(() => {
      this.#downloadQueued -= payload.length;
      if (this.#wsPaused && this.#downloadQueued <= DOWNLOAD_HIGH_WATER / 2) {
        this.#wsPaused = false;
        ws.resume();
      }
    }, () => {
      // the client went away: nothing more can be delivered
      this.#localFailed = true;
      this.#abort.abort();
    });
  }

  /** Client -> pod, for the whole life of the connection (across retries). */
  async #pumpUpload(): Promise<void> {
    try {
      while (!this.#closed) {
        // read only while an upstream exists: while waiting for a pod, the kernel holds the client's bytes
        if (!this.#ws && !(await this.#wsReady?.promise)) {
          if (this.#closed) break;
          continue;
        }
        const firstFrame = this.#options.firstFrame;
        this.#options.firstFrame = undefined;
        const frame = firstFrame ? await firstFrame : await this.#readFrame();
        if (!frame) break;
        const length = frame.length - 1;
        this.#options.counters.bytesOut += length;
        if (!this.#answered && this.#replayable) {
          this.#replayBytes += length;
          if (this.#replayBytes > REPLAY_LIMIT) {
            this.#replayable = false;
            this.#replay = [];
          } else this.#replay.push(frame);
        }
        // the upstream may have changed during the read; without one the replay buffer carries the bytes
        const current = this.#ws;
        if (current) await this.#sendWithBackpressure(current, frame);
      }
      this.#localEnded = true;
      this.#localEndedAt = Date.now();
      this.#onLocalEnd?.();
      // a transport with half-close (SPDY) tells the pod, which then finishes and closes by itself
      const halfClosable = this.#ws as { halfClose?: () => void } | undefined;
      if (halfClosable?.halfClose) {
        this.#halfClosed = true;
        halfClosable.halfClose();
      }
      // a client that connected and left without a byte (a port probe) needs no answer
      if (this.#replayBytes === 0 && !this.#answered) this.#abort.abort();
    } catch {
      // local read failed (reset by the client)
      this.#localEnded = true;
      if (!this.#closed) {
        this.#localFailed = true;
        this.#abort.abort();
      }
    }
  }

  /**
   * Reads the next local bytes straight into a data frame: a spare first byte takes the channel number,
   * so uploads are not copied again. Undefined at end of stream.
   */
  async #readFrame(): Promise<Uint8Array | undefined> {
    const buffer = new Uint8Array(1 + this.#readChunk);
    const n = await this.#options.local.read(buffer.subarray(1));
    if (n === null) return undefined;
    this.#readChunk = n === this.#readChunk ? Math.min(n * 2, MAX_READ_CHUNK) : Math.max(MIN_READ_CHUNK, n);
    buffer[0] = DATA_CHANNEL;
    return n < SMALL_READ ? buffer.slice(0, n + 1) : buffer.subarray(0, n + 1);
  }

  #send(ws: WebSocket, frame: Uint8Array): void {
    this.#lastUploadAt = Date.now();
    this.#uploadInFlight += frame.length;
    ws.send(frame, () => {
      this.#uploadInFlight -= frame.length;
      if (this.#uploadInFlight <= UPLOAD_HIGH_WATER / 2) this.#uploadDrained?.resolve();
    });
  }

  async #sendWithBackpressure(ws: WebSocket, frame: Uint8Array): Promise<void> {
    this.#send(ws, frame);
    if (this.#uploadInFlight > UPLOAD_HIGH_WATER) {
      this.#uploadDrained = Promise.withResolvers();
      await this.#uploadDrained.promise;
    }
  }

  async #closeLocal(reset: boolean): Promise<void> {
    this.#closed = true;
    if (reset) {
      await this.#writer.abort().catch(() => {});
    } else {
      // flush what the pod sent, then FIN
      await this.#writer.close().catch(() => {});
    }
    try {
      this.#options.local.close();
    } catch {
      // already closed
    }
  }
}
