/** Test doubles for the watch module: a virtual clock and a list+watch API scripted from literal arrays. */

import type { Clock } from "../clock.ts";
import type { ListResult, ListWatchApi, RawWatchEvent } from "./watcher.ts";

interface Timer {
  due: number;
  resolve(): void;
  cancel(): void;
}

/**
 * Virtual time that moves on its own only when nothing else can: the earliest pending sleep fires in a
 * zero-delay macrotask, after every promise chain of the test has settled. Scripted streams resolve in
 * microtasks, so they always win against a watchdog; a hanging stream loses to it.
 */
export class FakeClock implements Clock {
  #now = 0;
  /** Every duration passed to sleep(), in call order. */
  readonly sleeps: number[] = [];
  readonly #timers = new Set<Timer>();
  #tick?: ReturnType<typeof setTimeout>;

  now(): number {
    return this.#now;
  }

  /** Moves time forward by hand (for code that only reads now()). */
  advance(ms: number): void {
    this.#now += ms;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    this.sleeps.push(ms);
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        timer.cancel();
        reject(signal!.reason);
      };
      const timer: Timer = {
        due: this.#now + ms,
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
        cancel: () => {
          this.#timers.delete(timer);
          this.#schedule();
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#timers.add(timer);
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#timers.size === 0) {
      clearTimeout(this.#tick);
      this.#tick = undefined;
    } else if (this.#tick === undefined) {
      this.#tick = setTimeout(() => this.#fire(), 0);
    }
  }

  #fire(): void {
    this.#tick = undefined;
    let earliest: Timer | undefined;
    for (const timer of this.#timers) if (!earliest || timer.due < earliest.due) earliest = timer;
    if (!earliest) return;
    this.#timers.delete(earliest);
    this.#now = Math.max(this.#now, earliest.due);
    earliest.resolve();
    this.#schedule();
  }
}

/** One scripted watch: events in order, an Error is thrown there, "hang" waits for the abort; then it ends. */
export type WatchScript<T> = Array<RawWatchEvent<T> | Error | "hang">;

export type ApiCall =
  | { call: "list" }
  | { call: "watch"; resourceVersion: string; timeoutSeconds: number };

/**
 * A ListWatchApi playing lists and watches from arrays, in order; once a script runs out, calls hang until
 * their signal aborts. `calls` records what was asked, `signals` every signal handed in.
 */
export class ScriptedListWatch<T> implements ListWatchApi<T> {
  readonly describe = "pods -l app=test in namespace default";
  readonly calls: ApiCall[] = [];
  readonly signals: AbortSignal[] = [];
  readonly #lists: Array<ListResult<T> | Error>;
  readonly #watches: WatchScript<T>[];

  constructor(script: { lists?: Array<ListResult<T> | Error>; watches?: WatchScript<T>[] }) {
    this.#lists = [...(script.lists ?? [])];
    this.#watches = [...(script.watches ?? [])];
  }

  list(signal: AbortSignal): Promise<ListResult<T>> {
    this.calls.push({ call: "list" });
    this.signals.push(signal);
    const next = this.#lists.shift();
    if (next === undefined) return untilAborted(signal).then(() => Promise.reject(signal.reason));
    return next instanceof Error ? Promise.reject(next) : Promise.resolve(next);
  }

  async *watch(
    resourceVersion: string,
    options: { timeoutSeconds: number; signal: AbortSignal },
  ): AsyncGenerator<RawWatchEvent<T>> {
    this.calls.push({ call: "watch", resourceVersion, timeoutSeconds: options.timeoutSeconds });
    this.signals.push(options.signal);
    const script = this.#watches.shift() ?? ["hang"];
    for (const step of script) {
      if (step === "hang") return await untilAborted(options.signal);
      if (step instanceof Error) throw step;
      yield step;
    }
  }
}

function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
}

/** A pod-like object. */
export interface TestPod {
  metadata: {
    name: string;
    namespace?: string;
    resourceVersion?: string;
    managedFields?: unknown[];
    annotations?: Record<string, string>;
  };
  status?: { phase?: string };
}

export function pod(name: string, resourceVersion: string, phase = "Running"): TestPod {
  return { metadata: { name, namespace: "default", resourceVersion }, status: { phase } };
}

/** Reads the first n items, leaving the iterator open for more. */
export async function take<T>(iterator: AsyncIterator<T>, n: number): Promise<T[]> {
  const items: T[] = [];
  while (items.length < n) {
    const result = await iterator.next();
    if (result.done) throw new Error(`the iterable ended after ${items.length} of ${n} items`);
    items.push(result.value);
  }
  return items;
}
