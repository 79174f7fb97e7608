/**
 * A SPDY port-forward stream pair behind the small part of the `ws` WebSocket interface that the tunnel and
 * the prewarm use, so one tunnel implementation (replay, liveness, backpressure) serves both transports.
 * Pod bytes are re-framed as v4 channel messages; writes drop the channel byte.
 */

import { EventEmitter } from "node:events";
import type WebSocket from "ws";
import type { Clock } from "../../clock.ts";
import type { OpenUpstream } from "../upstream.ts";
import type { Endpoint } from "../picker.ts";
import type { KubeClient } from "../../kube/client.ts";
import {
  openSpdyPortForward,
  type PortStream,
  type SpdyCarrier,
  type SpdyPortForwardConnection,
  tunnelRefused,
} from "./port_forward.ts";

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
  #paused = false;
  #reading = false;

  constructor(connection: SpdyPortForwardConnection, stream: PortStream, port: number) {
    super();
    this.#connection = connection;
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
    this.#close();
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
          this.#close();
          return;
        }
        const message = new Uint8Array(value.length + 1);
        message.set(value, 1);
        this.emit("message", message);
      }
    } catch {
      this.#close();
    } finally {
      this.#reading = false;
    }
  }

  #close(): void {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    this.emit("close");
  }
}

/**
 * Opens port-forward streams over one SPDY connection per pod, made on first use and replaced once it
 * ends (the pod went away, the network dropped). Closed with the forward's signal. The connection is
 * tunnelled in a WebSocket first, as kubectl does; when the API server refuses that, the legacy SPDY
 * upgrade is used from then on.
 */
export function spdyOpener(
  client: KubeClient,
  namespace: string,
  options: {
    signal: AbortSignal;
    clock?: Clock;
    carrier?: SpdyCarrier;
    onCarrier?: (carrier: SpdyCarrier) => void;
  },
): OpenUpstream {
  const connections = new Map<string, Promise<SpdyPortForwardConnection>>();
  let carrier: SpdyCarrier = options.carrier ?? "websocket";
  const open = async (pod: string): Promise<SpdyPortForwardConnection> => {
    try {
      return await openSpdyPortForward(client, { namespace, pod, signal: options.signal, carrier });
    } catch (error) {
      if (carrier !== "websocket" || options.carrier === "websocket" || !tunnelRefused(error)) throw error;
      carrier = "upgrade";
      options.onCarrier?.(carrier);
      return await openSpdyPortForward(client, { namespace, pod, signal: options.signal, carrier });
    }
  };
  options.signal.addEventListener("abort", () => {
    for (const pending of connections.values()) pending.then((c) => c.close(), () => {});
    connections.clear();
  }, { once: true });

  const connectionFor = (endpoint: Endpoint): Promise<SpdyPortForwardConnection> => {
    const existing = connections.get(endpoint.uid);
    if (existing) return existing;
    const opening = open(endpoint.pod);
    connections.set(endpoint.uid, opening);
    const forget = () => {
      if (connections.get(endpoint.uid) === opening) connections.delete(endpoint.uid);
    };
    opening.then((connection) => connection.closed.then(forget), forget);
    return opening;
  };

  return async (endpoint, signal) => {
    let connection = await connectionFor(endpoint);
    if (!connection.usable) {
      connections.delete(endpoint.uid);
      connection = await connectionFor(endpoint);
    }
    signal.throwIfAborted();
    const stream = await connection.openPort(endpoint.port);
    return new SpdyStreamSocket(connection, stream, endpoint.port) as unknown as WebSocket;
  };
}
