/** Pod streams kept open to the current pod, so a new local connection skips the dial (WebSocket v4). */

import type { Clock } from "../clock.ts";
import { Backoff } from "../watch/backoff.ts";
import { type PodDialer, PodPortError, type PodStream, type SelfWarming } from "../transport/mod.ts";
import type { Endpoint } from "./picker.ts";
import { watchLiveness } from "./liveness.ts";
import { abortRoutine } from "../abort.ts";

/** An open stream to one pod port, with the pod's bytes that arrived before a connection took it. */
export interface Upstream {
  stream: PodStream;
  endpoint: Endpoint;
  early: Uint8Array[];
  /** It carried HTTP requests of an earlier client connection (src/forward/http/kept_upstreams.ts). */
  reused?: boolean;
}

/** A warm socket is pinged when idle this long; without a pong in WARM_PING_TIMEOUT_MS it is replaced. */
const WARM_PING_IDLE_MS = 15_000;
const WARM_PING_TIMEOUT_MS = 5_000;
/** A warm socket that stayed open this long counts as healthy when it later closes. */
const HEALTHY_WARM_MS = 5_000;
/**
 * A warm socket whose server spoke first (MariaDB's greeting) is kept this long for a client, then closed:
 * such servers time out handshakes that never come (MariaDB's connect_timeout is 10 s) and count each one
 * as an aborted connection in the user's database.
 */
const SERVER_FIRST_KEEP_MS = 2_000;

function sameEndpoint(a: Endpoint | undefined, b: Endpoint | undefined): boolean {
  return a?.uid === b?.uid && a?.port === b?.port && a?.pod === b?.pod;
}

interface Warm {
  endpoint: Endpoint;
  stream?: PodStream;
  /** Resolves once the stream is open and listened to (undefined when opening failed). */
  opened: Promise<PodStream | undefined>;
  early: Uint8Array[];
  abort: AbortController;
  dispose(): void;
}

/** Warm sockets kept per port: two cover a client that opens connections back to back. */
const DEFAULT_POOL_SIZE = 2;

/**
 * Why a port is no longer pre-opened. A v4 port-forward dials the pod's port as soon as the WebSocket opens,
 * so a warm socket is a real, idle connection to the user's server. Two answers from the server say that it
 * does not want those: it speaks first (its greeting would go unanswered until its handshake timeout), or it
 * closed an idle warm connection by itself (a handshake or idle timeout, e.g. PostgreSQL's
 * authentication_timeout). From then on that port's connections are dialled when a client arrives.
 */
export type ColdReason = "server-speaks-first" | "server-closes-idle";

/**
 * Keeps upstreams open to the current pod so a new local connection skips the WebSocket handshake.
 * Re-warmed at once when the pod changes (no debounce); a warm socket that dies is replaced after a
 * backoff, so an app that closes idle connections does not cause a reconnect storm.
 */
export class Prewarm {
  readonly #open: PodDialer;
  readonly #backoff: Backoff;
  readonly #clock: Clock;
  readonly #signal: AbortSignal;
  readonly #size: number;
  #endpoint?: Endpoint;
  #pool: Warm[] = [];
  /** How many to keep now: one after a pod change (cheap at a handover), the full pool once used. */
  #want = 1;
  #retryTimer?: AbortController;
  #cold?: ColdReason;
  readonly #onCold?: (reason: ColdReason) => void;
  readonly #alongside?: SelfWarming;

