/** Test doubles for the transport seam: an in-memory PodStream whose pod side the test plays by hand. */

import { type Clock, systemClock } from "../clock.ts";
import type { PodDialer, PodPort, PodReceiver, PodStream } from "./pod_stream.ts";

/**
 * A PodStream with nothing behind it. kf's side is the PodStream interface; the test is the pod: `podSends`,
 * `podCloses`, `podFails`, and what kf wrote is in `written` (`writeClosed` after a half-close).
 */
export class MemoryPodStream implements PodStream {
  readonly pod: string;
  readonly closed: Promise<Error | undefined>;
  lastHeardAt: number;
  /** Bytes kf wrote, in order. */
  readonly written: Uint8Array[] = [];
  writeClosed = false;
  /** Whether closeWrite() reaches the pod (SPDY-like) or not (v4-like). */
  halfCloses: boolean;
  /** Answer pings (a live path) or not (a dead one). */
  answerPings = true;
  /** Whether the kernel's keepalive is said to watch the carrier (pings are then only a backstop). */
  kernelWatched = false;
  pings = 0;
  keepAlives = 0;
  paused = false;
  /** When set, write()'s `sent` waits for `releaseWrites()`: a slow path to the pod. */
  holdWrites = false;
  readonly #heldSends: (() => void)[] = [];
  readonly #clock: Clock;
  readonly #settle: (error: Error | undefined) => void;
  #receiver?: PodReceiver;
  #held: Uint8Array[] = [];
  #over = false;
  resetReason?: Error;
  wasReset = false;
  /** release() was called: kf was done with it (the carrier may be reused). */
  wasReleased = false;

  constructor(pod = "pod-1", options: { halfCloses?: boolean; clock?: Clock } = {}) {
    this.pod = pod;
    this.halfCloses = options.halfCloses ?? false;
    this.#clock = options.clock ?? systemClock;
    this.lastHeardAt = this.#clock.now();
    const { promise, resolve } = Promise.withResolvers<Error | undefined>();
    this.closed = promise;
    this.#settle = resolve;
  }

  get open(): boolean {
    return !this.#over;
  }

  /** Everything kf wrote, joined, as text. */
  writtenText(): string {
    return this.written.map((chunk) => new TextDecoder().decode(chunk)).join("");
  }

  // ------------------------------------------------------------------ the pod's side

  podSends(bytes: Uint8Array | string): void {
    const chunk = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
    this.lastHeardAt = this.#clock.now();
    if (this.#receiver) this.#receiver(chunk);
    else this.#held.push(chunk);
  }

  /** The pod side closed the stream cleanly. */
  podCloses(): void {
    this.#end(undefined);
  }

  /** The stream ended with this error (the kubelet's text, a broken carrier). */
  podFails(error: Error): void {
    this.#end(error);
  }

  releaseWrites(): void {
    for (const sent of this.#heldSends.splice(0)) sent();
  }

  // ------------------------------------------------------------------ PodStream

  receive(receiver: PodReceiver | undefined): void {
    this.#receiver = receiver;
    while (receiver && this.#held.length > 0 && this.#receiver === receiver) receiver(this.#held.shift()!);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
  }

  write(chunk: Uint8Array, sent?: () => void): void {
    if (this.#over) return sent?.();
    this.written.push(chunk.slice());
    if (!sent) return;
    if (this.holdWrites) this.#heldSends.push(sent);
    else queueMicrotask(sent);
  }

  closeWrite(): boolean {
    if (!this.halfCloses) return false;
    this.writeClosed = true;
    return true;
  }

  keepAlive(): void {
    this.keepAlives++;
  }

  ping(): Promise<void> {
    this.pings++;
    if (!this.answerPings || this.#over) return new Promise(() => {});
    this.lastHeardAt = this.#clock.now();
    return Promise.resolve();
  }

  reset(reason?: Error): void {
    this.wasReset = true;
    this.resetReason = reason;
    this.#end(reason);
  }

  release(): void {
    this.wasReleased = true;
    this.#end(undefined);
  }

  #end(error: Error | undefined): void {
    if (this.#over) return;
    this.#over = true;
    this.#settle(error);
  }
}

/** A dialer handing out MemoryPodStreams (one per dial, recorded in `streams`), or failing as told. */
export function memoryDialer(
  options: { halfCloses?: boolean; fail?: (target: PodPort) => Error | undefined } = {},
): PodDialer & { streams: MemoryPodStream[] } {
  const streams: MemoryPodStream[] = [];
  const dial = (target: PodPort) => {
    const error = options.fail?.(target);
    if (error) return Promise.reject(error);
    const stream = new MemoryPodStream(target.pod, { halfCloses: options.halfCloses });
    streams.push(stream);
    return Promise.resolve(stream);
  };
  return Object.assign(dial, { streams });
}
