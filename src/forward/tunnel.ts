/**
 * One local TCP connection <-> one pod port over a PodStream, whatever the transport, with a replay of the
 * client's bytes on another pod while the pod has not answered yet.
 *
 * Phases of the connection (`#phase`): `connecting` (no stream: waiting for a pod, or between attempts; the
 * kernel holds the client's bytes), `carrying` (bytes flow both ways on one stream), `done`. The client side
 * is `sending`, `ended` (EOF: the pod may still answer), or `failed` (reset: nothing more to deliver).
 */

import type { Clock } from "../clock.ts";
import { PodPortError, type PodStream } from "../transport/mod.ts";
import type { Upstream } from "./prewarm.ts";
import { watchLiveness } from "./liveness.ts";
import { LocalWriter } from "./local_end.ts";
import { abortRoutine } from "../abort.ts";

/** Upload bytes handed to the stream and not yet sent, before we stop reading the local socket. */
const UPLOAD_HIGH_WATER = 1 << 20;
/** Download bytes queued toward the local socket before the stream is paused. */
const DOWNLOAD_HIGH_WATER = 1 << 20;
/** Client bytes kept for a replay on another pod until the pod answers; past this, no retry. */
const REPLAY_LIMIT = 1 << 20;
/** Attempts per connection while the pod keeps vanishing before its first byte (several pods may be dying). */
const MAX_ATTEMPTS = 6;
/** A stream quiet this long is pinged; no answer within PING_TIMEOUT_MS means its path died (sleep, VPN). */
const PING_IDLE_MS = 20_000;
const PING_TIMEOUT_MS = 10_000;
/**
 * Local reads start small (an idle connection holds one pending read) and grow to this while bulk flows:
 * each read becomes one message to the pod, and 256 KiB rather than 64 KiB messages cut kf's CPU per GiB
 * uploaded by ~30 % (fewer reads, frames and kubelet wake-ups; measured with curl -T 1 GiB).
 */
const MIN_READ_CHUNK = 4 * 1024;
const MAX_READ_CHUNK = 256 * 1024;
/** Reads smaller than this are copied out of the read buffer so the replay keeps little memory. */
const SMALL_READ = 4 * 1024;
/**
 * Without half-close (v4) the pod side never learns that the client stopped sending, and the kubelet keeps
 * the stream open until we close it. So after the client's EOF the tunnel waits only for what the pod is
 * still sending: up to LINGER_FIRST_BYTE_MS for a first answer (a client that half-closed after its
 * request), then until the pod has been quiet for LINGER_QUIET_MS. A stream with half-close is told, and
 * the pod closes it when done (bounded by LINGER_FIRST_BYTE_MS of silence).
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
  /** A pod failed before its first byte: lets the forward drop its prewarmed stream to it. */
  onPodFailed?(pod: string, error: Error): void;
  counters: TunnelCounters;
  signal: AbortSignal;
  clock: Clock;
  /** An upstream opened when the client connected (while the forward looked at the first bytes), for attempt 1. */
  first?: Promise<Upstream>;
  /** The client's first bytes, already being read by the forward (undefined: EOF). */
  firstChunk?: Promise<Uint8Array | undefined>;
  /** A ping of this connection went unanswered: the path to the API server may be down. */
  onPingTimeout?(): void;
  /**
   * Keep-alive traffic when nothing went to the pod for this long, so the kubelet's streaming idle timeout
   * (and a load balancer's) sees traffic that the pod never does. Off when undefined.
   */
  keepAliveMs?: number;
}

export interface TunnelResult {
  pod?: string;
  /** Why the connection ended badly, if it did. */
  error?: Error;
}

type Phase =
  | { kind: "connecting" }
  | { kind: "carrying"; stream: PodStream; pod: string; uploadInFlight: number }
  | { kind: "done" };

type ClientSide =
  | { kind: "sending" }
  | { kind: "ended"; at: number }
  | { kind: "failed" };

interface AttemptEnd {
  error?: Error;
  /**
   * The pod itself is the reason (the kubelet said it is gone, or it was deleted): the retry avoids it.
   * A stream that merely broke (the API server restarted, the path dropped) says nothing against the pod;
   * excluding it would leave a connection without any pod once every warm stream broke at once.
   */
  podAtFault: boolean;
}

