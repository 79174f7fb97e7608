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
  readonly #clock: Clock;
  readonly #settle: (error: Error | undefined) => void;
  readonly #onDone?: (clean: boolean) => void;
  #receiver?: PodReceiver;
  /** Chunks that arrived while nobody received (the SPDY stream holds the rest while paused). */
  readonly #held: Uint8Array[] = [];
  #paused = false;
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
    const { promise, resolve } = Promise.withResolvers<Error | undefined>();
    this.closed = promise;
    this.#settle = resolve;
    // held (not read) until someone receives: the SPDY stream then stops the socket past its limit
    stream.pause();
    stream.attach({
      data: (chunk) => this.#onData(chunk),
      end: (error) => this.#onEnd(error),
    });
  }

  get open(): boolean {
    return !this.#over;
  }

  receive(receiver: PodReceiver | undefined): void {
    this.#receiver = receiver;
    while (receiver && this.#held.length > 0 && this.#receiver === receiver) receiver(this.#held.shift()!);
    this.#flow();
  }

  pause(): void {
    this.#paused = true;
    this.#flow();
  }

  resume(): void {
    this.#paused = false;
    this.#flow();
  }

  write(chunk: Uint8Array, sent?: () => void): void {
    if (this.#over || this.#writeClosed) return sent?.();
    let waiting: Promise<void> | undefined;
    try {
      waiting = this.#stream.send(chunk);
    } catch {
      // the stream broke: its end tells the owner why
    }
    if (!sent) return void waiting?.catch(() => {});
    if (waiting) waiting.then(sent, sent);
    else sent();
  }

  closeWrite(): boolean {
    if (!this.#writeClosed && !this.#over) {
      this.#writeClosed = true;
      this.#stream.finish();
    }
    return true;
  }

  async ping(): Promise<void> {
    await this.#connection.ping();
    this.lastHeardAt = this.#clock.now();
  }

  // both end this side first: the RST makes the SPDY stream report its own end, which must not count

  reset(reason?: Error): void {
    if (this.#over) return;
    this.#end(false, reason);
    this.#stream.reset();
  }

  release(): void {
    if (this.#over) return;
    // nothing is in flight behind an idle stream: the connection stays for the next local connection
    this.#writeClosed = true;
    this.#end(true, undefined);
    this.#stream.reset();
  }

  /** The SPDY stream delivers while someone receives and nobody paused. */
  #flow(): void {
    if (this.#over) return;
    if (this.#receiver && !this.#paused) this.#stream.resume();
    else this.#stream.pause();
  }

  #onData(chunk: Uint8Array): void {
    if (this.#over) return;
    this.lastHeardAt = this.#clock.now();
    const receiver = this.#receiver;
    if (receiver && this.#held.length === 0) receiver(chunk);
    else this.#held.push(chunk);
  }

  #onEnd(error: Error | undefined): void {
    if (this.#over) return;
    if (error) return this.#end(false, error);
    // the pod closed its side: the kubelet's text (a refused port) may still be on its way
    let timer: ReturnType<typeof setTimeout> | undefined;
    Promise.race([
      this.#stream.error,
      new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), ERROR_TEXT_WAIT_MS)),
    ]).then((text) => {
      clearTimeout(timer);
      this.#end(true, text);
    });
  }

  #end(clean: boolean, error: Error | undefined): void {
    if (this.#over) return;
    this.#over = true;
    // the pod finished: our FIN completes the pair, so the pooled connection holds no stream for it any more
    if (clean && !this.#writeClosed) this.#stream.finish();
    this.#onDone?.(clean);
    this.#settle(error);
  }
}
