/** What one forward reports about itself: the single source for the live table, NDJSON events and state files. */

export type ForwardState =
  | "starting" // listener binding, first watch list in flight
  | "waiting-for-pod" // listening; no ready pod yet (connections wait, bounded)
  | "ready" // listening; a ready pod is chosen
  | "reconnecting" // the chosen pod went away; picking another
  | "degraded" // the API watch is failing or the API server is unreachable; serving from the last known pods
  | "settling" // the network changed or the machine woke: reconnecting once the path is stable
  | "failed" // cannot serve at all (port in use, bad target); other forwards keep running
  | "stopped"; // stopped on request

export interface ForwardStatus {
  name: string;
  /** "svc/api", "-l app=x", ... */
  target: string;
  context: string;
  namespace: string;
  /** Real bound addresses, "127.0.0.1:8080" (the real port also when 0 was asked). */
  listeners: { address: string; port: number; remote: number | string }[];
  state: ForwardState;
  /** The pod new connections go to, if any. */
  pod?: string;
  openConnections: number;
  totalConnections: number;
  /** Bytes from the local clients to the pod. */
  bytesOut: number;
  /** Bytes from the pod to the local clients. */
  bytesIn: number;
  lastError?: string;
  /** Epoch ms of lastError. */
  lastErrorAt?: number;
  /** How connections reach the pod (see WireTransport). */
  transport?: WireTransport;
  /** HTTP requests finished (HTTP connections only). */
  requests?: number;
  /** Of those, answered with a 5xx (by the pod, or by kf when a pod went away). */
  serverErrors?: number;
}

/**
 * What carries a forward's connections now: SPDY streams on pooled connections tunnelled in WebSockets
 * (`spdy-websocket`, as kubectl >= 1.31), the same over the legacy SPDY upgrade (`spdy-upgrade`), one
 * WebSocket v4 (`websocket`) per connection, or (`auto`) v4 for a pod's first connections and pooled SPDY
 * for its later HTTP ones (`websocket+spdy-websocket`, `websocket+spdy-upgrade`).
 */
export type WireTransport =
  | "spdy-websocket"
  | "spdy-upgrade"
  | "websocket"
  | "websocket+spdy-websocket"
  | "websocket+spdy-upgrade";
