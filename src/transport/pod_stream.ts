/**
 * The seam between the forwarding engine and the wire formats: one forwarded TCP connection to a pod port is
 * a `PodStream`, whatever carries it (a WebSocket v4 per connection, a stream pair on a SPDY connection, SPDY
 * tunnelled in a WebSocket). src/forward pipes bytes, replays and decides; it never sees a frame.
 */

/** Which pod port a stream goes to (the forward's Endpoint has this shape). */
export interface PodPort {
  pod: string;
  /** The pod's uid: a pod re-created under the same name is another pod. */
  uid: string;
  port: number;
}

/** Receives the pod's bytes, already unframed, in order. */
export type PodReceiver = (chunk: Uint8Array) => void;

export interface PodStream {
  readonly pod: string;
  /**
   * Pod -> kf. Bytes go to `receiver` from now on; bytes that arrived while nobody received them are held
   * (the stream stops reading once they pile up) and handed over first. `undefined` holds them again.
   */
  receive(receiver: PodReceiver | undefined): void;
  /**
   * Download backpressure: the transport stops reading its socket until resume(). Chunks it has already read
   * may still arrive (bounded); none is ever dropped, so a stream that ends while paused loses no tail.
   */
  pause(): void;
  resume(): void;
  /** kf -> pod. `sent` runs once the transport has handed the bytes on: upload backpressure. */
  write(chunk: Uint8Array, sent?: () => void): void;
  /**
   * The client finished sending. True when the pod sees EOF and can still answer (SPDY); false when the wire
   * format has no half-close (v4): the pod is not told, and the caller decides how long to wait for it.
   */
  closeWrite(): boolean;
  /**
   * Traffic that idle timers on the way count (the kubelet's streaming idle timeout, load balancers) and the
   * pod never sees. Absent when the transport keeps its connection busy by itself (SPDY pings).
   */
  keepAlive?(): void;
  /** One round trip to the far end of the carrier (the API server); resolves when answered. */
  ping(): Promise<void>;
  /** clock.now() of the last thing heard from the far end (bytes or a ping answer). */
  readonly lastHeardAt: number;
  /**
   * True when the kernel watches the carrier's TCP connection (a tuned keepalive): a dead path then ends the
   * stream with a PathTimeoutError by itself, and pings are only a backstop for proxies that end TCP early.
   */
  readonly kernelWatched?: boolean;
  /**
   * Settles once, when the stream is over; never rejects. `undefined`: the pod side closed it (or reset()
   * without a reason). A PodPortError: the kubelet said why (port refused, pod gone). Anything else: the
   * carrier broke (network, API server, an unanswered ping).
   */
  readonly closed: Promise<Error | undefined>;
  /** False once the stream is over or being torn down: write() then drops the bytes. */
  readonly open: boolean;
  /** Drops the stream now (RST where the wire format has one); `closed` settles with `reason`. */
  reset(reason?: Error): void;
  /**
   * kf has all it wanted from the stream and the pod sends nothing more on it (the last HTTP answer ended):
   * ends it like reset(), but its carrier may carry the next stream (a pooled SPDY connection stays open,
   * where a reset drops it for the bytes that may still be in flight behind the stream).
   */
  release(): void;
}

/**
 * A transport that keeps warm connections itself. For SPDY the warm part is the connection, not the stream:
 * an idle SPDY connection has dialled nothing in the pod, one pool serves every port, and a stream on it
 * opens in one round trip.
 */
export interface SelfWarming {
  /**
   * `owner` (one per local port) now wants connections to this pod port, or none; and one idle connection
   * each to the `standby` pods, so a handover to one of them costs no handshake.
   */
  warm(owner: object, target: PodPort | undefined, standby?: readonly PodPort[]): void;
  /** Replaces the idle connections (after a suspend they are probably dead). */
  renew(): void;
  /** Forgets idle connections to a pod a connection found unusable. */
  invalidate(pod: string): void;
}

/** Opens one PodStream; rejects with the API server's typed answer (ApiError, ApiUnreachableError, ...). */
export type PodDialer = ((target: PodPort, signal: AbortSignal) => Promise<PodStream>) & {
  /** Set on dialers that keep their own warm connections (the SPDY pool): callers then only point them. */
  readonly prewarmsItself?: SelfWarming;
};
