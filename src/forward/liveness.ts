/** Finds dead upstreams (laptop sleep, VPN switch, dropped NAT) by WebSocket ping instead of waiting hours for TCP. */

import type WebSocket from "ws";

export interface LivenessOptions {
  /** Ping after this long without any message from the pod side. */
  idleMs: number;
  /** No pong (or any message) within this time after a ping: the socket is dead. */
  timeoutMs: number;
  /** Called just before a socket that did not answer is terminated. */
  onTimeout?: () => void;
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
  const tick = Math.max(100, Math.min(options.idleMs, options.timeoutMs) / 2);
  const timer = setInterval(() => {
    const now = Date.now();
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
