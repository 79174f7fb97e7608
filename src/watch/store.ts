/** Caches watched objects in memory: a cheap read handle for consumers, a writer for the reflector. */

import { type Clock, systemClock } from "../clock.ts";
import type { WatcherEvent } from "./watcher.ts";

export type StoreState =
  /** No complete list yet: objects may be missing. */
  | "syncing"
  /** In step with the server as far as we know. */
  | "ready"
  /** The watch is failing and retrying: objects are the last known ones, possibly stale. */
  | "degraded";

export interface StoreStatus {
  state: StoreState;
  /** The latest failure, while degraded; an ApiError carries a hint for the user. */
  lastError?: Error;
  /** clock.now() when state last changed. */
  since: number;
}

/** Read side of a cache of watched objects; every method is cheap and synchronous except waitSynced. */
export interface Store<T> {
  /** The object with that key ("namespace/name", see objectKey), if present. */
  get(key: string): T | undefined;
  /** A snapshot of all objects. */
  list(): T[];
  /** True once the first complete list has been applied; stays true through later outages. */
  readonly synced: boolean;
  readonly status: StoreStatus;
  /**
   * Calls listener after every change that became visible (an object, a completed relist) and every status
   * change; returns the unsubscribe function. Listeners run synchronously and should be quick.
   */
  subscribe(listener: () => void): () => void;
  /** Resolves once synced; rejects with the signal's reason when it aborts first. */
  waitSynced(signal?: AbortSignal): Promise<void>;
}

/** The key of an object: "namespace/name", or "name" for cluster-scoped objects. */
export function objectKey(object: unknown): string {
  const metadata = (object as { metadata?: { name?: string; namespace?: string } } | null)?.metadata;
  const name = metadata?.name ?? "";
  return metadata?.namespace ? `${metadata.namespace}/${name}` : name;
}

export interface StoreWriterOptions {
  /** Stamps status.since. @default systemClock */
  clock?: Clock;
}

/** Write side of a store: applies watcher events; only the reflector should hold it. */
export class StoreWriter<T> {
  /** The read handle to give to consumers. */
  readonly store: Store<T>;
  readonly #clock: Clock;
  #objects = new Map<string, T>();
  /** Objects of a relist in progress, swapped in at initDone; undefined when no relist is running. */
  #buffer?: Map<string, T>;
  #synced = false;
  #status: StoreStatus;
  readonly #listeners = new Set<() => void>();

  constructor(options: StoreWriterOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#status = { state: "syncing", since: this.#clock.now() };
    // a separate object, so a consumer cannot reach the writer's methods by a cast
    this.store = new StoreView<T>({
      get: (key: string) => this.#objects.get(key),
      list: () => [...this.#objects.values()],
      synced: () => this.#synced,
      status: () => this.#status,
      subscribe: (listener: () => void) => this.#subscribe(listener),
      waitSynced: (signal?: AbortSignal) => this.#waitSynced(signal),
    });
  }

  /** Applies one event; listeners hear about it when something visible changed. */
  apply(event: WatcherEvent<T>): void {
    switch (event.type) {
      case "init":
        this.#buffer = new Map();
        return; // nothing visible until initDone
      case "initApply":
        (this.#buffer ??= new Map()).set(objectKey(event.object), event.object);
        return;
      case "initDone":
        this.#objects = this.#buffer ?? new Map();
        this.#buffer = undefined;
        this.#synced = true;
        this.#setStatus("ready");
        return this.#notify();
      case "apply":
        this.#objects.set(objectKey(event.object), event.object);
        this.#recovered();
        return this.#notify();
      case "delete":
        this.#objects.delete(objectKey(event.object));
        this.#recovered();
        return this.#notify();
      case "resumed":
        if (this.#recovered()) this.#notify();
        return;
      case "error":
        // keep every object: a flaky API server must not make known pods vanish
        this.#setStatus("degraded", event.error);
        return this.#notify();
    }
  }

  /** Leaves degraded after a success; true when the status changed. */
  #recovered(): boolean {
    if (this.#status.state !== "degraded") return false;
    this.#setStatus(this.#synced ? "ready" : "syncing");
    return true;
  }

  #setStatus(state: StoreState, lastError?: Error): void {
    const since = state === this.#status.state ? this.#status.since : this.#clock.now();
    this.#status = lastError ? { state, lastError, since } : { state, since };
  }

  #notify(): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener();
      } catch (error) {
        // as EventTarget does: a failing listener is reported and the others still run
        reportError(error);
      }
    }
  }

  #subscribe(listener: () => void): () => void {
    // wrapped, so subscribing the same function twice gives two independent subscriptions
    const entry = () => listener();
    this.#listeners.add(entry);
    return () => this.#listeners.delete(entry);
  }

  #waitSynced(signal?: AbortSignal): Promise<void> {
    if (this.#synced) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        unsubscribe();
        reject(signal!.reason);
      };
      const unsubscribe = this.#subscribe(() => {
        if (!this.#synced) return;
        unsubscribe();
        signal?.removeEventListener("abort", onAbort);
        resolve();
      });
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
}

interface StoreSource<T> {
  get(key: string): T | undefined;
  list(): T[];
  synced(): boolean;
  status(): StoreStatus;
  subscribe(listener: () => void): () => void;
  waitSynced(signal?: AbortSignal): Promise<void>;
}

/** The read handle: forwards to the writer's private state through closures. */
class StoreView<T> implements Store<T> {
  readonly #source: StoreSource<T>;

  constructor(source: StoreSource<T>) {
    this.#source = source;
  }

  get(key: string): T | undefined {
    return this.#source.get(key);
  }

  list(): T[] {
    return this.#source.list();
  }

  get synced(): boolean {
    return this.#source.synced();
  }

  get status(): StoreStatus {
    return this.#source.status();
  }

  subscribe(listener: () => void): () => void {
    return this.#source.subscribe(listener);
  }

  waitSynced(signal?: AbortSignal): Promise<void> {
    return this.#source.waitSynced(signal);
  }
}
