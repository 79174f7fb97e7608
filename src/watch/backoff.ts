/** Spaces out retries after failures: capped exponential delays with full jitter, retried forever. */

import { type Clock, systemClock } from "../clock.ts";

// Defaults copied from client-go's reflector (NewExponentialBackoffManager(800ms, 30s, 2min, 2.0, ...)), the same
// values kube-rs adopted: the first retry comes fast enough that a blip goes unnoticed, the cap keeps a
// long outage from costing more than two requests a minute per watch, and two quiet minutes mean the last
// trouble is over, so the next one starts small again.
/** First ceiling: a blip is retried within a second. */
export const BACKOFF_INITIAL_MS = 800;
/** Largest ceiling: a long outage costs at most about two requests a minute. */
export const BACKOFF_MAX_MS = 30_000;
/** Growth of the ceiling per consecutive failure. */
export const BACKOFF_FACTOR = 2;
/** After this long without a failure the ceiling starts again at the initial value. */
export const BACKOFF_RESET_AFTER_MS = 120_000;

export interface BackoffOptions {
  /** @default 800 */
  initialMs?: number;
  /** @default 30000 */
  maxMs?: number;
  /** @default 2 */
  factor?: number;
  /** @default 120000 */
  resetAfterMs?: number;
  /** Uniform in [0, 1); injectable for tests. @default Math.random */
  random?: () => number;
  /** @default systemClock */
  clock?: Clock;
}

/**
 * The delay before each retry of a failing operation. Full jitter (uniform in [0, ceiling)) keeps many
 * watchers that failed together from retrying together; there is no attempt limit, callers retry forever.
 */
export class Backoff {
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #factor: number;
  readonly #resetAfterMs: number;
  readonly #random: () => number;
  readonly #clock: Clock;
  #ceilingMs: number;
  #lastFailureAt?: number;

  constructor(options: BackoffOptions = {}) {
    this.#initialMs = options.initialMs ?? BACKOFF_INITIAL_MS;
    this.#maxMs = options.maxMs ?? BACKOFF_MAX_MS;
    this.#factor = options.factor ?? BACKOFF_FACTOR;
    this.#resetAfterMs = options.resetAfterMs ?? BACKOFF_RESET_AFTER_MS;
    this.#random = options.random ?? Math.random;
    this.#clock = options.clock ?? systemClock;
    this.#ceilingMs = this.#initialMs;
  }

  /** The upper bound of the next delay, before jitter. */
  get ceilingMs(): number {
    return this.#ceilingMs;
  }

  /** Records a failure and returns how long to wait before retrying, in [0, ceiling). */
  next(): number {
    const now = this.#clock.now();
    if (this.#lastFailureAt !== undefined && now - this.#lastFailureAt >= this.#resetAfterMs) this.reset();
    this.#lastFailureAt = now;
    const ceiling = this.#ceilingMs;
    this.#ceilingMs = Math.min(this.#maxMs, ceiling * this.#factor);
    return Math.floor(this.#random() * ceiling);
  }

  /** Forgets past failures: call after a success. */
  reset(): void {
    this.#ceilingMs = this.#initialMs;
    this.#lastFailureAt = undefined;
  }
}
