/**
 * A SPDY port-forward stream pair (data + error stream on a shared or pooled connection) as a PodStream.
 * SPDY has half-close, so closeWrite() reaches the pod as EOF; liveness is the connection's PING.
 */

import { type Clock, systemClock } from "../../clock.ts";
import type { PodReceiver, PodStream } from "../pod_stream.ts";
import type { PortStream, SpdyPortForwardConnection } from "./port_forward.ts";

/** How long a finished data stream waits for the error stream's text before reporting a plain close. */
const ERROR_TEXT_WAIT_MS = 1_000;

export class SpdyPodStream implements PodStream {
  readonly pod: string;
  readonly closed: Promise<Error | undefined>;
  lastHeardAt: number;
  readonly #connection: SpdyPortForwardConnection;
  readonly #stream: PortStream;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #clock: Clock;
  readonly #settle: (error: Error | undefined) => void;
  readonly #onDone?: (clean: boolean) => void;
  #receiver?: PodReceiver;
  /** A chunk read while nobody received (at most one: reading stops without a receiver). */
  readonly #held: Uint8Array[] = [];
  #paused = false;
  #reading = false;
  #over = false;
  #writeClosed = false;

  /**
   * `onDone` runs once when the pair is finished with: `clean` when the pod finished it (the connection
   * can carry the next one), not when it was cut (reset(), a read error), since whatever the pod was
   * still sending on it would then be read only to be thrown away.
   */
  constructor(
    connection: SpdyPortForwardConnection,
    stream: PortStream,
    options: { onDone?: (clean: boolean) => void; clock?: Clock } = {},
  ) {
    this.#connection = connection;
    this.#stream = stream;
    this.pod = connection.pod;
    this.#onDone = options.onDone;
    this.#clock = options.clock ?? systemClock;
    this.lastHeardAt = this.#clock.now();
    this.#writer = stream.writable.getWriter();
    this.#reader = stream.readable.getReader();
    const { promise, resolve } = Promise.withResolvers<Error | undefined>();
    this.closed = promise;
    this.#settle = resolve;
  }

  get open(): boolean {
    return !this.#over;
  }

  receive(receiver: PodReceiver | undefined): void {
    this.#receiver = receiver;
    while (receiver && this.#held.length > 0 && this.#receiver === receiver) receiver(this.#held.shift()!);
    this.#pump();
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    this.#pump();
  }

  write(chunk: Uint8Array, sent?: () => void): void {
    if (this.#over || this.#writeClosed) return sent?.();
    this.#writer.write(chunk).then(() => sent?.(), () => sent?.());
  }

  closeWrite(): boolean {
    if (!this.#writeClosed && !this.#over) {
      this.#writeClosed = true;
      this.#writer.close().catch(() => {});
    }
    return true;
  }

  async ping(): Promise<void> {
    await this.#connection.ping();
    this.lastHeardAt = this.#clock.now();
  }

  reset(reason?: Error): void {
    if (this.#over) return;
    this.#stream.reset();
    this.#end(false, reason);
  }

  release(): void {
    if (this.#over) return;
    // nothing is in flight behind an idle stream: the connection stays for the next local connection
    this.#writeClosed = true;
    this.#stream.reset();
    this.#end(true, undefined);
  }

  /** Reads while someone receives and nobody paused; one read at a time. */
  async #pump(): Promise<void> {
    if (this.#reading || this.#over) return;
    this.#reading = true;
    try {
      while (this.#receiver && !this.#paused && !this.#over) {
        const { value, done } = await this.#reader.read();
        if (done) {
          const error = await Promise.race([
            this.#stream.error,
            new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), ERROR_TEXT_WAIT_MS)),
          ]);
          this.#end(true, error);
          return;
        }
        this.lastHeardAt = this.#clock.now();
        // the receiver may have let go while the read ran: its next owner gets the chunk
        const receiver = this.#receiver as PodReceiver | undefined;
        if (receiver) receiver(value);
        else this.#held.push(value);
      }
    } catch (error) {
      this.#end(false, error as Error);
    } finally {
      this.#reading = false;
    }
  }

  #end(clean: boolean, error: Error | undefined): void {
    if (this.#over) return;
    this.#over = true;
    // the pod finished: our FIN completes the pair, so the pooled connection holds no stream for it any more
    if (clean && !this.#writeClosed) this.#writer.close().catch(() => {});
    this.#onDone?.(clean);
    this.#settle(error);
  }
}
