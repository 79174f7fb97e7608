/**
 * Whether one cluster's API server can be reached right now, as all forwards of that cluster should report
 * it. A watch stream over a silently dropped path (VPN down, Wi-Fi gone) looks open for minutes, and open
 * connections only notice when their pings time out; meanwhile a forward said `ready`. So any sign of
 * trouble (a watch error, a failed or slow dial, a ping timeout) makes this probe the API server end to end
 * (a cheap GET /readyz, bounded by a short timeout) every second until it answers again; a failed probe
 * makes the cluster `unreachable` with the reason, and a probe or a dial that gets through makes it
 * healthy again at once. Nothing is sent while no trouble is suspected.
 *
 * One instance per cluster client, owned by the session that created it (never a module-level registry),
 * shared by every forward of that cluster so a dozen forwards cost one probe.
 */

import type { Clock } from "../clock.ts";
import { ApiError, ApiUnreachableError } from "./errors.ts";

export type ClusterHealthState =
  /** Nothing is known to be wrong; no probe runs. */
  | { kind: "healthy" }
  /** Something looked wrong: probing, nothing confirmed yet (forwards still say ready). */
  | { kind: "suspect"; reason: string; since: number }
  /** The probe failed: forwards say degraded with this reason until a probe or a dial gets through. */
  | { kind: "unreachable"; reason: string; since: number };

/** One end-to-end request to the API server; resolves when it answered, rejects with why it did not. */
export type HealthProbe = (signal: AbortSignal) => Promise<void>;

export interface ClusterHealthOptions {
  probe: HealthProbe;
  clock: Clock;
  /** Names the server in messages. */
  server: string;
  /** Pause between probes while trouble lasts. @default 1000 */
  intervalMs?: number;
  /** A probe without an answer within this long has failed (a silent path). @default 2500 */
  timeoutMs?: number;
}

export const HEALTH_PROBE_INTERVAL_MS = 1_000;
export const HEALTH_PROBE_TIMEOUT_MS = 2_500;

export class ClusterHealth {
  readonly #options: Required<ClusterHealthOptions>;
  readonly #listeners = new Set<() => void>();
  readonly #closed = new AbortController();
  #state: ClusterHealthState = { kind: "healthy" };
  #probing = false;
  /** Bumped by every success report, so a probe that started before it cannot undo it. */
  #generation = 0;

  constructor(options: ClusterHealthOptions) {
    this.#options = {
      intervalMs: HEALTH_PROBE_INTERVAL_MS,
      timeoutMs: HEALTH_PROBE_TIMEOUT_MS,
      ...options,
    };
  }

  get state(): ClusterHealthState {
    return this.#state;
  }

  /** The reason to show while the API server cannot be reached; undefined when it can (as far as known). */
  get problem(): string | undefined {
    return this.#state.kind === "unreachable" ? this.#state.reason : undefined;
  }

  /** Calls listener after every state change; returns the unsubscribe function. */
  subscribe(listener: () => void): () => void {
    const entry = () => listener();
    this.#listeners.add(entry);
    return () => this.#listeners.delete(entry);
  }

  /** Something looked wrong (a failed or slow dial, a ping timeout, a watch error): probe until it is clear. */
  suspect(reason: string): void {
    if (this.#closed.signal.aborted) return;
    if (this.#state.kind === "healthy") {
      this.#set({ kind: "suspect", reason, since: this.#options.clock.now() });
    }
    if (!this.#probing) this.#probeLoop();
  }

  /** A request got through end to end (a dial succeeded): healthy now, whatever a probe in flight says. */
  succeeded(): void {
    this.#generation++;
    if (this.#state.kind !== "healthy") this.#set({ kind: "healthy" });
  }

  /** Stops probing; for the end of a session. */
  close(): void {
    this.#closed.abort();
    this.#listeners.clear();
  }

  async #probeLoop(): Promise<void> {
    this.#probing = true;
    const { clock, intervalMs } = this.#options;
    try {
      while (!this.#closed.signal.aborted && this.#state.kind !== "healthy") {
        const generation = this.#generation;
        const failure = await this.#probeOnce();
        if (this.#closed.signal.aborted) return;
        if (generation !== this.#generation) continue; // a success arrived meanwhile: it wins
        if (failure === undefined) {
          this.#set({ kind: "healthy" });
          return;
        }
        const since = this.#state.kind === "unreachable" ? this.#state.since : clock.now();
        if (this.#state.kind !== "unreachable" || this.#state.reason !== failure) {
          this.#set({ kind: "unreachable", reason: failure, since });
        }
        await clock.sleep(intervalMs, this.#closed.signal).catch(() => {});
      }
    } finally {
      this.#probing = false;
    }
  }

  /** Runs one probe; undefined when the API server answered, else why not (for the user). */
  async #probeOnce(): Promise<string | undefined> {
    const { probe, clock, timeoutMs, server } = this.#options;
    const abort = new AbortController();
    const stop = () => abort.abort();
    this.#closed.signal.addEventListener("abort", stop, { once: true });
    const timer = new AbortController();
    try {
      const timedOut = clock.sleep(timeoutMs, timer.signal).then(
        () => `Cannot reach the API server at ${server}: no answer to a health check within ${timeoutMs} ms`,
        () => undefined,
      );
      const answered = probe(abort.signal).then(
        () => undefined,
        (error) => describeProbeFailure(error, server),
      );
      return await Promise.race([answered, timedOut.then((why) => why ?? answered)]);
    } finally {
      timer.abort();
      abort.abort();
      this.#closed.signal.removeEventListener("abort", stop);
    }
  }

  #set(state: ClusterHealthState): void {
    this.#state = state;
    for (const listener of [...this.#listeners]) {
      try {
        listener();
      } catch (error) {
        reportError(error);
      }
    }
  }
}

/**
 * A probe error as the user should read it; undefined when the answer proves the server is up (401/403/404
 * on the health endpoint: it answered, it just will not say more to these credentials).
 */
export function describeProbeFailure(error: unknown, server: string): string | undefined {
  if (error instanceof ApiError) {
    if (error.status < 500 && error.status !== 429 && error.status !== 408) return undefined;
    // /readyz lists its failing checks as "[-]etcd failed: reason withheld"
    const failing = [...error.message.matchAll(/\[-\]([\w\-/]+) failed/g)].map((m) => m[1]);
    const detail = failing.length > 0 ? `${failing.join(", ")} failing` : `HTTP ${error.status}`;
    return `The API server at ${server} is not ready: ${detail}`;
  }
  if (error instanceof ApiUnreachableError) return error.message;
  return `Cannot reach the API server at ${server}: ${(error as Error)?.message ?? String(error)}`;
}

/** The standard probe: GET /readyz with the client's credentials on a new connection, with a short timeout. */
export function readyzProbe(
  get: (
    path: string,
    options: { signal: AbortSignal; timeoutMs: number; pooled: boolean },
  ) => Promise<unknown>,
  timeoutMs = HEALTH_PROBE_TIMEOUT_MS,
): HealthProbe {
  // a new connection each time: a probe must test the path as a new dial would take it
  return (signal) => get("/readyz", { signal, timeoutMs, pooled: false }).then(() => {});
}
