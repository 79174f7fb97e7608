/**
 * Bounds how many WebSocket dials one forward runs at once. After an outage every waiting connection dials
 * at the same moment: a hundred TLS handshakes and upgrades at once make every one of them slow (each
 * waits behind all the others), so the oldest connections, closest to their deadline, miss it. Taking
 * turns in arrival order finishes the oldest first and keeps the API server from a thundering herd.
 */

export class DialSlots {
  readonly #limit: number;
  #busy = 0;
  readonly #queue: Array<() => void> = [];

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Waits for a free slot (in arrival order); resolves with the function that gives it back. */
  async take(signal: AbortSignal): Promise<() => void> {
    signal.throwIfAborted();
    if (this.#busy < this.#limit) {
      this.#busy++;
      return this.#releaser();
    }
    await new Promise<void>((resolve, reject) => {
      const turn = () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = () => {
        const at = this.#queue.indexOf(turn);
        if (at >= 0) this.#queue.splice(at, 1);
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.#queue.push(turn);
    });
    return this.#releaser();
  }

  #releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#queue.shift();
      // the slot passes straight to the next in line, so a newcomer cannot overtake it
      if (next) next();
      else this.#busy--;
    };
  }
}
