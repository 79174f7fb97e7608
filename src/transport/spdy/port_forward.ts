/** Port-forwarding over one SPDY/3.1 connection to a pod: each local connection is a pair of streams. */

import type { Duplex } from "node:stream";
import type { KubeClient } from "../../kube/client.ts";
import { ApiError } from "../../kube/errors.ts";
import { podErrorFromText, type PodPortError } from "../errors.ts";
import { SpdyConnection, type SpdyStream, type StreamSink } from "./connection.ts";
import { WebSocketCarrier } from "./websocket_carrier.ts";

/** The subprotocol the kubelet's SPDY port-forward handler speaks (`X-Stream-Protocol-Version`). */
export const SPDY_PORT_FORWARD_PROTOCOL = "portforward.k8s.io";
/**
 * The WebSocket subprotocol of SPDY tunnelled through a WebSocket (kubectl >= 1.31): every binary message
 * carries SPDY bytes, and the API server speaks SPDY to the kubelet. It passes proxies that only allow
 * WebSockets, and needs the same RBAC as kubectl.
 */
export const SPDY_OVER_WEBSOCKET_PROTOCOL = `SPDY/3.1+${SPDY_PORT_FORWARD_PROTOCOL}`;

/** How the SPDY bytes reach the API server: tunnelled in a WebSocket, or over the legacy HTTP upgrade. */
export type SpdyCarrier = "websocket" | "upgrade";
/**
 * An idle connection is pinged after this long; no answer within PING_TIMEOUT_MS means its path died
 * (laptop sleep, VPN switch). Same values as the WebSocket tunnel's liveness check.
 */
const PING_IDLE_MS = 20_000;
const PING_TIMEOUT_MS = 10_000;

export interface SpdyPortForwardOptions {
  namespace: string;
  pod: string;
  /** Aborting it before the upgrade cancels it; after it, the connection is destroyed. */
  signal?: AbortSignal;
  /** Gives up when the API server does not answer the upgrade in time. @default 30000 */
  timeoutMs?: number;
  /** @default "upgrade" */
  carrier?: SpdyCarrier;
  /**
   * Pings a connection quiet for this long (at most PING_IDLE_MS). The kubelet's SPDY idle timer
   * (spdystream's idleAwareFramer) restarts on every frame it reads or writes, pings included, so pinging
   * below its `--streaming-connection-idle-timeout` keeps an idle forward open.
   */
  keepAliveMs?: number;
}

/** One forwarded TCP connection to a pod port. */
export interface PortStream {
  /** Bytes from the pod; ends when the pod side closes. (Or attach(): one or the other.) */
  readable: ReadableStream<Uint8Array>;
  /** Bytes to the pod; close() is a half-close (FIN): the pod sees EOF and can still answer. */
  writable: WritableStream<Uint8Array>;
  /** The pod's bytes pushed as they arrive, without `readable` (see SpdyStream.attach). */
  attach(sink: StreamSink): void;
  pause(): void;
  resume(): void;
  /** Bytes to the pod without `writable`; a promise only when they could not be handed on at once. */
  send(chunk: Uint8Array): Promise<void> | undefined;
  /** Half-close (FIN) after what was sent. */
  finish(): void;
  /** What the kubelet's error stream said once it ended (e.g. connection refused), else undefined. */
  error: Promise<PodPortError | undefined>;
  /** Drops the connection at once (RST on both streams). */
  reset(): void;
}

/**
 * A SPDY port-forward connection to one pod. Streams are independent: a refused port fails only its
 * own stream; an error text saying the pod is gone ends the whole connection with a PodPortError.
 */
export class SpdyPortForwardConnection {
  readonly namespace: string;
  readonly pod: string;
  /** Resolves when the connection ended: undefined after close(), else why (PodPortError: pod gone). */
  readonly closed: Promise<Error | undefined>;
  readonly #connection: SpdyConnection;
  #nextRequestId = 0;

  constructor(connection: SpdyConnection, options: { namespace: string; pod: string }) {
    this.#connection = connection;
    this.namespace = options.namespace;
    this.pod = options.pod;
    this.closed = connection.closed;
  }

  /** Open streams (two per forwarded connection while both are running). */
  get streamCount(): number {
    return this.#connection.streamCount;
  }

  /** False once the connection ended or is closing: open a new one. */
  get usable(): boolean {
    return this.#connection.usable;
  }

