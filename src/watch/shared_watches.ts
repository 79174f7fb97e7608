/** Shares one watch and store per (client, resource, namespace, selectors) among every forward that needs it. */

import type { Clock } from "../clock.ts";
import type { KubeClient } from "../kube/client.ts";
import { reflect } from "./reflector.ts";
import { type Store, StoreWriter } from "./store.ts";
import { kubeListWatch, type ListWatchApi, watcher } from "./watcher.ts";

/** What a shared watch selects; equal keys (for the same client) share one watch. */
export interface WatchKey {
  resource: "pods" | "services";
  namespace: string;
  labelSelector?: string;
  fieldSelector?: string;
}

/** A hold on a shared store: the watch runs until every lease is released. */
export interface WatchLease<T> {
  store: Store<T>;
  /** Gives the hold up; calling it again does nothing. */
  release(): void;
}

export interface SharedWatchesOptions {
  /** @default systemClock */
  clock?: Clock;
  /** Uniform in [0, 1), for the watchers' jitter. @default Math.random */
  random?: () => number;
  /** Passed to each watcher. @default DEFAULT_IDLE_TIMEOUT_MS */
  idleTimeoutMs?: number;
  /** Builds the list+watch calls for a key; tests inject scripted ones. @default kubeListWatch */
  listWatch?: (client: KubeClient, key: WatchKey) => ListWatchApi<unknown>;
}

interface Entry {
  writer: StoreWriter<unknown>;
  abort: AbortController;
  holders: number;
  client: KubeClient;
  key: WatchKey;
}

/**
 * The running watches of one session, reference-counted. Owned by the session that constructs it (never a
 * module singleton) and passed down to the forwards.
 */
export class SharedWatches {
  readonly #options: SharedWatchesOptions;
  readonly #listWatch: (client: KubeClient, key: WatchKey) => ListWatchApi<unknown>;
  /** Per client object (its identity is the (kubeconfig, context) pair), per serialised key. */
  readonly #entries = new Map<KubeClient, Map<string, Entry>>();
  /** Watch loops not yet finished, including stopping ones, so close() can wait for them. */
  readonly #loops = new Set<Promise<void>>();

  constructor(options: SharedWatchesOptions = {}) {
    this.#options = options;
    this.#listWatch = options.listWatch ?? ((client, key) => kubeListWatch(client, key));
  }

  /** How many watches are running. */
  get size(): number {
    let count = 0;
    for (const byKey of this.#entries.values()) count += byKey.size;
    return count;
  }

  /** A hold on the store for key, starting its watch if this is the first hold. */
  acquire<T>(client: KubeClient, key: WatchKey): WatchLease<T> {
    const id = keyId(key);
    let byKey = this.#entries.get(client);
    if (!byKey) {
      byKey = new Map();
      this.#entries.set(client, byKey);
    }
    let entry = byKey.get(id);
    if (!entry) {
      entry = this.#start(client, key);
      byKey.set(id, entry);
    }
    entry.holders++;
    const held = entry;
    let released = false;
    return {
      store: held.writer.store as Store<T>,
      release: () => {
        if (released) return;
        released = true;
        if (--held.holders > 0) return;
        held.abort.abort();
        // a later acquire of the same key starts afresh instead of finding this stopping entry
        if (byKey.get(id) === held) byKey.delete(id);
        if (byKey.size === 0 && this.#entries.get(client) === byKey) this.#entries.delete(client);
      },
    };
  }

  /** Stops every watch and waits until their loops have finished; for the end of a session. */
  async close(): Promise<void> {
    for (const byKey of this.#entries.values()) {
      for (const entry of byKey.values()) entry.abort.abort();
    }
    this.#entries.clear();
    await Promise.all(this.#loops);
  }

  /**
   * Restarts every watch with a fresh list, keeping the stores (they swap at the end of the list). For
   * after a suspend or network change, when the open streams are probably dead but look fine.
   */
  resync(): void {
    for (const byKey of this.#entries.values()) {
      for (const entry of byKey.values()) {
        entry.abort.abort();
        entry.abort = new AbortController();
        this.#run(entry);
      }
    }
  }

  /**
   * Restarts the watches of one client whose stores are degraded, skipping their backoff: for when that
   * cluster is known to answer again (an outage ended), so forwards do not stay degraded for up to 30 s.
   */
  retryFailing(client: KubeClient): void {
    for (const byKey of this.#entries.values()) {
      for (const entry of byKey.values()) {
        if (entry.client !== client || entry.writer.store.status.state !== "degraded") continue;
        entry.abort.abort();
        entry.abort = new AbortController();
        this.#run(entry);
      }
    }
  }

  #start(client: KubeClient, key: WatchKey): Entry {
    const entry: Entry = {
      writer: new StoreWriter<unknown>({ clock: this.#options.clock }),
      abort: new AbortController(),
      holders: 0,
      client,
      key,
    };
    this.#run(entry);
    return entry;
  }

  #run(entry: Entry): void {
    const { clock, random, idleTimeoutMs } = this.#options;
    const { writer, abort } = entry;
    const events = watcher(this.#listWatch(entry.client, entry.key), {
      signal: abort.signal,
      clock,
      random,
      idleTimeoutMs,
    });
    const loop = reflect(events, writer).catch((error) => {
      // the watcher never throws; reaching here is a bug, shown on the store rather than lost
      writer.apply({ type: "error", error: error instanceof Error ? error : new Error(String(error)) });
    }).finally(() => this.#loops.delete(loop));
    this.#loops.add(loop);
  }
}

function keyId(key: WatchKey): string {
  return JSON.stringify([key.resource, key.namespace, key.labelSelector ?? "", key.fieldSelector ?? ""]);
}
