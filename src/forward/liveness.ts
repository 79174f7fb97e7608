/** Finds dead upstreams (laptop sleep, VPN switch, dropped NAT) by WebSocket ping instead of waiting hours for TCP. */

import type WebSocket from "ws";

export interface LivenessOptions {
  /** Ping after this long without any message from the pod side. */
  idleMs: number;
  /** No pong (or any message) within this time after a ping: the socket is dead. */
  timeoutMs: number;
  /** Called when a ping went unanswered (before the socket is terminated): the path may be down. */
  onTimeout?: () => void;
  /**
   * Traffic that idle timers on the way count (the kubelet's streaming idle timeout, load balancers): sent
   * when nothing went out for `everyMs`. WebSocket pings do not do it: the API server answers them itself.
   */
  quiet?: { everyMs: number; lastSentAt: () => number; send: () => void };
}

/** Pings ws while it is quiet and terminates it when nothing answers; returns the stop function. */
export function keepAlive(ws: WebSocket, options: LivenessOptions): () => void {
  let lastHeard = Date.now();
  let pingSentAt: number | undefined;
  const heard = () => {
    lastHeard = Date.now();
    pingSentAt = undefined;
  };
  ws.on("message", heard);
  ws.on("pong", heard);
  const { quiet } = options;
  const tick = Math.max(100, Math.min(options.idleMs, options.timeoutMs, quiet?.everyMs ?? Infinity) / 2);
  const timer = setInterval(() => {
    const now = Date.now();
    if (quiet && ws.readyState === 1 && now - quiet.lastSentAt() >= quiet.everyMs) quiet.send();
    if (pingSentAt !== undefined) {
      if (now - pingSentAt > options.timeoutMs) {
        options.onTimeout?.();
        ws.terminate();
      }
      return;
    }
    if (now - lastHeard >= options.idleMs && ws.readyState === 1) {
      pingSentAt = now;
      ws.ping();
    }
  }, tick);
  const stop = () => {
    clearInterval(timer);
    ws.off("message", heard);
    ws.off("pong", heard);
  };
  ws.once("close", stop);
  return stop;
}

/** The interval of keep-alive traffic for a path that cuts connections idle for idleLimitMs: a third of it. */
export function keepAliveInterval(idleLimitMs: number): number {
  return Math.max(1_000, Math.floor(idleLimitMs / 3));
}

/**
 * Calls onWake when the machine was suspended: the wall clock jumped ahead of the interval timer.
 * After a sleep every watch stream and upstream socket is likely dead, so they are renewed at once.
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
