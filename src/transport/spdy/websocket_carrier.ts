/**
 * SPDY tunnelled in a WebSocket (subprotocol `SPDY/3.1+portforward.k8s.io`, what kubectl >= 1.31 uses): the
 * WebSocket's binary messages carry the SPDY session's bytes.
 */

import { EventEmitter } from "node:events";
import type WebSocket from "ws";
import { concatBytes } from "../../bytes.ts";
import { NativeWebSocket } from "../../kube/native_websocket.ts";

/** Bytes handed to the WebSocket and not yet written, past which write() asks the SPDY session to wait. */
const TUNNEL_HIGH_WATER = 1 << 20;
/** Frames written in one tick are joined into one message up to this size (bigger ones go as they are). */
const TUNNEL_JOIN_LIMIT = 16 * 1024;

/**
 * The part of a Node socket the SPDY session uses, over a WebSocket whose binary messages carry the bytes.
 * Why not ws's createWebSocketStream: it adds a stream buffer per direction and sends each SPDY frame as
 * its own message (own TLS record); here the frames of one tick (two SYN_STREAMs and the first DATA of a
 * new connection) leave as one message, and pause() reaches ws (and the TLS gate below it) directly.
 */
export class WebSocketCarrier extends EventEmitter {
  readonly #ws: WebSocket;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #scheduled = false;
  #inFlight = 0;
  #needDrain = false;
  #closed = false;

  constructor(ws: WebSocket) {
    super();
    this.#ws = ws;
    ws.on("message", (data: Uint8Array) => this.emit("data", data));
    ws.on("close", () => this.#onClose());
    ws.on("error", (error: Error) => {
      if (!this.#closed) this.emit("error", error);
    });
  }

  write(bytes: Uint8Array): boolean {
    if (this.#closed) return false;
    this.#pending.push(bytes);
    this.#pendingBytes += bytes.length;
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(() => this.#flush());
    }
    const ok = this.#inFlight + this.#pendingBytes < TUNNEL_HIGH_WATER;
    if (!ok) this.#needDrain = true;
    return ok;
  }

  pause(): void {
    this.#ws.pause();
  }

  resume(): void {
    this.#ws.resume();
  }

  /** Flushes what is queued, then a clean WebSocket close; `callback` once it is closed. */
  end(callback?: () => void): void {
    this.#flush();
    if (callback) this.once("close", callback);
    this.#ws.close(1000);
  }

  destroy(): void {
    this.#ws.terminate();
  }

  #flush(): void {
    this.#scheduled = false;
    if (this.#pending.length === 0 || this.#closed) return;
    const chunks = this.#pending;
    const bytes = this.#pendingBytes;
    this.#pending = [];
    this.#pendingBytes = 0;
    // message boundaries mean nothing to the SPDY session: the native WebSocket sends a tick's frames as one
    // message of parts (a DATA payload is not copied; small frames are joined into one write)
    if (this.#ws instanceof NativeWebSocket) {
      this.#inFlight += bytes;
      this.#ws.sendParts(chunks, () => this.#sent(bytes));
      return;
    }
    const messages = chunks.length > 1 && bytes <= TUNNEL_JOIN_LIMIT ? [concatBytes(chunks)] : chunks;
    for (const message of messages) {
      this.#inFlight += message.length;
      this.#ws.send(message, () => this.#sent(message.length));
    }
  }

  #sent(bytes: number): void {
    this.#inFlight -= bytes;
    if (this.#needDrain && this.#inFlight + this.#pendingBytes <= TUNNEL_HIGH_WATER / 2) {
      this.#needDrain = false;
      this.emit("drain");
    }
  }

  #onClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.emit("close");
  }
}
