/**
 * SPDY port-forwarding over a pool of connections per pod, each carrying one local connection at a time.
 *
 * Why not one multiplexed connection per pod (kubectl's way): the kubelet's SPDY library has no per-stream
 * flow control, so the only way to slow one stream down is to stop reading the whole TCP connection, and one
 * slow local reader then stalls every other connection to that pod. With one local connection per SPDY
 * connection a slow reader pauses only its own. After warm-up a new local connection still costs only two
 * SYN_STREAMs on an idle pooled connection, no TLS or WebSocket handshake.
 *
 * An idle pooled connection has no streams, so the kubelet has dialled nothing in the pod: keeping some warm
 * is invisible to servers that speak first (MariaDB's greeting) or time out idle clients (PostgreSQL).
 *
 * Invariants: a connection is reused only by the pod (uid) it was opened to; a connection whose pod is no
 * longer wanted is closed once its local connection ends; spares are re-opened with a backoff, so a server
 * that keeps refusing does not cause a storm.
 */

import { type Clock, systemClock } from "../../clock.ts";
import type { KubeClient } from "../../kube/client.ts";
import { Backoff } from "../../watch/backoff.ts";
import type { PodDialer, PodPort, PodStream, SelfWarming } from "../pod_stream.ts";
import {
  carrierRefused,
  openSpdyPortForward,
  type SpdyCarrier,
  type SpdyPortForwardConnection,
} from "./port_forward.ts";
import { SpdyPodStream } from "./pod_stream.ts";

const DEFAULT_CARRIERS: readonly SpdyCarrier[] = ["websocket", "upgrade"];

/** A connection's upgrade unanswered this long has failed (the waiting local connection dials again). */
const DIAL_TIMEOUT_MS = 10_000;

export interface SpdyPoolOptions {
  signal: AbortSignal;
  clock?: Clock;
  /**
   * The carriers to try, in order: each until the server refuses it, then the next one for good.
   * @default ["websocket", "upgrade"] (the WebSocket tunnel, then the legacy upgrade, as kubectl does)
   */
  carriers?: readonly SpdyCarrier[];
  /** The carrier changed (the one before was refused). */
  onCarrier?: (carrier: SpdyCarrier) => void;
  /** Local connections one SPDY connection carries at once; 1 isolates slow readers. @default 1 */
  streamsPerConnection?: number;
  /** Idle connections kept open to each wanted pod. @default 2 */
  spares?: number;
  /**
   * Open connections only to pods that a local connection went to (see `served`), and none to standby pods:
   * the first connections to a new pod are carried by another transport, so a handover opens no extra
   * handshakes beside theirs. @default false
   */
  onlyServedPods?: boolean;
  /** An idle connection beyond the spares is closed after this long. @default 30000 */
  idleMs?: number;
  /** Pings a quiet connection this often at most (below the kubelet's streaming idle timeout). */
  keepAliveMs?: number;
  /** Hears of every connection being opened (the one request per connection that goes to the API server). */
  onDial?: (pod: string, opening: Promise<unknown>) => void;
  /** Opens one SPDY connection to a pod: the seam that tests replace. @default openSpdyPortForward */
  dial?: (pod: string, carrier: SpdyCarrier, signal: AbortSignal) => Promise<SpdyPortForwardConnection>;
}

interface Pooled {
  uid: string;
  pod: string;
  /** Resolves with the open connection; rejects when opening failed. */
  ready: Promise<SpdyPortForwardConnection>;
  connection?: SpdyPortForwardConnection;
  /** Local connections it carries now. */
  active: number;
  /** clock.now() when it last became idle. */
  idleSince: number;
}