/** The client's bytes sent before the pod's first byte, for a replay; gives up past its limit. */
class ReplayBuffer {
  readonly #limit: number;
  #chunks: Uint8Array[] = [];
  #bytes = 0;

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** False once more than the limit was sent before an answer: a replay would be incomplete. */
  get usable(): boolean {
    return this.#bytes <= this.#limit;
  }

  get chunks(): readonly Uint8Array[] {
    return this.#chunks;
  }

  add(chunk: Uint8Array): void {
    if (!this.usable) return;
    this.#bytes += chunk.length;
    if (this.usable) this.#chunks.push(chunk);
    else this.#chunks = [];
  }

  /** The pod answered: nothing will be replayed. */
  clear(): void {
    this.#chunks = [];
  }
}

/** Runs a connection until either side closes; never throws. */
export class Tunnel {
  readonly #options: TunnelOptions;
  readonly #clock: Clock;
  readonly #writer: LocalWriter;
  readonly #abort = new AbortController();
  readonly #replay = new ReplayBuffer(REPLAY_LIMIT);
  #phase: Phase = { kind: "connecting" };
  #client: ClientSide = { kind: "sending" };
  /** Resolves true when a stream is attached, false when the attempt ended first (the pump looks again). */
  #attached = Promise.withResolvers<boolean>();
  /** A pod byte reached the client: no replay any more. */
  #answered = false;
  /** The pod the forward reported deleted while this connection used it. */
  #deletedPod?: string;
  /** The linger after the client's EOF ran out: the tunnel ends without a retry. */
  #lingerOver = false;
  /** The pod was told the client finished (half-close): it closes when done. */
  #halfClosed = false;
  /** Starts the current attempt's linger when the client sends EOF. */
  #onClientEnd?: () => void;
  #uploadDrained?: PromiseWithResolvers<void>;
  #downloadQueued = 0;
  #downloadPaused = false;
  #lastDownloadAt: number;
  /** clock.now() of the last bytes written to the pod. */
  #lastUploadAt: number;
  #readChunk = MIN_READ_CHUNK;
  /** The last read's buffer when nothing of it was kept (its bytes were copied out): read into again. */
  #spareBuffer?: Uint8Array;
  /** Bytes the client sent in all. */
  #clientBytes = 0;
  pod?: string;

  constructor(options: TunnelOptions) {
    this.#options = options;
    this.#clock = options.clock;
    this.#writer = new LocalWriter(options.local);
    this.#lastDownloadAt = this.#lastUploadAt = options.clock.now();
  }

  /** The pods this connection holds a stream to. */
  pods(): string[] {
    return this.pod ? [this.pod] : [];
  }

  /** Ends the connection now (forward stopping). */
  close(reason?: Error): void {
    this.#abort.abort(reason);
  }

