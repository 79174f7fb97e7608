/**
 * Connections to the API server opened ahead of the WebSocket upgrades that will use them. A port-forward
 * dial is a TCP and TLS handshake and then the upgrade request; on a busy machine the handshake is most of
 * it (measured on the local cluster while all pods are force-deleted: TLS 45-65 ms, the upgrade after it
 * 5-10 ms). A forward with no ready pod knows a dial is coming (to the replacement) and asks for a spare.
 */

import { type Clock, systemClock } from "../clock.ts";
import { Backoff } from "../watch/backoff.ts";
import { abortRoutine } from "../abort.ts";
import { closeQuietly, type OpenConnection } from "./native_websocket.ts";

/**
 * A spare older than this is replaced: the server's idle limit for a connection that has not sent its first
 * request is not known to the client (Go's http.Server: ReadHeaderTimeout, when set).
 */
export const SPARE_MAX_AGE_MS = 10_000;
/** After its last holder let go, a spare waits this long for the dial it was opened for, then closes. */
export const SPARE_LINGER_MS = 2_000;
/** Spares kept at most, however many forwards hold them. */
const MAX_SPARES = 4;
/** An opening that takes longer is given up (a path that went silent). */
const OPEN_TIMEOUT_MS = 10_000;

type Opened = { opened: OpenConnection; identity: string };

interface Opening {
  /** Undefined when it failed, or when this client cannot use spares. */
  result: Promise<Opened | undefined>;
  /** A dial took it while it opened: it is that dial's when ready, not parked. */
  claimed: boolean;
}

interface Spare {
  opened: OpenConnection;
  /** Which client identity (a certificate) it was opened with; it serves only dials with the same one. */
  identity: string;
  openedAt: number;
  /** Since when nobody wants it (it closes SPARE_LINGER_MS later unless wanted again). */
  unwantedSince?: number;
  timer: AbortController;
}

/**
 * Dials a connection and names the client identity it carries; undefined when this client cannot hand one
 * to its upgrades (they go over another TLS stack): no spares are opened from then on.
 */
export type SpareOpener = (
  signal: AbortSignal,
) => Promise<{ opened: OpenConnection; identity: string } | undefined>;

export class SpareConnections {
  readonly #open: SpareOpener;
  readonly #clock: Clock;
  readonly #maxAgeMs: number;
  readonly #lingerMs: number;
  readonly #backoff: Backoff;
  #holders = 0;
  #ready: Spare[] = [];
  #openings: Opening[] = [];
  #retry?: AbortController;
  readonly #stop = new AbortController();

  constructor(
    open: SpareOpener,
    options: { clock?: Clock; maxAgeMs?: number; lingerMs?: number } = {},
  ) {
    this.#open = open;
    this.#clock = options.clock ?? systemClock;
    this.#maxAgeMs = options.maxAgeMs ?? SPARE_MAX_AGE_MS;
    this.#lingerMs = options.lingerMs ?? SPARE_LINGER_MS;
    this.#backoff = new Backoff({ clock: this.#clock, initialMs: 500, maxMs: 10_000 });
  }