/** The SPDY opener with its pool: what the forward calls, plus what its Prewarm tells it. */
export class SpdyPool implements SelfWarming {
  readonly #signal: AbortSignal;
  readonly #clock: Clock;
  readonly #perConnection: number;
  readonly #spares: number;
  readonly #idleMs: number;
  readonly #onlyServed: boolean;
  /** The carriers not tried yet, in order. */
  readonly #nextCarriers: SpdyCarrier[];
  readonly #onCarrier?: (carrier: SpdyCarrier) => void;
  readonly #backoff: Backoff;
  readonly #dial: (pod: string, carrier: SpdyCarrier) => Promise<SpdyPortForwardConnection>;
  #carrier: SpdyCarrier;
  #entries: Pooled[] = [];
  /** The endpoint each prewarm (one per local port) points at: their pods get spares. */
  readonly #wanted = new Map<object, PodPort | undefined>();
  /** Pods each owner may pick next: one idle connection each. */
  readonly #standby = new Map<object, readonly PodPort[]>();
  #retry?: AbortController;
  #sweep?: AbortController;
  /** The server refused SPDY altogether: no more spares. */
  #refused = false;
  /** Pods (uids) a local connection went to: they get the full number of spares. */
  readonly #used = new Set<string>();

  constructor(client: KubeClient, namespace: string, options: SpdyPoolOptions) {
    this.#signal = options.signal;
    this.#clock = options.clock ?? systemClock;
    this.#perConnection = options.streamsPerConnection ?? 1;
    this.#spares = options.spares ?? 2;
    this.#idleMs = options.idleMs ?? 30_000;
    this.#onlyServed = options.onlyServedPods ?? false;
    const [first, ...rest] = options.carriers?.length ? options.carriers : DEFAULT_CARRIERS;
    this.#carrier = first;
    this.#nextCarriers = rest;
    this.#onCarrier = options.onCarrier;
    this.#backoff = new Backoff({ clock: this.#clock, initialMs: 200, maxMs: 30_000 });
    const dial = options.dial ??
      ((pod, carrier, signal) =>
        openSpdyPortForward(client, {
          namespace,
          pod,
          signal,
          carrier,
          keepAliveMs: options.keepAliveMs,
          // as long as a WebSocket handshake may take: a silent path must not hold connections for 30 s
          timeoutMs: DIAL_TIMEOUT_MS,
        }));
    this.#dial = (pod, carrier) => {
      const opening = dial(pod, carrier, options.signal);
      options.onDial?.(pod, opening);
      return opening;
    };
    options.signal.addEventListener("abort", () => {
      this.#retry?.abort();
      this.#sweep?.abort();
      const entries = this.#entries;
      this.#entries = [];
      for (const entry of entries) entry.ready.then((c) => c.destroy(), () => {});
    }, { once: true });
  }

  /** How the SPDY bytes travel now. */
  get carrier(): SpdyCarrier {
    return this.#carrier;
  }

  /** The PodDialer the forward uses; it carries this pool as its `prewarmsItself`. */
  dialer(): PodDialer {
    const open = (target: PodPort, signal: AbortSignal) => this.open(target, signal);
    return Object.assign(open, { prewarmsItself: this as SelfWarming });
  }

  /** A stream pair to the endpoint's port on a pooled connection (opened now when none is free). */
  async open(endpoint: PodPort, signal: AbortSignal): Promise<PodStream> {
    // a warm connection may have died unnoticed (its end is seen a little later): one more try on a new one
    for (let attempt = 0;; attempt++) {
      signal.throwIfAborted();
      this.#used.add(endpoint.uid);
      const claimed = attempt === 0 ? this.#claim(endpoint.uid) : undefined;
      const entry = claimed ?? this.#add(endpoint, 1);
      let connection: SpdyPortForwardConnection;
      try {
        connection = await abortable(entry.ready, signal);
        signal.throwIfAborted();
        const stream = connection.openPortNow(endpoint.port);
        this.#topUp();
        let released = false;
        const release = (clean: boolean) => {
          if (released) return;
          released = true;
          // a cut stream may have megabytes in flight behind it (a slow reader left): dropping the
          // connection is cheaper than reading them only to throw them away
          if (!clean) connection.destroy();
          this.#release(entry);
        };
        return new SpdyPodStream(connection, stream, { onDone: release, clock: this.#clock });
      } catch (error) {
        this.#release(entry);
        if (signal.aborted || !claimed || entry.connection?.usable) throw error;
      }
    }
  }

  /** An open, idle connection to the target's pod is waiting: open() on it costs no handshake. */
  hasIdle(target: PodPort): boolean {
    return this.#entries.some((e) =>
      e.uid === target.uid && e.active < this.#perConnection && e.connection?.usable === true
    );
  }

  /** served() was called for this pod (and it is still wanted). */
  serves(target: PodPort): boolean {
    return this.#used.has(target.uid);
  }

  /** A local connection went to this pod over another transport: keep spares to it from now on. */
  served(target: PodPort): void {
    if (this.#used.has(target.uid)) return;
    this.#used.add(target.uid);
    this.#topUp();
  }

  warm(owner: object, endpoint: PodPort | undefined, standby: readonly PodPort[] = []): void {
    this.#wanted.set(owner, endpoint);
    this.#standby.set(owner, standby);
    const wanted = this.#wantedUids();
    for (const uid of this.#used) if (!wanted.has(uid)) this.#used.delete(uid);
    // connections to pods no longer picked: idle ones go now, busy ones when their connection ends
    for (const entry of this.#entries) {
      if (entry.active === 0 && !wanted.has(entry.uid)) this.#discard(entry);
    }
    this.#topUp();
  }

  renew(): void {
    for (const entry of this.#entries) if (entry.active === 0) this.#discard(entry);
    this.#backoff.reset();
    this.#topUp();
  }

  invalidate(pod: string): void {
    for (const entry of this.#entries) if (entry.active === 0 && entry.pod === pod) this.#discard(entry);
    this.#scheduleRetry();
  }

  /** Open connections to the pod with room (busiest first, so idle ones stay free), else one still opening. */
  #claim(uid: string): Pooled | undefined {
    let best: Pooled | undefined;
    for (const entry of this.#entries) {
      if (entry.uid !== uid || entry.active >= this.#perConnection) continue;
      if (entry.connection && !entry.connection.usable) continue;
      const rank = (e: Pooled) => (e.connection ? 1_000 : 0) + e.active;
      if (!best || rank(entry) > rank(best)) best = entry;
    }
    if (best) best.active++;
    return best;
  }

  #add(endpoint: PodPort, active: number): Pooled {
    const entry: Pooled = {
      uid: endpoint.uid,
      pod: endpoint.pod,
      active,
      idleSince: this.#clock.now(),
      ready: this.#connect(endpoint.pod),
    };
    this.#entries.push(entry);
    entry.ready.then((connection) => {
      entry.connection = connection;
      connection.closed.then(() => this.#forget(entry));
      if (!this.#entries.includes(entry)) connection.close();
    }, () => this.#forget(entry));
    return entry;
  }

  async #connect(pod: string): Promise<SpdyPortForwardConnection> {
    for (;;) {
      const carrier = this.#carrier;
      try {
        return await this.#dial(pod, carrier);
      } catch (error) {
        if (!carrierRefused(error)) throw error;
        // dials under way when the switch happened just retry on the new carrier
        if (this.#carrier === carrier) {
          const next = this.#nextCarriers.shift();
          if (!next) {
            // a refusal of SPDY itself ends the spares: the forward moves on to WebSocket v4 (or reports it)
            this.#refused = true;
            throw error;
          }
          this.#carrier = next;
          this.#onCarrier?.(next);
        }
      }
    }
  }

  #release(entry: Pooled): void {
    entry.active--;
    if (entry.active > 0) return;
    entry.idleSince = this.#clock.now();
    if (!this.#wantedUids().has(entry.uid) || (entry.connection && !entry.connection.usable)) {
      this.#discard(entry);
      return;
    }
    this.#scheduleSweep();
  }

  /** The connection ended (pod gone, network, ping timeout): forget it, and replace it if it was a spare. */
  #forget(entry: Pooled): void {
    const known = this.#entries.includes(entry);
    this.#entries = this.#entries.filter((e) => e !== entry);
    if (known && entry.active === 0) this.#scheduleRetry();
  }

  #discard(entry: Pooled): void {
    this.#entries = this.#entries.filter((e) => e !== entry);
    entry.ready.then((c) => c.close(), () => {});
  }

  #wantedUids(): Set<string> {
    const uids = new Set<string>();
    for (const endpoint of this.#wanted.values()) if (endpoint) uids.add(endpoint.uid);
    for (const standby of this.#standby.values()) for (const endpoint of standby) uids.add(endpoint.uid);
    return uids;
  }

  /** Opens connections until every wanted pod has its spares (idle or opening). */
  #topUp(): void {
    if (this.#signal.aborted || this.#retry || this.#refused) return;
    const seen = new Set<string>();
    for (const endpoint of this.#wanted.values()) {
      if (!endpoint || seen.has(endpoint.uid)) continue;
      seen.add(endpoint.uid);
      if (this.#onlyServed && !this.#used.has(endpoint.uid)) continue;
      const spare = this.#entries.filter((e) => e.uid === endpoint.uid && e.active === 0).length;
      // one spare for a pod nobody used yet: a handover to a new pod then costs one handshake, not several
      const want = this.#used.has(endpoint.uid) ? this.#spares : Math.min(1, this.#spares);
      for (let i = spare; i < want; i++) this.#addSpare(endpoint);
    }
    // a standby pod needs one connection of any kind: opening, idle or busy
    if (this.#onlyServed) return;
    for (const standby of this.#standby.values()) {
      for (const endpoint of standby) {
        if (seen.has(endpoint.uid)) continue;
        seen.add(endpoint.uid);
        if (!this.#entries.some((e) => e.uid === endpoint.uid)) this.#addSpare(endpoint);
      }
    }
  }

  #addSpare(endpoint: PodPort): void {
    const entry = this.#add(endpoint, 0);
    entry.ready.then(() => this.#backoff.reset(), () => this.#scheduleRetry());
  }

  #scheduleRetry(): void {
    if (this.#signal.aborted || this.#retry || this.#refused) return;
    const timer = new AbortController();
    this.#retry = timer;
    this.#clock.sleep(this.#backoff.next(), timer.signal).then(() => {
      this.#retry = undefined;
      this.#topUp();
    }, () => {});
  }

  /** Closes idle connections beyond the spares once they have been idle for idleMs. */
  #scheduleSweep(): void {
    if (this.#signal.aborted || this.#sweep) return;
    const timer = new AbortController();
    this.#sweep = timer;
    this.#clock.sleep(this.#idleMs / 2, timer.signal).then(() => {
      this.#sweep = undefined;
      const now = this.#clock.now();
      const byPod = new Map<string, Pooled[]>();
      for (const entry of this.#entries) {
        if (entry.active === 0 && entry.connection) {
          byPod.set(entry.uid, [...byPod.get(entry.uid) ?? [], entry]);
        }
      }
      let extras = false;
      for (const idle of byPod.values()) {
        // keep the most recently used as spares: they are the most likely to be alive
        idle.sort((a, b) => b.idleSince - a.idleSince);
        for (const entry of idle.slice(this.#spares)) {
          if (now - entry.idleSince >= this.#idleMs) this.#discard(entry);
          else extras = true;
        }
      }
      if (extras) this.#scheduleSweep();
    }, () => {});
  }
}

/** The promise, or the signal's reason when it aborts first (the promise itself keeps running). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** SPDY port-forwarding through a per-pod pool of connections, see SpdyPool. */
export function spdyDialer(client: KubeClient, namespace: string, options: SpdyPoolOptions): PodDialer {
  return new SpdyPool(client, namespace, options).dialer();
}
