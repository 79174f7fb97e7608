/**
 * Finds dead pod streams (laptop sleep, VPN switch, dropped NAT) by a ping through the transport instead of
 * waiting hours for TCP, and keeps quiet streams alive for the idle timers on the way. Policy only: how to
 * ping and what keep-alive traffic is are the transport's business (src/transport).
 */

import type { Clock } from "../clock.ts";
import { PathTimeoutError, type PodStream } from "../transport/mod.ts";
import { abortRoutine } from "../abort.ts";

export interface LivenessOptions {
  clock: Clock;
  /** Ping after this long without anything heard from the far end. */
  idleMs: number;
  /** No answer within this time after a ping: the stream is dead and is reset. */
  timeoutMs: number;
  /** Called when a ping went unanswered (before the reset): the path may be down. */
  onTimeout?: () => void;
  /**
   * Traffic that idle timers on the way count (the kubelet's streaming idle timeout, load balancers): sent
   * when nothing went out for `everyMs`. Pings do not do it: the API server answers them itself.
   */
  quiet?: { everyMs: number; lastSentAt: () => number };
}

/**
 * Watches the stream until it closes or the returned stop function runs. It sleeps until the next thing is
 * due (a ping after idleMs of silence, keep-alive traffic after everyMs without uploads) instead of ticking:
 * an idle forward holds hundreds of these.
 */
export function watchLiveness(stream: PodStream, options: LivenessOptions): () => void {
  const { clock, quiet } = options;
  // the kernel finds a dead path of a watched stream without waking kf: pings only back it up
  const idleMs = stream.kernelWatched
    ? Math.max(options.idleMs, KERNEL_WATCHED_PING_IDLE_MS)
    : options.idleMs;
  const stop = new AbortController();
  let timedOut = false;
  let keptAliveAt = -Infinity;
  /** When the last ping was answered: counts as heard even if the stream's lastHeardAt did not move. */
  let answeredAt = -Infinity;
  const answered = async (): Promise<boolean> => {
    const wait = new AbortController();
    const onStop = () => abortRoutine(wait);
    stop.signal.addEventListener("abort", onStop, { once: true });
    try {
      return await Promise.race([
        stream.ping().then(() => true, () => false),
        clock.sleep(options.timeoutMs, wait.signal).then(() => false),
      ]);
    } finally {
      abortRoutine(wait);
      stop.signal.removeEventListener("abort", onStop);
    }
  };
  (async () => {
    while (stream.open) {
      const now = clock.now();
      let keepAliveDue = Infinity;
      if (quiet && stream.keepAlive) {
        keepAliveDue = Math.max(quiet.lastSentAt(), keptAliveAt) + quiet.everyMs;
        if (now >= keepAliveDue) {
          keptAliveAt = now;
          stream.keepAlive();
          keepAliveDue = now + quiet.everyMs;
        }
      }
      const pingDue = Math.max(stream.lastHeardAt, answeredAt) + idleMs;
      if (now >= pingDue) {
        if (!(await answered()) && stream.open && !stop.signal.aborted) {
          timedOut = true;
          options.onTimeout?.();
          stream.reset(new PathTimeoutError(stream.pod, options.timeoutMs));
          return;
        }
        answeredAt = clock.now();
        continue;
      }
      // never longer than idleMs: a stream whose lastHeardAt is off (another time base) still gets looked at
      const nextMs = Math.min(pingDue, keepAliveDue) - now;
      await clock.sleep(Math.min(Math.max(MIN_SLEEP_MS, nextMs), idleMs), stop.signal);
    }
  })().catch(() => {}); // stopped
  stream.closed.then((error) => {
    // the kernel gave up on the path: the same news as an unanswered ping
    if (error instanceof PathTimeoutError && !timedOut && !stop.signal.aborted) options.onTimeout?.();
    abortRoutine(stop);
  });
  return () => abortRoutine(stop);
}

/**
 * How long a kernel-watched stream stays unpinged: a backstop for a proxy that ends TCP before the API server
 * (the kernel then only sees the proxy). Pings every 20 s cost ~0.2 ms of CPU each, per connection.
 */
export const KERNEL_WATCHED_PING_IDLE_MS = 300_000;

/** Shortest sleep between two looks, so a clock that stands still cannot make the loop spin. */
const MIN_SLEEP_MS = 10;

/** The interval of keep-alive traffic for a path that cuts connections idle for idleLimitMs: a third of it. */
export function keepAliveInterval(idleLimitMs: number): number {
  return Math.max(1_000, Math.floor(idleLimitMs / 3));
}

/**
 * Calls onWake when the machine was suspended: the wall clock jumped ahead of the interval timer.
 * After a sleep every watch stream and upstream socket is likely dead, so they are renewed at once.
 * The one place in src/forward that reads the wall clock and a bare interval on purpose: a monotonic clock
 * (the injected Clock) stands still during a suspend, so only the wall clock shows one.
 */
export function onResume(
  onWake: () => void,
  options: { signal: AbortSignal; intervalMs?: number; thresholdMs?: number },
) {
  const intervalMs = options.intervalMs ?? 2_000;
  const thresholdMs = options.thresholdMs ?? 10_000;
  let last = Date.now();
  const timer = setInterval(() => {
    const now = Date.now();
    if (now - last > intervalMs + thresholdMs) onWake();
    last = now;
  }, intervalMs);
  // never keep the process alive just for this
  Deno.unrefTimer(timer);
  options.signal.addEventListener("abort", () => clearInterval(timer), { once: true });
}
