/** Upstream port-forward WebSockets to a pod: opening one, and keeping one prewarmed for the next connection. */

import type WebSocket from "ws";
import type { KubeClient } from "../kube/client.ts";
import type { Clock } from "../clock.ts";
import { Backoff } from "../watch/backoff.ts";
import { PORT_FORWARD_PROTOCOL } from "./channel_frames.ts";
import type { Endpoint } from "./picker.ts";
import { keepAlive } from "./liveness.ts";

/** An open WebSocket to one pod port, with any messages that arrived before a connection took it. */
export interface Upstream {
  ws: WebSocket;
  endpoint: Endpoint;
  early: Uint8Array[];
}

export type OpenUpstream = (endpoint: Endpoint, signal: AbortSignal) => Promise<WebSocket>;

/** Opens `pods/portforward` for one port over WebSocket v4 (needs RBAC create on pods/portforward). */
export function portForwardOpener(client: KubeClient, namespace: string): OpenUpstream {
  return (endpoint, signal) =>
    client.openWebSocket(
      `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${
        encodeURIComponent(endpoint.pod)
      }/portforward`,
      {
        query: { ports: String(endpoint.port) },
        protocols: [PORT_FORWARD_PROTOCOL],
        signal,
        purpose: { verb: "create", resource: "pods/portforward", namespace, name: endpoint.pod },
      },
    );
}

/** A warm socket is pinged when idle this long; without a pong in WARM_PING_TIMEOUT_MS it is replaced. */
const WARM_PING_IDLE_MS = 15_000;
const WARM_PING_TIMEOUT_MS = 5_000;
/** A warm socket that stayed open this long counts as healthy when it later closes. */
const HEALTHY_WARM_MS = 5_000;

function sameEndpoint(a: Endpoint | undefined, b: Endpoint | undefined): boolean {
  return a?.uid === b?.uid && a?.port === b?.port && a?.pod === b?.pod;
}

interface Warm {
  endpoint: Endpoint;
  ws?: WebSocket;
  early: Uint8Array[];
  abort: AbortController;
  dispose(): void;
}

/**
 * Keeps one upstream open to the current pod so a new local connection skips the WebSocket handshake.
 * Re-warmed at once when the pod changes (no debounce); a warm socket that dies is replaced after a
 * backoff, so an app that closes idle connections does not cause a reconnect storm.
 */
export class Prewarm {
  readonly #open: OpenUpstream;
  readonly #backoff: Backoff;
  readonly #clock: Clock;
  readonly #signal: AbortSignal;
  #endpoint?: Endpoint;
  #warm?: Warm;
  #retryTimer?: AbortController;

  constructor(open: OpenUpstream, options: { clock: Clock; signal: AbortSignal }) {
    this.#open = open;
    this.#clock = options.clock;
    this.#signal = options.signal;
    this.#backoff = new Backoff({ clock: options.clock, initialMs: 200, maxMs: 30_000 });
    options.signal.addEventListener("abort", () => this.#drop(), { once: true });
  }

  /** Points the prewarm at a pod (or nothing); a change drops the old socket and warms a new one now. */
  setEndpoint(endpoint: Endpoint | undefined): void {
    if (sameEndpoint(endpoint, this.#endpoint)) return;
    this.#endpoint = endpoint;
    this.#backoff.reset();
    this.#drop();
    this.#warmNow();
  }

  /** Takes the warm socket if it is open and still for this endpoint; a new one is warmed right away. */
  take(endpoint: Endpoint): Upstream | undefined {
    const warm = this.#warm;
    if (!warm?.ws || !sameEndpoint(warm.endpoint, endpoint) || warm.ws.readyState !== 1) return undefined;
    warm.dispose();
    this.#warm = undefined;
    this.#warmNow();
    return { ws: warm.ws, endpoint: warm.endpoint, early: warm.early };
  }

  /** Replaces the warm socket now (after a suspend or network change it is probably dead). */
  renew(): void {
    this.#drop();
    this.#backoff.reset();
    this.#warmNow();
  }

  /** Forgets the warm socket when a connection found its pod unusable. */
  invalidate(pod: string): void {
    if (this.#warm?.endpoint.pod === pod) {
      this.#drop();
      this.#scheduleRetry();
    }
  }

  #warmNow(): void {
    const endpoint = this.#endpoint;
    if (!endpoint || this.#signal.aborted || this.#warm) return;
    const abort = new AbortController();
    const onStop = () => abort.abort();
    this.#signal.addEventListener("abort", onStop, { once: true });
    let stopPinging = () => {};
    const warm: Warm = {
      endpoint,
      early: [],
      abort,
      dispose: () => {
        stopPinging();
        this.#signal.removeEventListener("abort", onStop);
        warm.ws?.off("message", onMessage);
        warm.ws?.off("close", onClose);
        warm.ws?.off("error", onClose);
      },
    };
    const onMessage = (data: Uint8Array) => warm.early.push(data);
    let openedAt = Infinity;
    const onClose = () => {
      warm.dispose();
      // a socket that lived a while was healthy: the next failure starts the backoff small again
      if (this.#clock.now() - openedAt >= HEALTHY_WARM_MS) this.#backoff.reset();
      if (this.#warm === warm) {
        this.#warm = undefined;
        this.#scheduleRetry();
      }
    };
    this.#warm = warm;
    this.#open(endpoint, abort.signal).then((ws) => {
      if (this.#warm !== warm) {
        ws.terminate();
        return;
      }
      warm.ws = ws;
      ws.on("message", onMessage);
      ws.on("close", onClose);
      ws.on("error", onClose);
      stopPinging = keepAlive(ws, { idleMs: WARM_PING_IDLE_MS, timeoutMs: WARM_PING_TIMEOUT_MS });
      openedAt = this.#clock.now();
    }, () => {
      if (this.#warm === warm) {
        this.#warm = undefined;
        this.#scheduleRetry();
      }
    });
  }

  #scheduleRetry(): void {
    if (this.#signal.aborted || !this.#endpoint || this.#retryTimer) return;
    const timer = new AbortController();
    this.#retryTimer = timer;
    this.#clock.sleep(this.#backoff.next(), timer.signal).then(() => {
      this.#retryTimer = undefined;
      this.#warmNow();
    }, () => {});
  }

  #drop(): void {
    this.#retryTimer?.abort();
    this.#retryTimer = undefined;
    const warm = this.#warm;
    this.#warm = undefined;
    if (!warm) return;
    warm.dispose();
    warm.abort.abort();
    warm.ws?.terminate();
  }
}
