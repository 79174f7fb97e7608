/**
 * A `v4.channel.k8s.io` port-forward WebSocket (one per forwarded connection) as a PodStream: the only place
 * that knows v4 framing on the way in (channel byte, the port prefix of each channel, error text) and out
 * (the data channel byte).
 */

import type WebSocket from "ws";
import { type Clock, systemClock } from "../../clock.ts";
import { PathTimeoutError, podErrorFromText } from "../errors.ts";
import { KERNEL_DEAD_PATH_MS } from "../../kube/socket_options.ts";
import { NativeWebSocket } from "../../kube/native_websocket.ts";
import type { PodReceiver, PodStream } from "../pod_stream.ts";
import { DATA_CHANNEL, encodeData, PortForwardDecoder } from "./v4_frames.ts";

/** ws readyState values (the native-TLS WebSocket uses the same). */
const OPEN = 1;
const CLOSED = 3;
/**
 * The data channel byte alone: in front of every payload sent as parts, and on its own a data frame without
 * payload (traffic for idle timers on the way, nothing for the pod). Never written to.
 */
const DATA_PREFIX = new Uint8Array([DATA_CHANNEL]);
/** Pod bytes held while nobody receives them, past which the socket is no longer read. */
const HELD_HIGH_WATER = 1 << 20;

export class WebSocketPodStream implements PodStream {
  readonly pod: string;
  readonly closed: Promise<Error | undefined>;
  lastHeardAt: number;
  readonly #ws: WebSocket;
  readonly #clock: Clock;
  readonly #decoder = new PortForwardDecoder();
  readonly #settle: (error: Error | undefined) => void;
  #receiver?: PodReceiver;
  #held: Uint8Array[] = [];
  #heldBytes = 0;
  #paused = false;
  #heldPaused = false;
  #over = false;
  #error?: Error;

  constructor(ws: WebSocket, pod: string, clock: Clock = systemClock) {
    this.#ws = ws;
    this.pod = pod;
    this.#clock = clock;
    this.lastHeardAt = clock.now();
    const { promise, resolve } = Promise.withResolvers<Error | undefined>();
    this.closed = promise;
    this.#settle = resolve;
    ws.on("message", this.#onMessage);
    ws.on("pong", this.#onPong);
    ws.on("close", this.#onClose);
    ws.on("error", this.#onError);
    if (ws.readyState !== OPEN) this.#end();
  }

  get open(): boolean {
    return !this.#over && this.#ws.readyState === OPEN;
  }

  /** The native WebSocket says whether the kernel's keepalive watches its socket; ws sockets are not. */
  get kernelWatched(): boolean {
    return (this.#ws as { kernelWatched?: boolean }).kernelWatched === true;
  }

  receive(receiver: PodReceiver | undefined): void {
    this.#receiver = receiver;
    if (!receiver) return;
    while (this.#held.length > 0 && this.#receiver === receiver) {
      const chunk = this.#held.shift()!;
      this.#heldBytes -= chunk.length;
      receiver(chunk);
    }
    if (this.#heldPaused && this.#heldBytes < HELD_HIGH_WATER) {
      this.#heldPaused = false;
      if (!this.#paused) this.#ws.resume();
    }
  }

  pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#ws.pause();
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (!this.#heldPaused) this.#ws.resume();
  }

  write(chunk: Uint8Array, sent?: () => void): void {
    if (!this.open) return sent?.();
    // the native WebSocket sends the channel byte beside the payload: no copy of a large upload chunk
    if (this.#ws instanceof NativeWebSocket) return this.#ws.sendParts([DATA_PREFIX, chunk], () => sent?.());
    this.#ws.send(encodeData(chunk), () => sent?.());
  }

  /** v4 has no half-close: the kubelet never learns that the client stopped sending. */
  closeWrite(): boolean {
    return false;
  }

  keepAlive(): void {
    // the channel byte alone: the kubelet resets its idle timer and writes zero bytes to the pod
    if (this.open) this.#ws.send(DATA_PREFIX);
  }

  ping(): Promise<void> {
    if (!this.open) return Promise.reject(new Error("the stream is closed"));
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#ws.once("pong", () => resolve());
    this.#ws.ping();
    return promise;
  }

  reset(reason?: Error): void {
    this.#error ??= reason;
    this.#end();
  }

  /** A v4 WebSocket carries one stream: nothing to keep. */
  release(): void {
    this.reset();
  }

  readonly #onMessage = (data: Uint8Array): void => {
    this.lastHeardAt = this.#clock.now();
    const frame = this.#decoder.decode(data);
    if (!frame || this.#over) return;
    if (frame.kind === "data") {
      // paused or not, what was read is handed on: pause() only stops further reads
      if (this.#receiver && this.#held.length === 0) return this.#receiver(frame.payload);
      this.#held.push(frame.payload);
      this.#heldBytes += frame.payload.length;
      if (this.#heldBytes >= HELD_HIGH_WATER && !this.#heldPaused) {
        this.#heldPaused = true;
        this.#ws.pause();
      }
    } else if (frame.kind === "error") {
      // the kubelet names the reason and then closes: that text is the stream's end
      this.#error ??= podErrorFromText(this.pod, frame.message);
      this.#end();
    }
  };

  readonly #onPong = (): void => {
    this.lastHeardAt = this.#clock.now();
  };

  readonly #onClose = (): void => this.#end();

  readonly #onError = (error: Error): void => {
    // ETIMEDOUT: the kernel's keepalive or user timeout gave up on the path
    this.#error ??= error instanceof Deno.errors.TimedOut
      ? new PathTimeoutError(this.pod, KERNEL_DEAD_PATH_MS, "kernel")
      : error;
    this.#end();
  };

  #end(): void {
    if (this.#over) return;
    this.#over = true;
    const ws = this.#ws;
    ws.off("message", this.#onMessage);
    ws.off("pong", this.#onPong);
    ws.off("close", this.#onClose);
    // an error after the end must still be heard, or it would crash the process
    ws.off("error", this.#onError);
    ws.on("error", () => {});
    if (ws.readyState !== CLOSED) ws.terminate();
    this.#settle(this.#error);
  }
}
