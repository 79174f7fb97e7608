/** A chain of transports: the first until the server refuses it, then the next one for good. */

import type { PodDialer } from "./pod_stream.ts";

/**
 * One dialer until the server refuses it (`refused(error)`), then the next one for good: how `auto` moves
 * from WebSocket v4 to the SPDY pool when RBAC refuses the WebSocket. The switch is reported once, after which
 * warm connections are the new dialer's business (`prewarmsItself` follows the current dialer).
 */
export function fallbackDialer(
  first: PodDialer,
  next: () => PodDialer,
  refused: (error: unknown) => boolean,
  onSwitch?: () => void,
): PodDialer {
  let current = first;
  const dial = async (...args: Parameters<PodDialer>) => {
    // dials already under way on the first dialer when it is refused get their refusal too: each of them
    // moves on (a request that arrived during the switch waits for the next dialer, never fails)
    const used = current;
    try {
      return await used(...args);
    } catch (error) {
      if (used !== first || args[1].aborted || !refused(error)) throw error;
      if (current === first) {
        current = next();
        onSwitch?.();
      }
      return await current(...args);
    }
  };
  return Object.defineProperty(dial, "prewarmsItself", { get: () => current.prewarmsItself }) as PodDialer;
}
