/**
 * A SPDY port-forward stream pair behind the small part of the `ws` WebSocket interface that the tunnel and
 * the prewarm use, so one tunnel implementation (replay, liveness, backpressure) serves both transports.
 * Pod bytes are re-framed as v4 channel messages; writes drop the channel byte.
 */

import { EventEmitter } from "node:events";
import type { PortStream, SpdyPortForwardConnection } from "./port_forward.ts";

const OPEN = 1;
const CLOSED = 3;
/** How long a finished data stream waits for the error stream's text before reporting a plain close. */
const ERROR_TEXT_WAIT_MS = 1_000;

export class SpdyStreamSocket extends EventEmitter {
  readyState = OPEN;
  readonly #connection: SpdyPortForwardConnection;
  readonly #stream: PortStream;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #onDone?: (clean: boolean) => void;
  #paused = false;
  #reading = false;

  /**
   * `onDone` runs once when the pair is finished with: `clean` when the pod finished it (the connection
   * can carry the next one), not when it was cut (terminate(), a read error), since whatever the pod was
   * still sending on it would then be read only to be thrown away.
   */
  constructor(
    connection: SpdyPortForwardConnection,
    stream: PortStream,
    port: number,
    onDone?: (clean: boolean) => void,
  ) {
    super();
    this.#connection = connection;
    this.#onDone = onDone;
    this.#stream = stream;
    this.#writer = stream.writable.getWriter();
    this.#reader = stream.readable.getReader();
    // the v4 protocol opens each channel with the port number; the tunnel's decoder expects it. Nothing is
    // emitted before someone listens, or those first messages would be lost.
    const prefix = [port & 0xff, port >> 8];
    const onListener = (event: string) => {
      if (event !== "message") return;
      this.off("newListener", onListener);
      queueMicrotask(() => {
        this.emit("message", new Uint8Array([0, ...prefix]));
        this.emit("message", new Uint8Array([1, ...prefix]));
        this.#pump();
      });
    };
    this.on("newListener", onListener);
  }

  send(frame: Uint8Array, callback?: (error?: Error) => void): void {
    this.#writer.write(frame.subarray(1)).then(() => callback?.(), (error) => callback?.(error));
  }

  /** The client finished sending: the pod sees EOF and can still answer (SPDY has half-close). */
  halfClose(): void {
    this.#writer.close().catch(() => {});
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    this.#pump();
  }

  ping(): void {
    this.#connection.ping().then(() => this.emit("pong"), () => {});
  }

  terminate(): void {
    this.#stream.reset();
    this.#close(false);
  }

  async #pump(): Promise<void> {
    if (this.#reading || this.readyState !== OPEN) return;
    this.#reading = true;
    try {
      while (!this.#paused && this.readyState === OPEN) {
        const { value, done } = await this.#reader.read();
        if (done) {
          const text = await Promise.race([
            this.#stream.error,
            new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), ERROR_TEXT_WAIT_MS)),
          ]);
          if (text) this.emit("message", new Uint8Array([1, ...new TextEncoder().encode(text)]));
          this.#close(true);
          return;
        }
        const message = new Uint8Array(value.length + 1);
        message.set(value, 1);
        this.emit("message", message);
      }
    } catch {
      this.#close(false);
    } finally {
      this.#reading = false;
    }
  }

  #close(clean: boolean): void {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    // the pod finished: our FIN completes the pair, so the pooled connection holds no stream for it any more
    if (clean) this.#writer.close().catch(() => {});
    this.#onDone?.(clean);
    this.emit("close");
  }
}