  /** Keeps one more spare ready until `signal` aborts. */
  hold(signal: AbortSignal): void {
    if (signal.aborted || this.#stop.signal.aborted) return;
    this.#holders++;
    signal.addEventListener("abort", () => {
      this.#holders--;
      this.#trim();
    }, { once: true });
    this.#fill();
  }

  /**
   * A spare opened with this identity, now the caller's: a ready one, else one still opening (it started
   * before this dial would, so it is ready sooner than a new connection); undefined when there is none.
   */
  async take(identity: string): Promise<OpenConnection | undefined> {
    const index = this.#ready.findIndex((spare) => spare.identity === identity);
    if (index >= 0) {
      const [spare] = this.#ready.splice(index, 1);
      abortRoutine(spare.timer);
      // other holders still want theirs
      this.#fill();
      return spare.opened;
    }
    const opening = this.#openings.find((o) => !o.claimed);
    if (!opening) return undefined;
    opening.claimed = true;
    this.#fill();
    const spare = await opening.result;
    if (!spare) return undefined;
    if (spare.identity === identity) return spare.opened;
    this.#park(spare.opened, spare.identity);
    return undefined;
  }

  /** How many spares are ready now (diagnostics, tests). */
  get ready(): number {
    return this.#ready.length;
  }

  /** Closes every spare and opens no more. */
  close(): void {
    abortRoutine(this.#stop);
    this.#retry?.abort();
    for (const spare of this.#ready) {
      abortRoutine(spare.timer);
      closeQuietly(spare.opened.conn);
    }
    this.#ready = [];
  }

  #wanted(): number {
    return Math.min(this.#holders, MAX_SPARES);
  }

  #fill(): void {
    const unclaimed = () => this.#openings.filter((o) => !o.claimed).length;
    while (!this.#stop.signal.aborted && !this.#retry && this.#ready.length + unclaimed() < this.#wanted()) {
      this.#startOpening();
    }
  }

  #startOpening(): void {
    const abort = new AbortController();
    const onStop = () => abortRoutine(abort);
    this.#stop.signal.addEventListener("abort", onStop, { once: true });
    this.#clock.sleep(OPEN_TIMEOUT_MS, abort.signal).then(onStop, () => {});
    const settle = () => {
      this.#openings = this.#openings.filter((o) => o !== opening);
      this.#stop.signal.removeEventListener("abort", onStop);
      abortRoutine(abort);
    };
    const opening: Opening = {
      claimed: false,
      result: this.#open(abort.signal).then((spare) => {
        settle();
        if (!spare) {
          this.close();
          return undefined;
        }
        this.#backoff.reset();
        if (this.#stop.signal.aborted) {
          closeQuietly(spare.opened.conn);
          return undefined;
        }
        if (!opening.claimed) this.#park(spare.opened, spare.identity);
        return spare;
      }, () => {
        settle();
        if (!this.#stop.signal.aborted) this.#retryLater();
        return undefined;
      }),
    };
    this.#openings.push(opening);
  }

  /** The server is not reachable now (the dial itself will say so): try again after a backoff, not in a loop. */
  #retryLater(): void {
    if (this.#retry) return;
    const retry = new AbortController();
    this.#retry = retry;
    this.#clock.sleep(this.#backoff.next(), retry.signal).then(() => {
      this.#retry = undefined;
      this.#fill();
    }, () => {});
  }

  #park(opened: OpenConnection, identity: string): void {
    this.#ready.push({ opened, identity, openedAt: this.#clock.now(), timer: new AbortController() });
    this.#trim();
  }

  /** Closes the spares that are too old or that nobody wanted for SPARE_LINGER_MS, then tops up. */
  #review(): void {
    const now = this.#clock.now();
    for (const spare of [...this.#ready]) {
      const old = now - spare.openedAt >= this.#maxAgeMs;
      const unwanted = spare.unwantedSince !== undefined && now - spare.unwantedSince >= this.#lingerMs;
      if (old || unwanted) {
        this.#ready = this.#ready.filter((s) => s !== spare);
        abortRoutine(spare.timer);
        closeQuietly(spare.opened.conn);
      }
    }
    this.#fill();
  }

  /** Re-arms each spare's timer for its next review (its age limit, or the end of its linger). */
  #arm(spare: Spare): void {
    abortRoutine(spare.timer);
    spare.timer = new AbortController();
    let due = spare.openedAt + this.#maxAgeMs;
    if (spare.unwantedSince !== undefined) due = Math.min(due, spare.unwantedSince + this.#lingerMs);
    this.#clock.sleep(Math.max(0, due - this.#clock.now()), spare.timer.signal).then(
      () => this.#review(),
      () => {},
    );
  }

  /**
   * Marks the spares beyond what the holders want as unwanted (the oldest first) and the rest as wanted. An
   * unwanted one is not closed at once: the dial it was opened for comes right after its holder lets go.
   */
  #trim(): void {
    const extra = Math.max(0, this.#ready.length - this.#wanted());
    const now = this.#clock.now();
    this.#ready.forEach((spare, index) => {
      if (index < extra) spare.unwantedSince ??= now;
      else spare.unwantedSince = undefined;
      this.#arm(spare);
    });
  }
}
