/**
 * Idle HTTP upstreams that finished client connections left behind, for the next connections of the port.
 *
 * Why: a client that opens a connection per request (ApacheBench without -k, curl in a loop, health checks,
 * `Connection: close` clients) otherwise costs a pod stream per request, and with it a connection from the
 * kubelet to the pod: two hops of setup that dominate such clients' latency. The Connection header is
 * hop-by-hop (RFC 9110 7.6.1), so kf, an HTTP intermediary here, keeps its hop to the pod alive while the
 * client's hop closes as the client asked (src/forward/http/keep_alive.ts), and the next connection's first
 * request goes out on that open upstream.
 *
 * Only replayable requests take a kept upstream: a server may close an idle connection just as kf reuses
 * it, and such a request is then resent on a new one (a POST without an Idempotency-Key never meets a kept
 * upstream, so it cannot be caught by that race). A kept upstream is dropped when the pod sends anything
 * while idle (a 408 before closing) or closes it, and released after KEPT_IDLE_MS, below the idle timeouts
 * of common servers (Node.js, Apache and uvicorn: 5 s).
 */

import type { Clock } from "../../clock.ts";
import type { Endpoint } from "../picker.ts";
import type { Upstream } from "../prewarm.ts";
import { abortRoutine } from "../../abort.ts";

/** How long a kept upstream waits for the next connection. */
export const KEPT_IDLE_MS = 4_000;
/** Kept upstreams per pod port: about the concurrency of a client that opens a connection per request. */
export const KEPT_PER_POD = 32;

interface Kept {
  upstream: Upstream;
  expiry: AbortController;
}

export class KeptUpstreams {
  readonly #clock: Clock;
  readonly #idleMs: number;
  readonly #perPod: number;
  /** By pod uid and port: most recently kept last. */
  readonly #byEndpoint = new Map<string, Kept[]>();
  #closed = false;

  constructor(options: { clock: Clock; signal: AbortSignal; idleMs?: number; perPod?: number }) {
    this.#clock = options.clock;
    this.#idleMs = options.idleMs ?? KEPT_IDLE_MS;
    this.#perPod = options.perPod ?? KEPT_PER_POD;
    if (options.signal.aborted) this.#closed = true;
    options.signal.addEventListener("abort", () => this.close(), { once: true });
  }

  /** Upstreams kept now (for tests and status). */
  get size(): number {
    let size = 0;
    for (const list of this.#byEndpoint.values()) size += list.length;
    return size;
  }

  /** Keeps an idle upstream whose last response ended and whose server keeps the connection open. */
  keep(upstream: Upstream): void {
    const { stream } = upstream;
    if (this.#closed || !stream.open || upstream.early.length > 0) return stream.release();
    const key = keyOf(upstream.endpoint);
    const list = this.#byEndpoint.get(key) ?? [];
    this.#byEndpoint.set(key, list);
    const entry: Kept = { upstream: { ...upstream, reused: true }, expiry: new AbortController() };
    list.push(entry);
    if (list.length > this.#perPod) this.#remove(key, list[0])?.stream.release();
    // idle means silent: whatever the pod sends now is not an answer to anything (e.g. a 408 before a close)
    stream.receive(() => this.#remove(key, entry)?.stream.reset());
    stream.closed.then(() => this.#remove(key, entry));
    this.#clock.sleep(this.#idleMs, entry.expiry.signal).then(
      () => this.#remove(key, entry)?.stream.release(),
      () => {},
    );
  }

  /** The most recently kept open upstream to this pod port, now the caller's; undefined when none. */
  take(endpoint: Endpoint): Upstream | undefined {
    const key = keyOf(endpoint);
    const list = this.#byEndpoint.get(key);
    while (list && list.length > 0) {
      const upstream = this.#remove(key, list[list.length - 1])!;
      if (upstream.stream.open) return upstream;
      upstream.stream.reset();
    }
    return undefined;
  }

  /** The pods kept upstreams go to. */
  pods(): string[] {
    const pods = new Set<string>();
    for (const list of this.#byEndpoint.values()) {
      for (const entry of list) pods.add(entry.upstream.endpoint.pod);
    }
    return [...pods];
  }

  /** Drops the upstreams to a pod (deleted, failed) or, without a pod, all (after a suspend). */
  drop(pod?: string): void {
    for (const [key, list] of [...this.#byEndpoint]) {
      for (const entry of [...list]) {
        if (pod === undefined || entry.upstream.endpoint.pod === pod) {
          this.#remove(key, entry)?.stream.reset();
        }
      }
    }
  }

  /** Releases every kept upstream; nothing is kept after this. */
  close(): void {
    this.#closed = true;
    for (const [key, list] of [...this.#byEndpoint]) {
      for (const entry of [...list]) this.#remove(key, entry)?.stream.release();
    }
  }

  /** Takes the entry out (stops its timer and its receiver); its upstream, or undefined if already gone. */
  #remove(key: string, entry: Kept): Upstream | undefined {
    const list = this.#byEndpoint.get(key);
    const index = list?.indexOf(entry) ?? -1;
    if (!list || index < 0) return undefined;
    list.splice(index, 1);
    if (list.length === 0) this.#byEndpoint.delete(key);
    abortRoutine(entry.expiry);
    entry.upstream.stream.receive(undefined);
    return entry.upstream;
  }
}

function keyOf(endpoint: Endpoint): string {
  return `${endpoint.uid}/${endpoint.port}`;
}