  /**
   * The pod was deleted: drop its stream now instead of waiting for TCP to notice. Before the pod's first
   * byte this leads to a retry on another pod; after it, the client's connection is closed.
   */
  podDeleted(pod: string): void {
    if (this.#phase.kind !== "carrying" || this.#phase.pod !== pod) return;
    this.#deletedPod = pod;
    this.#phase.stream.reset();
  }

  async run(): Promise<TunnelResult> {
    const { signal } = this.#options;
    const onStop = () => this.#abort.abort(signal.reason);
    signal.addEventListener("abort", onStop, { once: true });
    if (signal.aborted) onStop();
    const upload = this.#pumpUpload();
    let result: TunnelResult = {};
    const exclude = new Set<string>();
    try {
      for (let attempt = 1;; attempt++) {
        const first = attempt === 1 ? this.#options.first : undefined;
        const upstream = await (first ?? this.#options.acquire(exclude, this.#abort.signal));
        this.pod = upstream.endpoint.pod;
        const end = await this.#carry(upstream);
        if (!this.#shouldReplay(end, attempt)) {
          result = { pod: this.pod, error: this.#clientIsDone() ? undefined : end.error };
          break;
        }
        // nothing reached the client yet: replay (on another pod if this one is at fault), unnoticed
        if (end.podAtFault) exclude.add(upstream.endpoint.pod);
        this.#options.onPodFailed?.(upstream.endpoint.pod, end.error!);
      }
    } catch (error) {
      result = { pod: this.pod, error: this.#abort.signal.aborted ? undefined : error as Error };
    } finally {
      signal.removeEventListener("abort", onStop);
      this.#phase = { kind: "done" };
      this.#attached.resolve(false);
      await this.#closeLocal(result.error !== undefined && this.#answered);
      await upload;
    }
    return result;
  }

  /** The client is gone, or finished and answered: how the stream ended no longer matters to anyone. */
  #clientIsDone(): boolean {
    return this.#lingerOver || this.#client.kind === "failed" ||
      (this.#answered && this.#client.kind === "ended");
  }

  /** Another attempt only for a failure the client has not seen, with every byte it sent still at hand. */
  #shouldReplay(end: AttemptEnd, attempt: number): boolean {
    if (this.#clientIsDone() || this.#abort.signal.aborted) return false;
    return end.error !== undefined && !this.#answered && this.#replay.usable && attempt < MAX_ATTEMPTS;
  }

  /** Carries one stream until it closes; resolves how it ended. */
  async #carry(upstream: Upstream): Promise<AttemptEnd> {
    const { stream } = upstream;
    const pod = upstream.endpoint.pod;
    const phase: Phase = { kind: "carrying", stream, pod, uploadInFlight: 0 };
    const stop = new AbortController();
    const onAbort = () => stream.reset();
    this.#abort.signal.addEventListener("abort", onAbort, { once: true });
    if (this.#abort.signal.aborted) stream.reset();
    const stopWatching = watchLiveness(stream, {
      clock: this.#clock,
      idleMs: PING_IDLE_MS,
      timeoutMs: PING_TIMEOUT_MS,
      onTimeout: this.#options.onPingTimeout,
      quiet: this.#options.keepAliveMs === undefined
        ? undefined
        : { everyMs: this.#options.keepAliveMs, lastSentAt: () => this.#lastUploadAt },
    });
    // the linger clock runs only once the client has finished sending (no timer per idle connection)
    const startLinger = () => this.#linger(stream, stop.signal).catch(() => {});
    if (stream.open) {
      for (const chunk of upstream.early) this.#deliver(chunk, stream);
      upstream.early = [];
      stream.receive((chunk) => this.#deliver(chunk, stream));
      // the client may already have sent bytes (or even finished): they go first, in order
      for (const chunk of this.#replay.chunks) this.#write(phase, chunk);
      this.#phase = phase;
      if (this.#client.kind === "ended") {
        this.#halfClosed = stream.closeWrite();
        startLinger();
      } else this.#onClientEnd = startLinger;
      this.#attached.resolve(true);
    }
    let error = await stream.closed;
    abortRoutine(stop);
    stopWatching();
    stream.receive(undefined);
    this.#abort.signal.removeEventListener("abort", onAbort);
    this.#onClientEnd = undefined;
    if (this.#phase === phase) this.#phase = { kind: "connecting" };
    // wake the upload pump: it waits for the next stream (or the end) before reading the client again
    const stale = this.#attached;
    this.#attached = Promise.withResolvers();
    stale.resolve(false);
    this.#uploadDrained?.resolve();
    const podAtFault = this.#deletedPod === pod || (error instanceof PodPortError && error.podGone);
    // a pod that closed before its first byte while the client still waits: treat as gone, retry
    if (!this.#answered && !error && !this.#abort.signal.aborted) {
      error = new PodPortError(pod, "closed the connection before answering", true);
    }
    return { error, podAtFault };
  }

  /** After the client's EOF: resets the stream once the pod has nothing more to say (see LINGER_*). */
  async #linger(stream: PodStream, stop: AbortSignal): Promise<void> {
    while (stream.open && this.#client.kind === "ended") {
      const limitMs = this.#answered && !this.#halfClosed ? LINGER_QUIET_MS : LINGER_FIRST_BYTE_MS;
      const quietMs = this.#clock.now() - Math.max(this.#lastDownloadAt, this.#client.at);
      if (quietMs > limitMs) {
        this.#lingerOver = true;
        stream.reset();
        return;
      }
      // at most LINGER_QUIET_MS at a time: the pod's first answer shortens the limit
      await this.#clock.sleep(Math.max(10, Math.min(limitMs - quietMs + 1, LINGER_QUIET_MS)), stop);
    }
  }

  /** Pod -> client, pausing the stream while the local socket is slow so memory stays bounded. */
  #deliver(chunk: Uint8Array, stream: PodStream): void {
    if (this.#client.kind === "failed") return;
    if (!this.#answered) {
      this.#answered = true;
      this.#replay.clear();
    }
    this.#lastDownloadAt = this.#clock.now();
    this.#options.counters.bytesIn += chunk.length;
    this.#downloadQueued += chunk.length;
    if (this.#downloadQueued > DOWNLOAD_HIGH_WATER && !this.#downloadPaused) {
      this.#downloadPaused = true;
      stream.pause();
    }
    this.#writer.write(chunk).then(() => {
      this.#downloadQueued -= chunk.length;
      if (this.#downloadPaused && this.#downloadQueued <= DOWNLOAD_HIGH_WATER / 2) {
        this.#downloadPaused = false;
        stream.resume();
      }
    }, () => {
      // the client went away: nothing more can be delivered
      this.#client = { kind: "failed" };
      abortRoutine(this.#abort);
    });
  }

  /** Client -> pod, for the whole life of the connection (across attempts). */
  async #pumpUpload(): Promise<void> {
    try {
      while (this.#phase.kind !== "done") {
        // read only while a stream exists: while waiting for a pod, the kernel holds the client's bytes
        if (this.#phase.kind !== "carrying") {
          await this.#attached.promise;
          continue;
        }
        const firstChunk = this.#options.firstChunk;
        this.#options.firstChunk = undefined;
        const chunk = firstChunk ? await firstChunk : await this.#readChunkFromClient();
        if (!chunk) break;
        this.#options.counters.bytesOut += chunk.length;
        this.#clientBytes += chunk.length;
        if (!this.#answered) this.#replay.add(chunk);
        // the stream may have changed during the read; without one the replay buffer carries the bytes
        const phase = this.#phase as Phase;
        if (phase.kind === "carrying") await this.#writeWithBackpressure(phase, chunk);
      }
      this.#client = { kind: "ended", at: this.#clock.now() };
      const phase = this.#phase as Phase;
      // a transport with half-close tells the pod, which then finishes and closes by itself
      if (phase.kind === "carrying") this.#halfClosed = phase.stream.closeWrite();
      this.#onClientEnd?.();
      // a client that connected and left without a byte (a port probe) needs no answer
      if (this.#clientBytes === 0 && !this.#answered) abortRoutine(this.#abort);
    } catch {
      // the local read failed (reset by the client)
      if (this.#phase.kind !== "done") {
        this.#client = { kind: "failed" };
        abortRoutine(this.#abort);
      }
    }
  }

  /** The next bytes from the client; undefined at EOF. */
  async #readChunkFromClient(): Promise<Uint8Array | undefined> {
    // a new typed array costs an allocation and its zeroing: a small read's buffer is read into again
    let buffer = this.#spareBuffer;
    this.#spareBuffer = undefined;
    if (buffer?.length !== this.#readChunk) buffer = new Uint8Array(this.#readChunk);
    const n = await this.#options.local.read(buffer);
    if (n === null) return undefined;
    this.#readChunk = n === this.#readChunk ? Math.min(n * 2, MAX_READ_CHUNK) : Math.max(MIN_READ_CHUNK, n);
    if (n >= SMALL_READ) return buffer.subarray(0, n); // kept as it is (replay, the pod stream's queue)
    this.#spareBuffer = buffer;
    return buffer.slice(0, n);
  }

  #write(phase: Phase & { kind: "carrying" }, chunk: Uint8Array): void {
    this.#lastUploadAt = this.#clock.now();
    phase.uploadInFlight += chunk.length;
    phase.stream.write(chunk, () => {
      phase.uploadInFlight -= chunk.length;
      if (phase.uploadInFlight <= UPLOAD_HIGH_WATER / 2) this.#uploadDrained?.resolve();
    });
  }

  async #writeWithBackpressure(phase: Phase & { kind: "carrying" }, chunk: Uint8Array): Promise<void> {
    this.#write(phase, chunk);
    if (phase.uploadInFlight > UPLOAD_HIGH_WATER && phase.stream.open) {
      this.#uploadDrained = Promise.withResolvers();
      await this.#uploadDrained.promise;
    }
  }

  /** Reset: drop what the pod sent; else flush it, then FIN. */
  #closeLocal(reset: boolean): Promise<void> {
    return this.#writer.end(reset);
  }
}