  /**
   * Forwards one new TCP connection to `port` in the pod. The error stream is created first, then the data
   * stream, paired by a request id unique on this connection; bytes may be written at once.
   */
  openPort(port: number): Promise<PortStream> {
    try {
      return Promise.resolve(this.openPortNow(port));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** openPort() without the promise; throws when the connection cannot take the streams. */
  openPortNow(port: number): PortStream {
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new RangeError(`Cannot forward port ${port}: not a TCP port`);
    }
    const requestId = String(this.#nextRequestId++);
    // header names are lowercase on the wire (SPDY requires it); the kubelet reads them case-insensitively
    const headers = { port: String(port), requestid: requestId };
    // we never write on the error stream: FIN goes with its SYN_STREAM
    // both SYN_STREAMs leave in this tick (one WebSocket message, one TLS record); no reply is awaited
    const errorStream = this.#connection.openStreamNow({ ...headers, streamtype: "error" }, { fin: true });
    let dataStream: SpdyStream;
    try {
      dataStream = this.#connection.openStreamNow({ ...headers, streamtype: "data" });
    } catch (error) {
      errorStream.reset();
      throw error;
    }
    const error = readErrorText(errorStream).then((text) => {
      if (text === undefined) return undefined;
      const error = podErrorFromText(this.pod, text);
      // every later stream would fail the same way: end the connection so its owner picks another pod
      if (error.podGone) this.#connection.destroy(error);
      return error;
    });
    return {
      get readable() {
        return dataStream.readable;
      },
      get writable() {
        return dataStream.writable;
      },
      attach: (sink) => dataStream.attach(sink),
      pause: () => dataStream.pauseSink(),
      resume: () => dataStream.resumeSink(),
      send: (chunk) => dataStream.send(chunk),
      finish: () => dataStream.finish(),
      error,
      reset: () => {
        dataStream.reset();
        errorStream.reset();
      },
    };
  }

  /** Round-trip time of a PING in ms (liveness). */
  ping(options: { timeoutMs?: number } = {}): Promise<number> {
    return this.#connection.ping(options);
  }

  /** No new streams; the connection ends once the open ones are done. */
  close(): void {
    this.#connection.close();
  }

  /** Ends the connection and every stream now. */
  destroy(reason?: Error): void {
    this.#connection.destroy(reason);
  }
}

/** Collects the error stream's text; whatever arrived counts even if the stream was then reset. */
function readErrorText(stream: SpdyStream): Promise<string | undefined> {
  const decoder = new TextDecoder();
  let text = "";
  const { promise, resolve } = Promise.withResolvers<string | undefined>();
  stream.attach({
    data: (chunk) => void (text += decoder.decode(chunk, { stream: true })),
    // reset or connection lost: keep what came before
    end: () => {
      text += decoder.decode();
      resolve(text.length > 0 ? text : undefined);
    },
  });
  return promise;
}

/**
 * Opens `pods/{pod}/portforward` with the legacy SPDY/3.1 upgrade (a POST, so RBAC `create` on
 * pods/portforward is enough), then serves many forwarded connections over it.
 */
export async function openSpdyPortForward(
  client: KubeClient,
  options: SpdyPortForwardOptions,
): Promise<SpdyPortForwardConnection> {
  const { namespace, pod, signal } = options;
  const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${
    encodeURIComponent(pod)
  }/portforward`;
  const socket: Duplex = options.carrier === "websocket"
    ? await openTunnel(client, path, options)
    : await client.upgrade(path, {
      method: "POST",
      headers: {
        Connection: "Upgrade",
        Upgrade: "SPDY/3.1",
        "X-Stream-Protocol-Version": SPDY_PORT_FORWARD_PROTOCOL,
        "Content-Length": "0",
      },
      signal,
      timeoutMs: options.timeoutMs,
      purpose: { verb: "create", resource: "pods/portforward", namespace, name: pod },
    });
  const connection = new SpdyConnection(socket, {
    // the kubelet's SPDY library (spdystream) has no flow control and never sends WINDOW_UPDATE
    peerFlowControl: false,
    // nor reads ours (an unhandled frame type there): with the default 64 KiB window a download sent one
    // WINDOW_UPDATE, a WebSocket message and a TLS record of its own, per 32 KiB. Large windows keep that to
    // one per 8 MiB while a peer with flow control still works; memory stays bounded by the buffer limits.
    initialWindowSize: 16 * 1024 * 1024,
    sessionWindowSize: 256 * 1024 * 1024,
    keepAliveIdleMs: Math.min(PING_IDLE_MS, options.keepAliveMs ?? PING_IDLE_MS),
    keepAliveTimeoutMs: PING_TIMEOUT_MS,
  });
  if (signal) {
    const onAbort = () => connection.destroy(signal.reason instanceof Error ? signal.reason : undefined);
    if (signal.aborted) onAbort();
    else {
      signal.addEventListener("abort", onAbort, { once: true });
      connection.closed.then(() => signal.removeEventListener("abort", onAbort));
    }
  }
  return new SpdyPortForwardConnection(connection, { namespace, pod });
}

/** A WebSocket with the SPDY tunnel subprotocol, as a byte stream for the SPDY session. */
async function openTunnel(
  client: KubeClient,
  path: string,
  options: SpdyPortForwardOptions,
): Promise<Duplex> {
  const { namespace, pod, signal } = options;
  const ws = await client.openWebSocket(path, {
    protocols: [SPDY_OVER_WEBSOCKET_PROTOCOL],
    signal,
    timeoutMs: options.timeoutMs,
    purpose: { verb: "create", resource: "pods/portforward", namespace, name: pod },
  });
  return new WebSocketCarrier(ws) as unknown as Duplex;
}

/**
 * The API server will not take this carrier (an older server, a proxy that strips the subprotocol or the
 * upgrade, RBAC without the verb it needs): the next one may work. Unreachable servers, timeouts and 404 (pod
 * gone) are not such answers.
 */
export function carrierRefused(error: unknown): boolean {
  if (error instanceof ApiError) return error.status >= 400 && error.status < 500 && error.status !== 404;
  return error instanceof Error &&
    /subprotocol|Unexpected server response|Invalid Sec-WebSocket/i.test(error.message);
}
