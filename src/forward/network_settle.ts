/**
 * Reconnecting after a network change or a wake from sleep, without thrash. Right after a Wi-Fi switch, a
 * VPN coming up or a laptop lid opening, the path flaps for a few seconds: reconnecting at every flap
 * (as a 200 ms network monitor would) costs a relist of every watch and new sockets each time, and the new
 * ones die with the next flap. So each sign of change restarts a settle period; only once the path has
 * been stable for the whole period are the watches resynced and the warm sockets replaced, and never more
 * often than once per minIntervalMs. While waiting, forwards show `settling`.
 */

import type { Clock } from "../clock.ts";

export const DEFAULT_NETWORK_SETTLE_MS = 2_000;
/** Reconnects are at least this far apart, however often the network changes. */
export const DEFAULT_RECONNECT_MIN_INTERVAL_MS = 10_000;

export type SettleState =
  /** Nothing changed since the last reconnect. */
  | { kind: "stable" }
  /** Something changed at lastChangeAt: reconnect once stable for settleMs (and the rate limit allows). */
  | { kind: "settling"; lastChangeAt: number; reason: string };

export interface NetworkSettleOptions {
  clock: Clock;
  signal: AbortSignal;
  /** How long the path must be stable before reconnecting. @default 2000 */
  settleMs?: number;
  /** @default 10000 */
  minIntervalMs?: number;
  /** Settling started (true) or ended (false): show it. */
  onSettling(settling: boolean, reason: string): void;
  /** The path is stable: reconnect now (resync watches, renew sockets). */
  onSettled(reason: string): void;
}

export class NetworkSettle {
  readonly #options: Required<NetworkSettleOptions>;
  #state: SettleState = { kind: "stable" };
  #lastReconnectAt = -Infinity;
  #timer?: AbortController;

  constructor(options: NetworkSettleOptions) {
    this.#options = {
      settleMs: DEFAULT_NETWORK_SETTLE_MS,
      minIntervalMs: DEFAULT_RECONNECT_MIN_INTERVAL_MS,
      ...options,
    };
    options.signal.addEventListener("abort", () => this.#timer?.abort(), { once: true });
  }

  get state(): SettleState {
    return this.#state;
  }

  /** The network changed or the machine woke: (re)start the settle period. */
  changed(reason: string): void {
    if (this.#options.signal.aborted) return;
    const wasStable = this.#state.kind === "stable";
    this.#state = { kind: "settling", lastChangeAt: this.#options.clock.now(), reason };
    if (wasStable) this.#options.onSettling(true, reason);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#state.kind !== "settling") return;
    const { clock, settleMs, minIntervalMs } = this.#options;
    const due = Math.max(this.#state.lastChangeAt + settleMs, this.#lastReconnectAt + minIntervalMs);
    this.#timer?.abort();
    const timer = new AbortController();
    this.#timer = timer;
    clock.sleep(Math.max(0, due - clock.now()), timer.signal).then(() => this.#fire(), () => {});
  }

  #fire(): void {
    if (this.#state.kind !== "settling" || this.#options.signal.aborted) return;
    const { clock, settleMs, minIntervalMs } = this.#options;
    const now = clock.now();
    // a change that arrived while the timer was due moves the deadline (the sleep was not restarted)
    if (now < this.#state.lastChangeAt + settleMs || now < this.#lastReconnectAt + minIntervalMs) {
      return this.#schedule();
    }
    const { reason } = this.#state;
    this.#state = { kind: "stable" };
    this.#lastReconnectAt = now;
    this.#options.onSettled(reason);
    this.#options.onSettling(false, reason);
  }
}

/** A comparable summary of the machine's network addresses (what a Wi-Fi switch or a VPN changes). */
export function networkSignature(interfaces: Deno.NetworkInterfaceInfo[]): string {
  return interfaces
    .filter((i) => !i.address.startsWith("127.") && i.address !== "::1")
    .map((i) => `${i.name} ${i.family} ${i.address}/${i.cidr}`)
    .sort()
    .join("\n");
}

/**
 * Calls onChange whenever the set of network addresses changed since the last look (every intervalMs).
 * Polling is the portable way: Deno has no network-change event.
 */
export function watchNetworkChanges(
  onChange: () => void,
  options: {
    signal: AbortSignal;
    clock: Clock;
    intervalMs?: number;
    interfaces?: () => Deno.NetworkInterfaceInfo[];
  },
): void {
  const read = options.interfaces ?? (() => Deno.networkInterfaces());
  const look = () => {
    try {
      return networkSignature(read());
    } catch {
      return undefined; // not permitted or unsupported here: no change detection, nothing breaks
    }
  };
  let last = look();
  if (last === undefined) return;
  (async () => {
    while (!options.signal.aborted) {
      await options.clock.sleep(options.intervalMs ?? 2_000, options.signal);
      const now = look();
      if (now !== undefined && now !== last) {
        last = now;
        onChange();
      }
    }
  })().catch(() => {});
}