  /**
   * `alongside`: a pool that keeps its own connections beside these warm streams (auto's SPDY pool, which
   * takes over a pod's HTTP connections once it has some); it is pointed at the same pod.
   */
  constructor(
    open: PodDialer,
    options: {
      clock: Clock;
      signal: AbortSignal;
      size?: number;
      onCold?: (reason: ColdReason) => void;
      alongside?: SelfWarming;
    },
  ) {
    this.#onCold = options.onCold;
    this.#alongside = options.alongside;
    this.#open = open;
    this.#clock = options.clock;
    this.#signal = options.signal;
    this.#size = options.size ?? DEFAULT_POOL_SIZE;
    this.#backoff = new Backoff({ clock: options.clock, initialMs: 200, maxMs: 30_000 });
    options.signal.addEventListener("abort", () => this.#drop(), { once: true });
  }

  /**
   * Points the prewarm at a pod (or nothing); a change drops the old sockets and warms new ones now.
   * `standby`: pods that may be picked next; only a transport whose warm connections dial nothing in the
   * pod (SPDY) warms them; a v4 socket would be a real connection to the user's server.
   */
  setEndpoint(endpoint: Endpoint | undefined, standby: readonly Endpoint[] = []): void {
    this.#open.prewarmsItself?.warm(this, endpoint, standby);
    this.#alongside?.warm(this, endpoint);
    if (sameEndpoint(endpoint, this.#endpoint)) return;
    this.#endpoint = endpoint;
    this.#backoff.reset();
    this.#drop();
    this.#want = 1;
    this.#fill();
  }

  /**
   * A warm socket for this endpoint: an open one at once, else one still opening (it is further along than
   * a new one would be). Undefined when there is none; the pool is topped up right away.
   */
  async take(endpoint: Endpoint): Promise<Upstream | undefined> {
    if (this.#open.prewarmsItself) return undefined;
    const open = this.#pool.find((w) => w.stream?.open && sameEndpoint(w.endpoint, endpoint));
    const warm = open ?? this.#pool.find((w) => !w.stream && sameEndpoint(w.endpoint, endpoint));
    if (!warm) return undefined;
    this.#pool = this.#pool.filter((w) => w !== warm);
    this.#want = this.#size;
    // refill after this connection's first bytes are on their way: opening a socket costs ~1.5 ms of CPU
    // here and more in the API server and kubelet; a socket still opening is waited for first, as dials
    // beside it (at a handover, on a busy machine) would slow it down
    warm.opened.then(() => this.#clock.sleep(0, this.#signal)).then(() => this.#fill(), () => {});
    const stream = await warm.opened;
    warm.dispose();
    if (!stream?.open) return undefined;
    return { stream, endpoint: warm.endpoint, early: warm.early };
  }

  /** Set once the server showed it does not want idle connections; the port is then dialled on demand. */
  get cold(): ColdReason | undefined {
    return this.#cold;
  }

  /** Replaces the warm sockets now (after a suspend or network change they are probably dead). */
  renew(): void {
    this.#open.prewarmsItself?.renew();
    this.#alongside?.renew();
    this.#drop();
    this.#backoff.reset();
    this.#fill();
  }

  /** Forgets warm sockets to a pod a connection found unusable. */
  invalidate(pod: string): void {
    this.#open.prewarmsItself?.invalidate(pod);
    this.#alongside?.invalidate(pod);
    const stale = this.#pool.filter((w) => w.endpoint.pod === pod);
    if (stale.length === 0) return;
    this.#pool = this.#pool.filter((w) => w.endpoint.pod !== pod);
    for (const warm of stale) this.#discard(warm);
    this.#scheduleRetry();
  }

  #fill(): void {
    while (
      !this.#open.prewarmsItself && this.#endpoint && !this.#cold && !this.#signal.aborted &&
      this.#pool.length < this.#want
    ) {
      this.#pool.push(this.#warm(this.#endpoint));
    }
  }

  #warm(endpoint: Endpoint): Warm {
    const abort = new AbortController();
    const onStop = () => abortRoutine(abort);
    this.#signal.addEventListener("abort", onStop, { once: true });
    let stopWatching = () => {};
    let openedAt = Infinity;
    let pingTimedOut = false;
    let disposed = false;
    // holds what arrives before any client owns the stream; the taker gets it as `early`
    const onData = (chunk: Uint8Array) => {
      warm.early.push(chunk);
      if (this.#cold) return;
      this.#goCold("server-speaks-first");
      // the greeting is fresh: a client that arrives now still gets it in time
      const keep = new AbortController();
      abort.signal.addEventListener("abort", () => abortRoutine(keep), { once: true });
      this.#clock.sleep(SERVER_FIRST_KEEP_MS, keep.signal).then(() => {
        if (!this.#pool.includes(warm)) return;
        this.#pool = this.#pool.filter((w) => w !== warm);
        this.#discard(warm);
      }, () => {});
    };
    const onClosed = (error: Error | undefined) => {
      if (disposed) return;
      warm.dispose();
      const lived = this.#clock.now() - openedAt;
      // a stream that lived a while was healthy: the next failure starts the backoff small again
      if (lived >= HEALTHY_WARM_MS) this.#backoff.reset();
      if (this.#pool.includes(warm)) {
        this.#pool = this.#pool.filter((w) => w !== warm);
        // the server hung up on a healthy idle connection that nobody used: it does not want them
        const kubeletSaidWhy = error instanceof PodPortError;
        if (lived >= HEALTHY_WARM_MS && !kubeletSaidWhy && !pingTimedOut) this.#goCold("server-closes-idle");
        this.#scheduleRetry();
      }
    };
    const warm: Warm = {
      endpoint,
      early: [],
      abort,
      opened: this.#open(endpoint, abort.signal).then((stream) => {
        warm.stream = stream;
        stream.receive(onData);
        stream.closed.then(onClosed);
        stopWatching = watchLiveness(stream, {
          clock: this.#clock,
          idleMs: WARM_PING_IDLE_MS,
          timeoutMs: WARM_PING_TIMEOUT_MS,
          onTimeout: () => pingTimedOut = true,
        });
        openedAt = this.#clock.now();
        return stream;
      }, () => {
        if (this.#pool.includes(warm)) {
          this.#pool = this.#pool.filter((w) => w !== warm);
          this.#scheduleRetry();
        }
        return undefined;
      }),
      dispose: () => {
        disposed = true;
        stopWatching();
        this.#signal.removeEventListener("abort", onStop);
        // the taker receives from now on; until it does, the stream holds what comes
        warm.stream?.receive(undefined);
      },
    };
    return warm;
  }

  #goCold(reason: ColdReason): void {
    if (this.#cold) return;
    this.#cold = reason;
    this.#onCold?.(reason);
  }

  #scheduleRetry(): void {
    if (this.#signal.aborted || !this.#endpoint || this.#cold || this.#retryTimer) return;
    const timer = new AbortController();
    this.#retryTimer = timer;
    this.#clock.sleep(this.#backoff.next(), timer.signal).then(() => {
      this.#retryTimer = undefined;
      this.#fill();
    }, () => {});
  }

  #discard(warm: Warm): void {
    warm.dispose();
    abortRoutine(warm.abort);
    warm.opened.then((stream) => stream?.reset());
  }

  #drop(): void {
    this.#retryTimer?.abort();
    this.#retryTimer = undefined;
    const pool = this.#pool;
    this.#pool = [];
    for (const warm of pool) this.#discard(warm);
  }
}
